#include <wafer/critic.hpp>

#include <algorithm>
#include <stdexcept>

namespace wafer {

bool critic::covers(std::string_view tool_name, bool read_only) const {
    if (tool_names.empty()) {
        return !read_only;
    }
    return std::find(tool_names.begin(), tool_names.end(), tool_name) != tool_names.end();
}

std::vector<std::string_view> builtin_critic_names() {
    return {"security", "code-review", "qa", "performance"};
}

critic builtin_critic(
    std::string_view name, std::shared_ptr<wafer::model> model, builtin_critic_options options
) {
    const auto names = builtin_critic_names();
    if (std::find(names.begin(), names.end(), name) == names.end()) {
        std::string msg = "unknown critic '" + std::string(name) + "'; known critics:";
        for (auto n : names) {
            msg += ' ';
            msg += n;
        }
        throw std::invalid_argument(msg);
    }
    options.vars.try_emplace("language", "English");
    const prompt_library& lib = options.prompts ? *options.prompts : prompt_library::builtin();

    critic c;
    c.name = std::string(name);
    c.model = std::move(model);
    c.instructions = lib.render(name, options.vars);
    c.timeout = options.timeout;
    if (name == "security") {
        c.gates = gate::before_tools;
        c.tool_names = {"write_file", "edit_file", "run_command"};
    } else {
        c.gates = {gate::after_step, gate::final_answer};
    }
    return c;
}

} // namespace wafer
