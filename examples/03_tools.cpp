// 03: tools on their own, no model. Define three tools (typed arguments, a blocking handler, an
// async handler), register them, and dispatch one batch of calls the way the agent loop does
// when a model reply asks for several tools at once. Every failure comes back as data: a result
// with is_error set and a text the model could act on.
#include <wafer/tools/registry.hpp>
#include <wafer/tools/schema.hpp>
#include <wafer/tools/tool.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace tools = wafer::tools;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// --- 1. An inline tool with typed arguments ---------------------------------------------------
// The schema is checked first (types, enum, required, no extra keys); then from_json builds the
// struct. from_json may reject what a schema cannot express by throwing argument_error: the
// model gets an "invalid arguments" result carrying the message.
struct convert_args {
    double amount = 0;
    std::string from;
    std::string to;
};

void from_json(const json& j, convert_args& a) {
    j.at("amount").get_to(a.amount);
    j.at("from").get_to(a.from);
    j.at("to").get_to(a.to);
    if (a.from == a.to) {
        throw tools::argument_error("from and to are the same currency: nothing to convert");
    }
}

std::string convert_currency(convert_args a) {
    // Euros per unit, fixed for the example.
    static const std::map<std::string, double> eur_per_unit{
        {"EUR", 1.0}, {"USD", 0.92}, {"GBP", 1.17}, {"JPY", 0.0061}};
    double out = a.amount * eur_per_unit.at(a.from) / eur_per_unit.at(a.to);
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << a.amount << " " << a.from << " = " << out << " "
      << a.to;
    return s.str();
}

const json convert_schema = {
    {"type", "object"},
    {"properties",
     {{"amount", {{"type", "number"}, {"exclusiveMinimum", 0}}},
      {"from", {{"type", "string"}, {"enum", {"EUR", "USD", "GBP", "JPY"}}}},
      {"to", {{"type", "string"}, {"enum", {"EUR", "USD", "GBP", "JPY"}}}}}},
    {"required", {"amount", "from", "to"}},
    {"additionalProperties", false}};

