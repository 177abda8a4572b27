// A real terminal for the CLI's tests: a tmux server of its own (its own socket and config), one
// pane running wafer through a shell that prints wafer's exit status and stays, so that the pane
// can be read after wafer ended. Driven with send-keys, read with capture-pane; every wait polls
// with a generous bound. Include after cli_harness.hpp, inside its WAFER_CLI_PATH guard.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <random>

namespace wafer::testing::cli {

/// Single quotes for sh.
inline std::string sh_quoted(const std::string& s) {
    std::string out = "'";
    for (const char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

inline bool tmux_available() {
    return std::system("tmux -V >/dev/null 2>&1") == 0;
}

class tmux_pane {
public:
    tmux_pane() {
        std::random_device rd;
        dir_ = fs::temp_directory_path() / ("wafer-tmux-" + std::to_string(rd()));
        fs::create_directories(dir_ / "config");
        std::ofstream(dir_ / "tmux.conf") << "set -g history-limit 50000\nset -g status off\n";
    }
    ~tmux_pane() {
        tmux("kill-server");
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    tmux_pane(const tmux_pane&) = delete;
    tmux_pane& operator=(const tmux_pane&) = delete;

    /// Starts `wafer args...` in `cwd` with the state directory `state` and no endpoint or
    /// configuration from the environment. A server per start: a fresh screen, and the last
    /// one's pane stays readable until then.
    bool start(const fs::path& cwd, const fs::path& state, const std::vector<std::string>& args) {
        std::string script = "trap : INT\n"
                             "unset CEREBRAS_API_KEY CEREBRAS_BASE_URL OPENAI_API_KEY HTTPS_PROXY "
                             "https_proxy HTTP_PROXY http_proxy\n"
                             "export XDG_STATE_HOME=" +
                             sh_quoted(state.string()) +
                             " XDG_CONFIG_HOME=" + sh_quoted((dir_ / "config").string()) +
                             " TERM=xterm-256color\ncd " + sh_quoted(cwd.string()) + "\n" +
                             sh_quoted(WAFER_CLI_PATH);
        for (const auto& a : args) {
            script += " " + sh_quoted(a);
        }
        script += "\necho \"wafer exited $?\"\nsleep 3600\n";
        const fs::path file = dir_ / ("run" + std::to_string(++runs_) + ".sh");
        std::ofstream(file) << script;
        if (runs_ > 1) {
            tmux("kill-server");
        }
        socket_ = (dir_ / ("socket" + std::to_string(runs_))).string();
        return tmux("new-session -d -s pane -x 200 -y 50 " + sh_quoted("sh " + file.string())) == 0;
    }
    /// As above, with a state directory of the pane's own.
    bool start(const fs::path& cwd, const std::vector<std::string>& args) {
        return start(cwd, dir_ / "state", args);
    }

    /// Types `text` (literally, if any) and Enter.
    void type(const std::string& text) {
        if (!text.empty()) {
            CHECK(tmux("send-keys -t pane -l -- " + sh_quoted(text)) == 0);
        }
        CHECK(tmux("send-keys -t pane Enter") == 0);
    }
    void key(const std::string& name) { CHECK(tmux("send-keys -t pane " + name) == 0); }

    /// Everything the pane shows and scrolled past, wrapped lines joined.
    std::string screen() {
        const std::string cmd =
            "tmux -S " + sh_quoted(socket_) + " capture-pane -p -J -S -50000 -t pane 2>/dev/null";
        std::string out;
        if (FILE* p = ::popen(cmd.c_str(), "r")) {
            char buf[4096];
            for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) {
                out.append(buf, n);
            }
            ::pclose(p);
        }
        return out;
    }

    /// Waits until the pane shows `text` at least `times` times (120 s at most); false if it
    /// never does.
    bool wait_for(const std::string& text, std::size_t times = 1) {
        using namespace std::chrono_literals;
        const auto end = std::chrono::steady_clock::now() + 120s;
        while (std::chrono::steady_clock::now() < end) {
            if (count(screen(), text) >= times) {
                return true;
            }
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }

private:
    int tmux(const std::string& args) {
        const std::string cmd = "tmux -S " + sh_quoted(socket_) + " -f " +
                                sh_quoted((dir_ / "tmux.conf").string()) + " " + args +
                                " >/dev/null 2>&1";
        return std::system(cmd.c_str());
    }

    fs::path dir_;
    std::string socket_;
    int runs_ = 0;
};

} // namespace wafer::testing::cli
