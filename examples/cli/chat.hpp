// The interactive session: `wafer` with no command on a terminal, or `wafer chat`. A
// conversation with the coding agent in the workspace, one turn per line, journaled in the run
// store as one run (so `wafer runs` lists it and `wafer -c` continues it), with line editing,
// a history, slash commands (slash.hpp), inline approvals and a status line after each turn.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "commands.hpp"

namespace wafer::cli {

/// What the session is started with: the agent flags of `wafer run`, and which session to go on
/// with.
struct chat_flags : run_flags {
    /// -c / --continue: the last session (run) of this workspace.
    bool continue_last = false;
    /// --resume ID: that session.
    std::string resume_id;
    /// --workspace was given (a resumed session otherwise works in its own workspace).
    bool workspace_given = false;
};

/// `wafer chat` and the flags of bare `wafer` (the same ones), as main.cpp adds them.
struct chat_command {
    CLI::App* subcommand = nullptr;
    chat_flags flags;

    /// The command that asks for a session after parsing: `wafer chat`, or `app` itself when no
    /// subcommand was given; nullptr otherwise. Sets flags.workspace_given.
    CLI::App* selected(CLI::App& app);
};

/// Adds `wafer chat` to `app`, and the session's flags to both `app` (for bare `wafer`) and the
/// subcommand: -c/--continue, --resume ID, and the agent flags `add_agent_flags` adds (those of
/// `wafer run`). `app` must allow zero subcommands.
void add_chat_command(
    CLI::App& app,
    chat_command& cmd,
    const std::function<void(CLI::App&, run_flags&)>& add_agent_flags
);

/// The session. Returns the exit status: 0 after /exit or Ctrl-D; a second Ctrl-C during a turn
/// (or one at the prompt) ends the process with 130.
int chat(const chat_flags& flags);

} // namespace wafer::cli
