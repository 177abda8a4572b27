// The streaming hot path: one call per SSE event. simdjson's on-demand API walks the chunk once,
// in whatever field order the server used, and only the fields we need are materialised. Keys are
// compared raw (no unescaping copy): the names we look for contain no escapes.
#include <wafer/api/chunk_decoder.hpp>
#include <wafer/error.hpp>

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <string>
#include <vector>

namespace wafer::api {

namespace od = simdjson::ondemand;

struct chunk_decoder::impl {
    od::parser parser;
    std::string padded; // payload copy with SIMDJSON_PADDING spare bytes
    std::vector<tool_call_delta> calls;
    chunk_view view;
};

namespace {

using simdjson::error_code;
using simdjson::SUCCESS;

// Deeper chunks are rejected as malformed.
constexpr std::size_t max_chunk_depth = 64;

bool is_null(od::value& v) {
    od::json_type t;
    return v.type().get(t) == SUCCESS && t == od::json_type::null;
}

// Reads a string value; null leaves `out` empty and `present` false. Returns false on a type
// error. The string is tried first: it is the common case, and a failed get_string() only peeks.
bool read_string(od::value v, std::string_view& out, bool* present = nullptr) {
    auto err = v.get_string().get(out);
    if (err == SUCCESS) {
        if (present) {
            *present = true;
        }
        return true;
    }
    return err == simdjson::INCORRECT_TYPE && is_null(v);
}

// Reads a string, number or null as text (error codes may be numbers on some servers).
void read_text_loose(od::value v, std::string_view& out) {
    od::json_type t;
    if (v.type().get(t) != SUCCESS) {
        return;
    }
    if (t == od::json_type::string) {
        if (v.get_string().get(out) != SUCCESS) {
            out = {};
        }
    } else if (t == od::json_type::number) {
        out = v.raw_json_token();
        while (!out.empty() && (out.back() == ' ' || out.back() == '\n' || out.back() == '\r' ||
                                out.back() == '\t' || out.back() == ',' || out.back() == '}')) {
            out.remove_suffix(1);
        }
    }
}

std::int64_t read_int(od::value v) {
    std::int64_t i = 0;
    if (v.get_int64().get(i) == SUCCESS) {
        return i;
    }
    double d = 0; // some servers send counts as floats
    // Outside [-2^63, 2^63) the conversion is undefined: such a count is as malformed as a string.
    constexpr double two_pow_63 = 9223372036854775808.0;
    if (is_null(v) || v.get_double().get(d) != SUCCESS || !(d >= -two_pow_63 && d < two_pow_63)) {
        return 0;
    }
    return static_cast<std::int64_t>(d);
}

double read_double(od::value v) {
    double d = 0;
    if (is_null(v) || v.get_double().get(d) != SUCCESS) {
        return 0;
    }
    return d;
}

// Calls f(key, value) for each member of the object `v`; a null `v` has no members. Returns false
// if `v` is neither, a member is malformed, or f reports a type error (returns false).
template <class F>
bool for_each_member(od::value v, F&& f) {
    if (is_null(v)) {
        return true;
    }
    od::object obj;
    if (v.get_object().get(obj) != SUCCESS) {
        return false;
    }
    for (auto field : obj) {
        od::raw_json_string key;
        od::value val;
        if (field.key().get(key) != SUCCESS || field.value().get(val) != SUCCESS || !f(key, val)) {
            return false;
        }
    }
    return true;
}

bool decode_usage(od::value v, usage& u) {
    auto details = [&u](od::raw_json_string key, od::value val) {
        if (key == "cached_tokens") {
            u.cached_tokens = read_int(val);
        } else if (key == "reasoning_tokens") {
            u.reasoning_tokens = read_int(val);
        } else if (key == "accepted_prediction_tokens") {
            u.accepted_prediction_tokens = read_int(val);
        } else if (key == "rejected_prediction_tokens") {
            u.rejected_prediction_tokens = read_int(val);
        }
        return true;
    };
    return for_each_member(v, [&](od::raw_json_string key, od::value val) {
        if (key == "prompt_tokens") {
            u.prompt_tokens = read_int(val);
        } else if (key == "completion_tokens") {
            u.completion_tokens = read_int(val);
        } else if (key == "total_tokens") {
            u.total_tokens = read_int(val);
        } else if (key == "prompt_tokens_details" || key == "completion_tokens_details") {
            return for_each_member(val, details);
        }
        return true;
    });
}

bool decode_time_info(od::value v, time_info& t) {
    return for_each_member(v, [&t](od::raw_json_string key, od::value val) {
        if (key == "queue_time") {
            t.queue_time = read_double(val);
        } else if (key == "prompt_time") {
            t.prompt_time = read_double(val);
        } else if (key == "completion_time") {
            t.completion_time = read_double(val);
        } else if (key == "total_time") {
            t.total_time = read_double(val);
        } else if (key == "created") {
            t.created = read_double(val);
        }
        return true;
    });
}

bool decode_tool_calls(od::value v, std::vector<tool_call_delta>& calls) {
    od::array arr;
    if (is_null(v)) {
        return true;
    }
    if (v.get_array().get(arr) != SUCCESS) {
        return false;
    }
    int position = 0;
    for (auto element : arr) {
        od::value call;
        if (element.get(call) != SUCCESS) {
            return false;
        }
        tool_call_delta d;
        d.index = position++;
        auto function = [&d](od::raw_json_string key, od::value val) {
            if (key == "name") {
                return read_string(val, d.name);
            }
            if (key == "arguments") {
                return read_string(val, d.arguments);
            }
            return true;
        };
        bool ok = for_each_member(call, [&](od::raw_json_string key, od::value val) {
            if (key == "index") {
                d.index = static_cast<int>(read_int(val));
            } else if (key == "id") {
                return read_string(val, d.id);
            } else if (key == "function") {
                return for_each_member(val, function);
            }
            return true;
        });
        if (!ok) {
            return false;
        }
        calls.push_back(d);
    }
    return true;
}

bool decode_delta(od::value v, chunk_view& view, std::vector<tool_call_delta>& calls) {
    return for_each_member(v, [&](od::raw_json_string key, od::value val) {
        if (key == "content") {
            return read_string(val, view.content, &view.has_content);
        }
        if (key == "reasoning") {
            return read_string(val, view.reasoning, &view.has_reasoning);
        }
        if (key == "role") {
            return read_string(val, view.role);
        }
        if (key == "tool_calls") {
            return decode_tool_calls(val, calls);
        }
        return true;
    });
}

bool decode_choices(od::value v, chunk_view& view, std::vector<tool_call_delta>& calls) {
    od::array arr;
    if (is_null(v)) {
        return true;
    }
    if (v.get_array().get(arr) != SUCCESS) {
        return false;
    }
    bool first = true;
    for (auto element : arr) {
        if (!first) {
            continue; // wafer never asks for n > 1; later choices are skipped
        }
        first = false;
        od::value choice;
        if (element.get(choice) != SUCCESS) {
            return false;
        }
        bool ok = for_each_member(choice, [&](od::raw_json_string key, od::value val) {
            if (key == "delta") {
                return decode_delta(val, view, calls);
            }
            if (key == "finish_reason") {
                std::string_view reason;
                if (!read_string(val, reason)) {
                    return false;
                }
                view.finish_reason = finish_reason_from_string(reason);
            }
            return true;
        });
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool decode_error(od::value v, stream_error& e) {
    od::json_type t;
    if (v.type().get(t) != SUCCESS) {
        return false;
    }
    if (t == od::json_type::string) {
        return v.get_string().get(e.message) == SUCCESS;
    }
    return for_each_member(v, [&e](od::raw_json_string key, od::value val) {
        if (key == "message") {
            read_text_loose(val, e.message);
        } else if (key == "type") {
            read_text_loose(val, e.type);
        } else if (key == "code") {
            read_text_loose(val, e.code);
        } else if (key == "param") {
            read_text_loose(val, e.param);
        } else if (key == "status_code" && e.status_code == 0) {
            e.status_code = static_cast<int>(read_int(val));
        }
        return true;
    });
}

bool decode_chunk(od::document& doc, chunk_view& view, std::vector<tool_call_delta>& calls) {
    od::object obj;
    if (doc.get_object().get(obj) != SUCCESS) {
        return false;
    }
    int status_code = 0;
    for (auto field : obj) {
        od::raw_json_string key;
        if (field.key().get(key) != SUCCESS) {
            return false;
        }
        od::value val;
        if (field.value().get(val) != SUCCESS) {
            return false;
        }
        if (key == "choices") {
            if (!decode_choices(val, view, calls)) {
                return false;
            }
        } else if (key == "id") {
            if (!read_string(val, view.id)) {
                return false;
            }
        } else if (key == "model") {
            if (!read_string(val, view.model)) {
                return false;
            }
        } else if (key == "system_fingerprint") {
            if (!read_string(val, view.system_fingerprint)) {
                return false;
            }
        } else if (key == "created") {
            view.created = read_int(val);
        } else if (key == "usage") {
            if (!is_null(val)) {
                view.usage.emplace();
                if (!decode_usage(val, *view.usage)) {
                    return false;
                }
            }
        } else if (key == "time_info") {
            if (!is_null(val)) {
                view.time_info.emplace();
                if (!decode_time_info(val, *view.time_info)) {
                    return false;
                }
            }
        } else if (key == "error") {
            if (!is_null(val)) {
                view.error.emplace();
                if (!decode_error(val, *view.error)) {
                    return false;
                }
            }
        } else if (key == "status_code") {
            status_code = static_cast<int>(read_int(val));
        }
    }
    if (view.error && status_code != 0) {
        view.error->status_code = status_code;
    }
    // Nothing may follow the object: current_location() fails only at the end of the document.
    const char* trailing = nullptr;
    return doc.current_location().get(trailing) != SUCCESS;
}

} // namespace

chunk_decoder::chunk_decoder() : impl_(std::make_unique<impl>()) {
    impl_->calls.reserve(8);
}
chunk_decoder::~chunk_decoder() = default;
chunk_decoder::chunk_decoder(chunk_decoder&&) noexcept = default;
chunk_decoder& chunk_decoder::operator=(chunk_decoder&&) noexcept = default;

const chunk_view& chunk_decoder::decode(std::string_view payload, boost::system::error_code& ec) {
    impl& s = *impl_;
    s.view = chunk_view{};
    s.calls.clear();
    ec.clear();

    s.padded.assign(payload);
    s.padded.resize(payload.size() + simdjson::SIMDJSON_PADDING, ' ');
    if (s.parser.capacity() < payload.size() || s.parser.capacity() == 0) {
        // Left to itself the parser reallocates for every longer chunk and sizes its depth
        // stacks for 1024 levels (about 10 KB per open stream); grow in powers of two instead,
        // with a depth limit far above any chunk's (about 7 levels).
        const std::size_t cap = std::max<std::size_t>(512, std::bit_ceil(payload.size()));
        if (s.parser.allocate(cap, max_chunk_depth) != SUCCESS) {
            ec = errc::invalid_response;
            return s.view;
        }
    }
    od::document doc;
    if (s.parser.iterate(s.padded.data(), payload.size(), s.padded.size()).get(doc) != SUCCESS ||
        !decode_chunk(doc, s.view, s.calls)) {
        s.view = chunk_view{};
        s.calls.clear();
        ec = errc::invalid_response;
        return s.view;
    }
    s.view.tool_calls = s.calls.data();
    s.view.tool_call_count = s.calls.size();
    return s.view;
}

} // namespace wafer::api
