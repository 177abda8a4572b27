// Removing known secrets (the API key) from a byte stream that arrives in pieces.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace wafer::tools {

/// Replaces every occurrence of any of a set of secret strings with a marker, in a stream fed in
/// arbitrary chunks: a secret split across chunks is still found, because the last
/// (longest secret - 1) bytes are held back until the next chunk or finish(). Sans-io.
///
/// Empty secrets are ignored. Where occurrences overlap, the earliest (then the longest) wins.
class secret_redactor {
public:
    static constexpr std::string_view marker = "[redacted]";

    secret_redactor() = default;
    explicit secret_redactor(std::vector<std::string> secrets);

    /// True if there is at least one non-empty secret (otherwise feed() passes bytes through).
    bool active() const noexcept { return !secrets_.empty(); }

    /// Appends to `out` the redacted bytes of `chunk` (and of held-back input) that can no
    /// longer be part of a secret.
    void feed(std::string_view chunk, std::string& out);
    /// Appends everything still held back, redacted. The redactor can be fed again afterwards.
    void finish(std::string& out);

    /// Redacts a whole text at once.
    static std::string redact(std::string_view text, const std::vector<std::string>& secrets);

private:
    // Emits pending_ up to `limit` (exclusive), redacting complete occurrences; returns the
    // position where the unconsumed rest starts.
    std::size_t scan(std::size_t limit, std::string& out);

    std::vector<std::string> secrets_;
    std::size_t longest_ = 0;
    std::string pending_;
};

} // namespace wafer::tools
