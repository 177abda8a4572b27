// Reading a credential from the environment so that nothing started later can read it there.
#pragma once

#include <string>

namespace wafer::cli {

/// The value of environment variable `name` (empty if unset), then removed from this process:
/// unsetenv() takes it out of `environ` (what child processes inherit), and the bytes of the
/// "NAME=value" entry are overwritten with NULs in place, because /proc/<pid>/environ shows the
/// process's original environment block, which unsetenv() does not touch. Without this, any
/// command wafer runs could read the key through /proc/$PPID/environ.
///
/// Call it before any other thread starts (getenv/unsetenv are not thread-safe).
std::string take_secret_env(const char* name);

} // namespace wafer::cli
