// What a durable run writes to its store, and reads back to resume: the machine's inputs as
// journal entries (kinds and bodies listed in ARCHITECTURE.md, "Durable runs").
#pragma once

#include <wafer/store/run_store.hpp>

#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "loop/run_machine.hpp"

namespace wafer::detail {

// The reports operations make, as the driver hands them to the machine (and to the journal).
struct model_done {
    std::uint32_t op = 0;
    std::optional<model_reply> reply;
    std::chrono::microseconds took{0};
    model_failure why = model_failure::error;
    std::optional<run_error> error;
    /// A compaction summary, not a turn (journaled as "purpose":"summary" for readers such as
    /// `wafer runs show`; replay does not need it).
    bool summary = false;
};
struct tool_started {
    std::uint32_t op = 0;
    std::size_t k = 0;
};
/// Progress of a running call: events only, never journaled.
struct tool_progress {
    std::uint32_t op = 0;
    std::size_t k = 0;
    tools::call_progress progress;
};
struct tool_finished {
    std::uint32_t op = 0;
    std::size_t k = 0;
    tools::tool_result result;
    std::chrono::microseconds took{0};
    /// When the call ended (for its trace span; unset: when the report was made).
    std::chrono::steady_clock::time_point finished{};
    /// The call ran a child run (tools::tool_options::child_run): journaled as child_finished
    /// with it, or as child_paused when the child stopped at `child_pending`.
    std::optional<child_run> child;
    std::vector<pending_approval> child_pending;
};
struct dispatch_done {
    std::uint32_t op = 0;
    bool cancelled = false;
    std::optional<std::string> failure;
};
struct review_done {
    std::uint32_t op = 0;
    critic_review review;
};
/// A decision on a call that waits for approval (keyed by call id: it belongs to no operation).
struct approval_given {
    std::string call_id;
    approval_decision decision;
    /// Non-empty: a decision forwarded to this child run (the parent's machine ignores it).
    std::string run_id;
};
/// A resumed run runs a call again whose child stopped awaiting approval (keyed by call id).
struct child_resumed {
    std::string call_id;
};
using report = std::variant<
    model_done,
    tool_started,
    tool_progress,
    tool_finished,
    dispatch_done,
    review_done,
    approval_given,
    child_resumed>;

namespace journal_kind {
inline constexpr std::string_view model_reply = "model_reply";
inline constexpr std::string_view model_failed = "model_failed";
/// Not an input: a dispatch is about to start these calls (what makes a call in doubt).
inline constexpr std::string_view dispatch = "dispatch";
inline constexpr std::string_view tool_result = "tool_result";
/// A call's child run ended: a tool_result with {"child":{"run_id","stop_reason","turns",
/// "usage"}} (the child's outcome as the call's result). A resumed parent never runs it again.
inline constexpr std::string_view child_finished = "child_finished";
/// A call's child run stopped awaiting approval: {"op","k","child":{..},"pending":[..]}.
inline constexpr std::string_view child_paused = "child_paused";
/// A resumed run dispatches such a call again: {"call_id"}.
inline constexpr std::string_view child_resumed = "child_resumed";
inline constexpr std::string_view dispatch_done = "dispatch_done";
inline constexpr std::string_view review = "review";
/// A decision on a pending call: {"call_id","approved","arguments"?,"message"}. Written by the
/// run (live decisions) or, while it is stopped, by async_decide.
inline constexpr std::string_view approval = "approval";
/// A new exchange on a finished run: {"message"}.
inline constexpr std::string_view follow_up = "follow_up";
/// Not an input: the run stopped, {"stop_reason","pending"?: the calls awaiting approval}.
inline constexpr std::string_view stopped = "stopped";
} // namespace journal_kind

/// Whether a report goes to the journal. What cancellation produced does not: a cancelled run
/// stays resumable, and its cancelled calls are in doubt (or re-run) when it resumes.
bool journaled(const report& r, bool cancelling);

/// The entry for a report (journaled() must be true), or for a dispatch about to start.
store::journal_entry journal_entry_of(const report& r);
/// `children`: the calls that start child runs, by call id, with the child's run id (the
/// entry's "children" member; left out when empty: journals before it replay as they did).
store::journal_entry dispatch_entry(
    std::uint32_t op,
    const dispatch_job& job,
    const std::vector<std::pair<std::string, std::string>>& children = {}
);
store::journal_entry follow_up_entry(const std::string& message);
store::journal_entry stopped_entry(stop_reason why, const std::vector<pending_approval>& pending);
/// `run_id`: the child run the call belongs to (a decision forwarded to it; empty: the run's).
store::journal_entry approval_entry(
    const std::string& call_id, const approval_decision& d, const std::string& run_id = {}
);

/// The calls a journal's run waits for: those of its last stop with awaiting_approval that have
/// no decision after it (empty if its last stop was another or it has none). Throws
/// nlohmann::json exceptions on a malformed body.
std::vector<pending_approval> pending_in(const std::vector<store::journal_entry>& journal);

/// A report back from its entry. Throws nlohmann::json exceptions on a malformed body.
report report_of(const store::journal_entry& e);

/// What a run starts from, as stored in run_info::setup, with the application's metadata
/// (run_options::metadata; left out when null).
std::string setup_text(const run_setup& s, const nlohmann::json& metadata = {});
/// Reads setup_text() back (run_id, input, history). Throws nlohmann::json exceptions.
void read_setup(std::string_view text, run_setup& s);

/// A lease owner unique to this driver: "<host>:<pid>:<random>:<n>".
std::string make_lease_owner();
/// Whether `owner` (from make_lease_owner) names a process of this host that no longer exists:
/// its lease may be taken over at once instead of waiting for it to expire.
bool lease_owner_is_dead(const std::string& owner);

/// The journal of one run while it is driven: entries buffer until flush, which commits them in
/// one append (renewing the lease when it is due).
class journal_writer {
public:
    journal_writer(
        std::shared_ptr<store::run_store> store,
        std::string run_id,
        std::string owner,
        std::chrono::milliseconds lease_ttl
    );

    void add(store::journal_entry e) { pending_.push_back(std::move(e)); }
    bool has_pending() const noexcept { return !pending_.empty(); }

    /// Commits what is pending (and `update`). Throws wafer::error (store::errc).
    boost::asio::awaitable<void> async_flush(store::run_update update = {});
    /// Renews the lease if it is due; throws store::errc::lease_held if another owner took it.
    boost::asio::awaitable<void> async_keep_lease();
    /// When the lease must be renewed next.
    clock_type::time_point renew_at() const noexcept { return renew_at_; }
    void leased_now() { renew_at_ = clock_type::now() + lease_ttl_ / 3; }
    std::chrono::milliseconds lease_ttl() const noexcept { return lease_ttl_; }
    boost::asio::awaitable<void> async_release();

    const std::string& owner() const noexcept { return owner_; }
    store::run_store& store() noexcept { return *store_; }

private:
    std::shared_ptr<store::run_store> store_;
    std::string run_id_;
    std::string owner_;
    std::chrono::milliseconds lease_ttl_;
    std::vector<store::journal_entry> pending_;
    clock_type::time_point renew_at_{};
};

} // namespace wafer::detail