// --- 2. A blocking tool -------------------------------------------------------------------------
// CPU-bound (or blocking-I/O) work runs on the registry's thread pool, never on the io_context
// thread. The call_context's stop token fires on timeout or cancellation; polling it lets the
// pool thread go early instead of finishing work whose result would be dropped.
struct primes_args {
    std::uint64_t below = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(primes_args, below)

tools::tool_output count_primes(primes_args a, const tools::call_context& ctx) {
    std::uint64_t count = 0;
    for (std::uint64_t n = 2; n < a.below; ++n) {
        if ((n & 0xFFFU) == 0 && ctx.stop.stop_requested()) {
            return {"stopped early", true};
        }
        bool prime = true;
        for (std::uint64_t d = 2; d * d <= n; ++d) {
            if (n % d == 0) {
                prime = false;
                break;
            }
        }
        count += prime ? 1U : 0U;
    }
    return {std::to_string(count) + " primes below " + std::to_string(a.below), false};
}

// --- 3. An async tool ---------------------------------------------------------------------------
// A coroutine on the io_context: here a timer stands in for a database or HTTP query. While it
// waits, the other calls of the batch run. A named function, not a capturing lambda (GCC 12).
struct population_args {
    std::string city;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(population_args, city)

asio::awaitable<tools::tool_output> lookup_population(population_args a) {
    asio::steady_timer query(co_await asio::this_coro::executor, 100ms);
    co_await query.async_wait(asio::use_awaitable);
    static const std::map<std::string, int> table{{"Florence", 360'000}, {"Rome", 2'750'000}};
    auto it = table.find(a.city);
    if (it == table.end()) {
        // A failure the tool itself reports: is_error, with a hint for the model.
        co_return tools::tool_output{"no data for " + a.city + "; known: Florence, Rome", true};
    }
    co_return tools::tool_output{
        a.city + ": " + std::to_string(it->second) + " inhabitants", false};
}

std::shared_ptr<tools::registry> make_registry() {
    auto reg = std::make_shared<tools::registry>();
    tools::tool_options read_only;
    read_only.read_only = true;
    reg->add(tools::make_tool<convert_args>(
        "convert_currency",
        "Convert an amount between EUR, USD, GBP and JPY.",
        convert_schema,
        &convert_currency,
        read_only
    ));

    tools::tool_options slow = read_only;
    slow.timeout = 300ms; // this tool's own deadline, whatever the dispatch default
    reg->add(tools::make_blocking_tool<primes_args>(
        "count_primes",
        "Count the prime numbers below a bound.",
        {{"type", "object"},
         {"properties", {{"below", {{"type", "integer"}, {"minimum", 2}}}}},
         {"required", {"below"}},
         {"additionalProperties", false}},
        &count_primes,
        slow
    ));

    reg->add(tools::make_async_tool<population_args>(
        "lookup_population",
        "Population of a city.",
        {{"type", "object"},
         {"properties", {{"city", {{"type", "string"}, {"minLength", 1}}}}},
         {"required", {"city"}},
         {"additionalProperties", false}},
        &lookup_population,
        read_only
    ));

    // Schemas are compiled at registration: a keyword the validator does not know is an error
    // now, not a silently ignored rule later.
    try {
        reg->add(tools::make_tool<json>(
            "broken",
            "A tool with a typo in its schema.",
            {{"type", "object"}, {"propertys", json::object()}},
            [](const json&) { return std::string(); }
        ));
    } catch (const tools::schema_error& e) {
        std::cout << "registration refused: " << e.what() << "\n\n";
    }
    return reg;
}

// One line per result: the call, its status, and the first line of what the model would read.
void print_result(const tools::tool_result& r, const tools::call_timing& t) {
    std::string text = r.content.substr(0, r.content.find('\n'));
    if (text.size() > 110) {
        text = text.substr(0, 110) + "...";
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.duration()).count();
    std::cout << std::left << std::setw(4) << r.tool_call_id << std::setw(18) << r.name
              << std::setw(18) << to_string(r.status) << std::right << std::setw(5) << ms << " ms  "
              << text << "\n";
}

asio::awaitable<void> dispatch_batch(std::shared_ptr<tools::registry> reg) {
    // What a model reply with nine tool calls looks like once parsed: ids, names and the
    // arguments as raw text (possibly malformed).
    std::vector<tools::tool_call_request> calls{
        {"c1", "convert_currency", R"({"amount": 100, "from": "EUR", "to": "USD"})"},
        {"c2", "convert_currency", R"({"amount": "100", "from": "EUR", "to": "YEN", "x": 1})"},
        {"c3", "convert_currency", R"({"amount": 5, "from": "GBP", "to": "GBP"})"},
        {"c4", "convert_currency", R"({"amount": 1, "from": )"},
        {"c5", "lookup_population", R"({"city": "Florence"})"},
        {"c6", "lookup_population", R"({"city": "Atlantis"})"},
        {"c7", "count_primes", R"({"below": 100000})"},
        {"c8", "count_primes", R"({"below": 10000000000})"},
        {"c9", "send_email", R"({"to": "ceo@example.com"})"},
    };

    tools::dispatch_options opts;
    opts.call_timeout = 2s;  // for tools without their own timeout
    opts.batch_timeout = 5s; // for the whole batch
    opts.observer.on_start = [&calls](std::size_t i) {
        std::cout << "  start " << calls[i].id << " " << calls[i].name << "\n";
    };

    auto t0 = std::chrono::steady_clock::now();
    tools::dispatch_result out = co_await reg->async_dispatch(calls, std::move(opts));
    auto wall = std::chrono::steady_clock::now() - t0;

    // Results come back in the order the model asked, whatever order they finished in.
    std::cout << "\n"
              << std::left << std::setw(4) << "id" << std::setw(18) << "tool" << std::setw(18)
              << "status" << std::right << std::setw(8) << "time"
              << "  content\n";
    for (std::size_t i = 0; i < out.results.size(); ++i) {
        print_result(out.results[i], out.timings[i]);
    }
    std::cout << "\n"
              << calls.size() << " calls in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(wall).count()
              << " ms: they ran concurrently, and the bad ones failed as data, not exceptions.\n";
    // The full text of a schema failure, as the model reads it:
    std::cout << "\nc2 in full:\n" << out.results[1].content << "\n";
}

} // namespace

int main() {
    asio::io_context ioc;
    auto reg = make_registry();
    int status = 0;
    asio::co_spawn(ioc, dispatch_batch(reg), [&status](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::cerr << "error: " << ex.what() << "\n";
                status = 1;
            }
        }
    });
    ioc.run();
    return status;
}
