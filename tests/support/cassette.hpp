// Reads the go-vcr cassettes in ../shared/fixtures/recorded: just enough YAML for their shape
// (single-quoted scalars and `|+` block scalars under request/response keys). Test-only.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace wafer::test {

struct recorded_interaction {
    std::string request_body;
    std::string response_body;
    std::string response_content_type;
    int status = 0;
};

namespace detail {

inline std::size_t indent_of(const std::string& line) {
    return line.find_first_not_of(' ');
}

// A single-quoted YAML scalar starting at `pos` of lines[i]; '' is a quote, line breaks fold to
// spaces.
inline std::string
single_quoted(const std::vector<std::string>& lines, std::size_t& i, std::size_t pos) {
    std::string out;
    std::string line = lines[i];
    ++pos; // opening quote
    for (;;) {
        for (; pos < line.size(); ++pos) {
            if (line[pos] == '\'') {
                if (pos + 1 < line.size() && line[pos + 1] == '\'') {
                    out += '\'';
                    ++pos;
                    continue;
                }
                return out;
            }
            out += line[pos];
        }
        if (++i >= lines.size()) {
            throw std::runtime_error("unterminated single-quoted scalar");
        }
        line = lines[i];
        pos = line.find_first_not_of(' ');
        out += ' ';
    }
}

// A `|+` block scalar: the following lines indented deeper than `key_indent`, newlines kept.
inline std::string
block_keep(const std::vector<std::string>& lines, std::size_t& i, std::size_t key_indent) {
    std::string out;
    std::size_t block_indent = std::string::npos;
    while (i + 1 < lines.size()) {
        const std::string& next = lines[i + 1];
        std::size_t ind = indent_of(next);
        if (ind != std::string::npos && ind <= key_indent) {
            break;
        }
        ++i;
        if (ind == std::string::npos) {
            out += '\n';
            continue;
        }
        if (block_indent == std::string::npos) {
            block_indent = ind;
        }
        out += next.substr(std::min(block_indent, next.size()));
        out += '\n';
    }
    // Trailing blank lines before the next key belong to the scalar (keep), but lines made only
    // of spaces at the block's end were counted as newlines above, which is what `+` means.
    return out;
}

} // namespace detail

inline std::vector<recorded_interaction> read_cassette(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    std::vector<recorded_interaction> out;
    bool in_response = false;
    bool in_content_type = false;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string& line = lines[i];
        std::size_t ind = detail::indent_of(line);
        if (ind == std::string::npos) {
            continue;
        }
        std::string rest = line.substr(ind);
        if (rest.starts_with("- id:")) {
            out.emplace_back();
            in_response = false;
        } else if (rest == "request:") {
            in_response = false;
        } else if (rest == "response:") {
            in_response = true;
        } else if (rest.starts_with("body: ") && !out.empty()) {
            std::string value;
            if (rest == "body: |+" || rest == "body: |") {
                value = detail::block_keep(lines, i, ind);
            } else if (rest[6] == '\'') {
                value = detail::single_quoted(lines, i, ind + 6);
            } else {
                value = rest.substr(6);
            }
            (in_response ? out.back().response_body : out.back().request_body) = value;
        } else if (rest.starts_with("code: ") && in_response && !out.empty()) {
            out.back().status = std::stoi(rest.substr(6));
        } else if (rest == "Content-Type:") {
            in_content_type = in_response;
            continue;
        } else if (in_content_type && rest.starts_with("- ") && !out.empty()) {
            out.back().response_content_type = rest.substr(2);
        }
        in_content_type = false;
    }
    return out;
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace wafer::test
