// Model families: how a model returns its reasoning and how it wants it sent back.
#pragma once

#include <optional>
#include <string_view>

namespace wafer {

/// The reasoning behaviour of a model, derived from its id (reference: cerebras-api.md §5).
enum class model_family {
    /// Not recognised. Reasoning, if any, is not sent back (the server may reject unknown keys).
    unknown,
    /// A model that does not reason (llama*, qwen-*-instruct).
    none,
    /// Z.ai GLM (zai-glm-4.7, glm-*): `reasoning` field; `clear_thinking: false` preserves it.
    glm,
    /// OpenAI gpt-oss (gpt-oss-120b): `reasoning` field.
    gpt_oss,
    /// Qwen thinking models (qwen-3-32b), raw format: reasoning in `<think>…</think>` in content.
    qwen,
};

std::string_view to_string(model_family f) noexcept;
/// Parses a name produced by to_string; nullopt for anything else.
std::optional<model_family> model_family_from_string(std::string_view s) noexcept;

/// Detects the family from a model id, case-insensitively:
/// `*glm*` -> glm; `gpt-oss*` -> gpt_oss; `qwen*`/`qwq*` -> qwen unless the id names an
/// instruct (non-thinking) variant, which is none; `llama*` -> none; anything else -> unknown.
/// A provider prefix such as `cerebras/` or `openai/` is ignored.
model_family detect_model_family(std::string_view model_id) noexcept;

} // namespace wafer
