// The Chat Completions request body with every parameter Cerebras documents
// (reference: cerebras-api.md §2). Unset fields are omitted from the JSON, never sent as null.
#pragma once

#include <wafer/api/message.hpp>
#include <wafer/api/shared_json.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wafer::api {

/// A function the model may call. `parameters` is a JSON Schema object, shared by copies of the
/// tool and rendered once (an agent sends the same tools every turn).
struct function_tool {
    std::string name;
    std::optional<std::string> description;
    shared_json parameters;
    std::optional<bool> strict;

    friend bool operator==(const function_tool&, const function_tool&) = default;
};

/// "none" | "auto" | "required" | {"type":"function","function":{"name":…}}.
struct tool_choice {
    enum class mode { none, auto_, required, function };
    mode choice = mode::auto_;
    std::string function_name; ///< only for mode::function

    static tool_choice none() { return {mode::none, {}}; }
    static tool_choice automatic() { return {mode::auto_, {}}; }
    static tool_choice required() { return {mode::required, {}}; }
    static tool_choice function(std::string name) { return {mode::function, std::move(name)}; }
    friend bool operator==(const tool_choice&, const tool_choice&) = default;
};

/// {"type":"text"} | {"type":"json_object"} | {"type":"json_schema","json_schema":{…}}.
struct response_format {
    enum class kind { text, json_object, json_schema };
    kind type = kind::text;
    std::string name; ///< json_schema only (required there)
    std::optional<std::string> description;
    std::optional<nlohmann::json> schema;
    std::optional<bool> strict;

    static response_format
    json_schema_of(std::string name, nlohmann::json schema, bool strict = true);
    friend bool operator==(const response_format&, const response_format&) = default;
};

enum class reasoning_effort { none, low, medium, high };
enum class reasoning_format { none, parsed, text_parsed, raw, hidden };
enum class service_tier { auto_, default_, flex, priority };

std::string_view to_string(reasoning_effort e) noexcept;
std::string_view to_string(reasoning_format f) noexcept;
std::string_view to_string(service_tier t) noexcept;

struct stream_options {
    std::optional<bool> include_usage;
    friend bool operator==(const stream_options&, const stream_options&) = default;
};

/// Predicted output: {"type":"content","content":"…"}.
struct prediction {
    std::string content;
    friend bool operator==(const prediction&, const prediction&) = default;
};

struct chat_request {
    std::string model;
    std::vector<message> messages;

    std::optional<std::int64_t> max_completion_tokens;
    std::optional<std::int64_t> min_completion_tokens;
    std::optional<double> temperature;
    std::optional<double> top_p;
    std::optional<double> frequency_penalty;
    std::optional<double> presence_penalty;
    std::optional<bool> logprobs;
    std::optional<int> top_logprobs;
    std::optional<int> n;
    /// Up to 4 stop sequences; one is sent as a string, several as an array.
    std::vector<std::string> stop;
    std::optional<std::int64_t> seed;
    std::optional<bool> stream;
    std::optional<api::stream_options> stream_options;
    std::optional<std::string> user;

    std::vector<function_tool> tools;
    std::optional<api::tool_choice> tool_choice;
    std::optional<bool> parallel_tool_calls;
    std::optional<api::response_format> response_format;

    std::optional<api::reasoning_effort> reasoning_effort;
    std::optional<api::reasoning_format> reasoning_format;
    /// GLM: false keeps earlier turns' reasoning that is sent back (preserved thinking).
    std::optional<bool> clear_thinking;
    /// GLM, deprecated by Cerebras in favour of reasoning_effort "none"; still sent if set.
    std::optional<bool> disable_reasoning;
    std::optional<api::prediction> prediction;
    std::optional<api::service_tier> service_tier;
    std::optional<std::string> prompt_cache_key;

    /// Extra top-level fields merged into the body as-is (for parameters wafer does not model).
    nlohmann::json extra_body = nlohmann::json::object();

    friend bool operator==(const chat_request&, const chat_request&) = default;
};

/// Checks the documented limits before anything is sent. Returns an empty string when the request
/// is valid, else a message naming the offending parameter.
std::string validate(const chat_request& req);

void to_json(nlohmann::json& j, const function_tool& t);
void from_json(const nlohmann::json& j, function_tool& t);
void to_json(nlohmann::json& j, const tool_choice& c);
void from_json(const nlohmann::json& j, tool_choice& c);
void to_json(nlohmann::json& j, const response_format& f);
void from_json(const nlohmann::json& j, response_format& f);
void to_json(nlohmann::json& j, const chat_request& r);
/// Reads a request body (used by the fake server and for journals); tolerant of unknown fields.
void from_json(const nlohmann::json& j, chat_request& r);

/// Serialises the request body to compact JSON text.
std::string serialize(const chat_request& r);

} // namespace wafer::api
