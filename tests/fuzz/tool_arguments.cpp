// What the registry does with a model's tool call: name and argument text, against fixed tools.
//
// Input: "NAME\nARGUMENTS" (no newline: the whole input is the arguments of read_file).
// Properties: async_call never throws; an unknown name gives unknown_tool; the tool (its typed
// conversion or handler) is reached exactly when the arguments are JSON (or blank) that the
// tool's schema accepts; a rejected call
// is an invalid_arguments error with a text; with valid UTF-8 arguments the result text is valid
// UTF-8 and goes into the next request.
#include <wafer/api/chat_request.hpp>
#include <wafer/tools/registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

using nlohmann::json;
namespace tools = wafer::tools;

namespace {

struct read_args {
    std::string path;
    long long offset = 0;
    int limit = 200;
};

// Calls that reached the tool: its typed-argument conversion or its handler.
int tool_reached = 0;

void from_json(const json& j, read_args& a) {
    ++tool_reached;
    j.at("path").get_to(a.path);
    a.offset = j.value("offset", 0LL);
    a.limit = j.value("limit", 200);
    if (a.path == "/forbidden") {
        throw tools::argument_error("path is outside the workspace");
    }
}

tools::tool raw_tool(std::string name, const char* schema_text) {
    return tools::make_tool<json>(
        std::move(name),
        "fuzz tool",
        json::parse(schema_text),
        [](const json& args) {
            ++tool_reached;
            return args;
        }
    );
}

tools::registry make_registry() {
    tools::registry reg;
    reg.add(tools::make_tool<read_args>(
        "read_file",
        "read a file",
        json::parse(R"({"type":"object","properties":{"path":{"type":"string","minLength":1},
            "offset":{"type":"integer","minimum":0},"limit":{"type":"integer","minimum":1,
            "maximum":2000}},"required":["path"],"additionalProperties":false})"),
        [](const read_args& a) { return a.path; }
    ));
    reg.add(raw_tool("edit_file", R"({"type":"object","properties":{"path":{"type":"string"},
        "edits":{"type":"array","minItems":1,"items":{"type":"object","properties":{
        "old":{"type":"string"},"new":{"type":"string"}},"required":["old","new"]}}},
        "required":["path","edits"]})"));
    reg.add(raw_tool("run_command", R"({"type":"object","properties":{
        "command":{"type":"string","pattern":"^[a-z][a-z0-9_-]*$","maxLength":64},
        "args":{"type":"array","items":{"type":"string"},"maxItems":16},
        "mode":{"enum":["fast","slow",null]},"timeout_s":{"type":"number",
        "exclusiveMinimum":0,"maximum":600}},"required":["command"]})"));
    reg.add(raw_tool("no_params", R"({"type":"object"})"));
    reg.add(raw_tool("tree", R"({"$defs":{"node":{"type":"object","properties":{
        "name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},
        "required":["name"]}},"$ref":"#/$defs/node"})"));
    reg.add(raw_tool("choice", R"({"type":"object","properties":{"value":{"oneOf":[
        {"type":"integer"},{"type":"string","minLength":2},{"const":[1,2]}]},
        "flag":{"anyOf":[{"type":"boolean"},{"not":{"type":"null"}}]}},
        "allOf":[{"required":["value"]}]})"));
    return reg;
}

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
    });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const tools::registry reg = make_registry();
    static boost::asio::io_context ctx;

    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto nl = in.find('\n');
    tools::tool_call_request req;
    req.id = "call_1";
    req.name = nl == std::string_view::npos ? "read_file" : std::string(in.substr(0, nl));
    req.arguments = std::string(nl == std::string_view::npos ? in : in.substr(nl + 1));
    if (!wafer::fuzz::is_valid_utf8(req.name)) {
        return 0; // names come out of a JSON decoder: always valid UTF-8
    }

    tool_reached = 0;
    std::optional<tools::tool_result> result;
    std::exception_ptr failure;
    boost::asio::co_spawn(
        ctx,
        reg.async_call(req),
        [&](std::exception_ptr e, tools::tool_result r) {
            failure = e;
            result = std::move(r);
        }
    );
    ctx.restart();
    ctx.run();
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "async_call threw: %s\n", e.what());
        }
    }
    WAFER_FUZZ_CHECK(!failure);
    WAFER_FUZZ_CHECK(result.has_value());
    WAFER_FUZZ_CHECK(result->tool_call_id == req.id && result->name == req.name);

    const tools::schema* s = reg.find_schema(req.name);
    if (!s) {
        WAFER_FUZZ_CHECK(result->status == tools::result_status::unknown_tool);
        WAFER_FUZZ_CHECK(tool_reached == 0);
    } else {
        const json args = blank(req.arguments)
                              ? json::object()
                              : json::parse(req.arguments, nullptr, /*allow_exceptions=*/false);
        const bool accepted = !args.is_discarded() && s->is_valid(args);
        WAFER_FUZZ_CHECK(tool_reached == (accepted ? 1 : 0));
        if (!accepted) {
            WAFER_FUZZ_CHECK(result->status == tools::result_status::invalid_arguments);
        } else {
            WAFER_FUZZ_CHECK(
                result->status == tools::result_status::ok ||
                result->status == tools::result_status::invalid_arguments
            );
        }
    }
    if (result->is_error) {
        WAFER_FUZZ_CHECK(!result->content.empty());
    }

    if (wafer::fuzz::is_valid_utf8(req.arguments)) {
        WAFER_FUZZ_CHECK(wafer::fuzz::is_valid_utf8(result->content));
        wafer::api::chat_request next;
        next.model = "m";
        next.messages.push_back(wafer::api::message::tool_result(req.id, result->content));
        WAFER_FUZZ_CHECK(json::accept(wafer::api::serialize(next)));
    }
    return 0;
}
