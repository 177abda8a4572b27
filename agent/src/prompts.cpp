#include <wafer/prompts.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "detail/embedded_prompts.hpp"

namespace wafer {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

// Calls on_text for literal pieces and on_var for each {{name}}, in order.
template <class OnText, class OnVar>
void scan_template(std::string_view text, std::string_view name, OnText on_text, OnVar on_var) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t open = text.find("{{", pos);
        if (open == std::string_view::npos) {
            on_text(text.substr(pos));
            return;
        }
        on_text(text.substr(pos, open - pos));
        const std::size_t close = text.find("}}", open + 2);
        if (close == std::string_view::npos) {
            throw prompt_error(
                "prompt '" + std::string(name) + "': '{{' at offset " + std::to_string(open) +
                " is not closed"
            );
        }
        const std::string_view var = trim(text.substr(open + 2, close - open - 2));
        if (var.empty()) {
            throw prompt_error(
                "prompt '" + std::string(name) + "': empty '{{}}' at offset " + std::to_string(open)
            );
        }
        on_var(var);
        pos = close + 2;
    }
}

const detail::embedded_prompt* find_embedded(std::string_view name) {
    const auto& all = detail::embedded_prompts();
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& p) { return p.name == name; });
    return it == all.end() ? nullptr : &*it;
}

bool valid_name(std::string_view name) {
    // Names come from callers and may reach the file system: keep them to one path component.
    return !name.empty() && name.find('/') == std::string_view::npos &&
           name.find('\\') == std::string_view::npos && name != "." && name != "..";
}

} // namespace

std::string
render_prompt(std::string_view text, const prompt_vars& vars, std::string_view template_name) {
    std::string out;
    out.reserve(text.size());
    scan_template(
        text,
        template_name,
        [&](std::string_view piece) { out.append(piece); },
        [&](std::string_view var) {
            auto it = vars.find(var);
            if (it == vars.end()) {
                throw prompt_error(
                    "prompt '" + std::string(template_name) + "': no value for variable '" +
                    std::string(var) + "'"
                );
            }
            out.append(it->second);
        }
    );
    return out;
}

std::vector<std::string> prompt_variables(std::string_view text) {
    std::vector<std::string> names;
    scan_template(
        text,
        "prompt",
        [](std::string_view) {},
        [&](std::string_view var) {
            if (std::find(names.begin(), names.end(), var) == names.end()) {
                names.emplace_back(var);
            }
        }
    );
    return names;
}

prompt_library::prompt_library(std::filesystem::path override_dir)
    : override_dir_(std::move(override_dir)) {}

std::string prompt_library::text(std::string_view name) const {
    if (valid_name(name) && override_dir_) {
        const std::filesystem::path file = *override_dir_ / (std::string(name) + ".md");
        std::error_code ec;
        if (std::filesystem::is_regular_file(file, ec)) {
            std::ifstream in(file, std::ios::binary);
            std::ostringstream buf;
            buf << in.rdbuf();
            if (!in.good() && !in.eof()) {
                throw prompt_error(
                    "prompt '" + std::string(name) + "': cannot read " + file.string()
                );
            }
            return std::move(buf).str();
        }
    }
    if (const auto* p = find_embedded(name)) {
        return std::string(p->text);
    }
    std::string msg = "no prompt named '" + std::string(name) + "'; available:";
    for (const auto& n : names()) {
        msg += ' ';
        msg += n;
    }
    throw prompt_error(msg);
}

std::string prompt_library::render(std::string_view name, const prompt_vars& vars) const {
    return render_prompt(text(name), vars, name);
}

std::vector<std::string> prompt_library::names() const {
    std::vector<std::string> out;
    for (const auto& p : detail::embedded_prompts()) {
        out.emplace_back(p.name);
    }
    if (override_dir_) {
        std::error_code ec;
        for (std::filesystem::directory_iterator it(*override_dir_, ec), end; !ec && it != end;
             it.increment(ec)) {
            const auto& path = it->path();
            if (path.extension() == ".md" && it->is_regular_file(ec)) {
                out.push_back(path.stem().string());
            }
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

const prompt_library& prompt_library::builtin() {
    static const prompt_library lib;
    return lib;
}

} // namespace wafer
