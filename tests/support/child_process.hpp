// A second process for tests: this test binary, re-executed to run one (skipped) test case.
#pragma once

#include <string>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace wafer::testing {

/// Starts `/proc/self/exe --test-case=<test_case> --no-skip --out=/dev/null` with `env` added to
/// this process's environment (or as its whole environment without `inherit`). Everything is
/// built before fork: the child only execs. Returns the child's pid, or -1.
inline pid_t spawn_test_case(
    const std::string& test_case, const std::vector<std::string>& env, bool inherit = true
) {
    std::vector<std::string> env_strings;
    if (inherit) {
        for (char** e = environ; *e != nullptr; ++e) {
            env_strings.emplace_back(*e);
        }
    }
    env_strings.insert(env_strings.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_strings) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    std::string self = "wafer_tests";
    std::string filter = "--test-case=" + test_case;
    std::string no_skip = "--no-skip";
    std::string quiet = "--out=/dev/null";
    std::vector<char*> argv{self.data(), filter.data(), no_skip.data(), quiet.data(), nullptr};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execve("/proc/self/exe", argv.data(), envp.data());
        ::_exit(3);
    }
    return pid;
}

} // namespace wafer::testing
