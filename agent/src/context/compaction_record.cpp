#include <wafer/conversation.hpp>

#include <array>
#include <memory>
#include <openssl/evp.h>
#include <stdexcept>

#include "detail/json_util.hpp"
#include "detail/meta_json.hpp"

namespace wafer {

using nlohmann::json;

namespace {

constexpr std::array<std::pair<compaction_strategy, std::string_view>, 5> strategy_names{{
    {compaction_strategy::clamp_tool_results, "clamp_tool_results"},
    {compaction_strategy::dedupe_reads, "dedupe_reads"},
    {compaction_strategy::drop_reasoning, "drop_reasoning"},
    {compaction_strategy::clear_tool_results, "clear_tool_results"},
    {compaction_strategy::summarise, "summarise"},
}};

std::optional<compaction_trigger> trigger_from_string(std::string_view s) noexcept {
    for (auto t :
         {compaction_trigger::threshold,
          compaction_trigger::on_demand,
          compaction_trigger::overflow}) {
        if (to_string(t) == s) {
            return t;
        }
    }
    return std::nullopt;
}

json original_json(const replaced_message& o) {
    json j = {{"index", o.index}, {"message", o.message}};
    detail::write_meta(j, o.meta, o.message);
    return j;
}

} // namespace

std::string_view to_string(compaction_strategy s) noexcept {
    for (const auto& [v, name] : strategy_names) {
        if (v == s) {
            return name;
        }
    }
    return "unknown";
}

std::optional<compaction_strategy> compaction_strategy_from_string(std::string_view s) noexcept {
    for (const auto& [v, name] : strategy_names) {
        if (name == s) {
            return v;
        }
    }
    return std::nullopt;
}

std::string_view to_string(compaction_trigger t) noexcept {
    switch (t) {
    case compaction_trigger::threshold:
        return "threshold";
    case compaction_trigger::on_demand:
        return "on_demand";
    case compaction_trigger::overflow:
        return "overflow";
    }
    return "unknown";
}

std::string compaction_digest(const std::vector<replaced_message>& originals) {
    // SHA-256 over each field with its length in front (no JSON rendering: this runs on every
    // compaction step, over up to the whole history).
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(
        EVP_MD_CTX_new(), EVP_MD_CTX_free
    );
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
        throw std::bad_alloc();
    }
    const auto number = [&](std::uint64_t v) {
        std::array<unsigned char, 8> b{};
        for (std::size_t i = 0; i < 8; ++i) {
            b[i] = static_cast<unsigned char>(v >> (8 * i));
        }
        EVP_DigestUpdate(ctx.get(), b.data(), b.size());
    };
    const auto field = [&](std::string_view s) {
        number(s.size());
        EVP_DigestUpdate(ctx.get(), s.data(), s.size());
    };
    const auto optional = [&](const std::optional<std::string>& s) {
        number(s ? 1 : 0);
        if (s) {
            field(*s);
        }
    };
    number(originals.size());
    for (const auto& o : originals) {
        const api::message& m = o.message;
        number(o.index);
        number(static_cast<std::uint64_t>(m.role));
        optional(m.content);
        number(m.parts.size());
        for (const auto& p : m.parts) {
            number(static_cast<std::uint64_t>(p.type));
            field(p.text);
            field(p.url);
            optional(p.detail);
        }
        optional(m.reasoning);
        number(m.tool_calls.size());
        for (const auto& c : m.tool_calls) {
            field(c.id);
            field(c.name);
            field(c.arguments);
        }
        optional(m.tool_call_id);
        optional(m.name);
        number(o.meta.turn);
        number((o.meta.is_error ? 1U : 0U) | (o.meta.synthetic ? 2U : 0U));
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> d{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), d.data(), &n);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < n; ++i) {
        out += hex[d[i] >> 4];
        out += hex[d[i] & 15];
    }
    return out;
}

void to_json(json& j, const compaction_record& r) {
    json originals = json::array();
    for (const auto& o : r.originals) {
        originals.push_back(original_json(o));
    }
    j = {
        {"seq", r.seq},
        {"turn", r.turn},
        {"strategy", to_string(r.strategy)},
        {"trigger", to_string(r.trigger)},
        {"first", r.first},
        {"replaced", r.replaced},
        {"replacement", r.replacement},
        {"tokens_before", r.tokens_before},
        {"tokens_after", r.tokens_after},
        {"digest", r.digest},
        {"originals", std::move(originals)},
    };
}

void from_json(const json& j, compaction_record& r) {
    compaction_record out;
    detail::read_value(j, "seq", out.seq);
    detail::read_value(j, "turn", out.turn);
    const auto s = compaction_strategy_from_string(j.at("strategy").get<std::string>());
    const auto t = trigger_from_string(j.at("trigger").get<std::string>());
    if (!s || !t) {
        throw std::invalid_argument("conversation: unknown compaction strategy or trigger");
    }
    out.strategy = *s;
    out.trigger = *t;
    detail::read_value(j, "first", out.first);
    detail::read_value(j, "replaced", out.replaced);
    detail::read_value(j, "replacement", out.replacement);
    detail::read_value(j, "tokens_before", out.tokens_before);
    detail::read_value(j, "tokens_after", out.tokens_after);
    j.at("digest").get_to(out.digest);
    for (const json& e : j.at("originals")) {
        replaced_message o;
        detail::read_value(e, "index", o.index);
        o.message = e.at("message").get<api::message>();
        detail::read_meta(e, o.meta, o.message);
        out.originals.push_back(std::move(o));
    }
    r = std::move(out);
}

} // namespace wafer
