// Landlock through the raw system calls. The installed <linux/landlock.h> may predate the ABI the
// kernel offers (Debian 12's headers stop at ABI 2), so the newer constants and the full ruleset
// attribute are spelled out here; the kernel accepts the attribute size of the ABI it is given.
#include "sandbox/landlock.hpp"

#include <wafer/tools/sandbox.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace wafer::tools {

namespace {

namespace ll {
// File system rights (ABI 1 unless noted).
constexpr std::uint64_t fs_write_file = 1ULL << 1;
constexpr std::uint64_t fs_remove_dir = 1ULL << 4;
constexpr std::uint64_t fs_remove_file = 1ULL << 5;
constexpr std::uint64_t fs_make_char = 1ULL << 6;
constexpr std::uint64_t fs_make_dir = 1ULL << 7;
constexpr std::uint64_t fs_make_reg = 1ULL << 8;
constexpr std::uint64_t fs_make_sock = 1ULL << 9;
constexpr std::uint64_t fs_make_fifo = 1ULL << 10;
constexpr std::uint64_t fs_make_block = 1ULL << 11;
constexpr std::uint64_t fs_make_sym = 1ULL << 12;
constexpr std::uint64_t fs_refer = 1ULL << 13;    // ABI 2
constexpr std::uint64_t fs_truncate = 1ULL << 14; // ABI 3
// Network rights (ABI 4).
constexpr std::uint64_t net_bind_tcp = 1ULL << 0;
constexpr std::uint64_t net_connect_tcp = 1ULL << 1;
// Scopes (ABI 6).
constexpr std::uint64_t scope_abstract_unix_socket = 1ULL << 0;
constexpr std::uint64_t scope_signal = 1ULL << 1;

constexpr unsigned create_ruleset_version = 1U << 0;
constexpr int rule_path_beneath = 1;

struct ruleset_attr {
    std::uint64_t handled_access_fs;
    std::uint64_t handled_access_net; // ABI 4
    std::uint64_t scoped;             // ABI 6
};

struct __attribute__((packed)) path_beneath_attr {
    std::uint64_t allowed_access;
    std::int32_t parent_fd;
};

long create_ruleset(const ruleset_attr* attr, std::size_t size, unsigned flags) {
    return ::syscall(SYS_landlock_create_ruleset, attr, size, flags);
}
long add_rule(int fd, int type, const void* attr) {
    return ::syscall(SYS_landlock_add_rule, fd, type, attr, 0U);
}
} // namespace ll

// Rights that only make sense on a directory (creating and removing entries, renames into it).
constexpr std::uint64_t dir_only_rights =
    ll::fs_remove_dir | ll::fs_remove_file | ll::fs_make_char | ll::fs_make_dir | ll::fs_make_reg |
    ll::fs_make_sock | ll::fs_make_fifo | ll::fs_make_block | ll::fs_make_sym | ll::fs_refer;

std::uint64_t write_rights(int abi) {
    std::uint64_t r = ll::fs_write_file | ll::fs_remove_dir | ll::fs_remove_file |
                      ll::fs_make_char | ll::fs_make_dir | ll::fs_make_reg | ll::fs_make_sock |
                      ll::fs_make_fifo | ll::fs_make_block | ll::fs_make_sym;
    if (abi >= 2) {
        r |= ll::fs_refer;
    }
    if (abi >= 3) {
        r |= ll::fs_truncate;
    }
    return r;
}

// Devices every shell script writes to; none of them reaches anything outside the sandbox.
constexpr const char* harmless_devices[] = {
    "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};

} // namespace

std::optional<sandbox_mode> parse_sandbox_mode(std::string_view text) {
    if (text == "off") {
        return sandbox_mode::off;
    }
    if (text == "on") {
        return sandbox_mode::on;
    }
    if (text == "auto") {
        return sandbox_mode::automatic;
    }
    return std::nullopt;
}

std::string_view to_string(sandbox_mode mode) {
    switch (mode) {
    case sandbox_mode::off:
        return "off";
    case sandbox_mode::on:
        return "on";
    case sandbox_mode::automatic:
        return "auto";
    }
    return "off";
}

sandbox_support probe_sandbox_support() {
    sandbox_support s;
    const long v = ll::create_ruleset(nullptr, 0, ll::create_ruleset_version);
    if (v > 0) {
        s.landlock_abi = static_cast<int>(v);
        return s;
    }
    const int err = errno;
    if (err == ENOSYS) {
        s.reason = "this kernel has no Landlock support (landlock_create_ruleset: ENOSYS)";
    } else if (err == EOPNOTSUPP) {
        s.reason = "Landlock is disabled in this kernel (boot with lsm=...,landlock)";
    } else {
        s.reason = std::string("Landlock is not usable: ") + std::strerror(err);
    }
    return s;
}

sandbox_plan plan_sandbox(const sandbox_policy& policy, const sandbox_support& support) {
    sandbox_plan plan;
    if (policy.mode == sandbox_mode::off) {
        return plan;
    }
    const std::string reason = support.reason.empty() ? "no Landlock" : support.reason;
    if (support.landlock_abi <= 0) {
        if (policy.mode == sandbox_mode::on) {
            throw sandbox_unavailable("the sandbox is required but unavailable: " + reason);
        }
        plan.note = "sandbox unavailable (" + reason + "): the command ran unconfined";
        return plan;
    }
    plan.confine = true;
    if (!policy.allow_network) {
        plan.deny_tcp = support.tcp_rules();
        plan.network_namespace = policy.network_namespace || !support.tcp_rules();
        // Without TCP rules the namespace is all that denies the network: required in on mode.
        plan.network_namespace_required = !support.tcp_rules() && policy.mode == sandbox_mode::on;
    }
    return plan;
}

namespace detail {

landlock_ruleset::~landlock_ruleset() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

landlock_ruleset& landlock_ruleset::operator=(landlock_ruleset&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

landlock_ruleset make_landlock_ruleset(
    const sandbox_support& support,
    const std::vector<std::filesystem::path>& writable,
    bool deny_tcp
) {
    const int abi = support.landlock_abi;
    if (abi <= 0) {
        throw sandbox_unavailable(
            "sandbox unavailable: " + (support.reason.empty() ? "no Landlock" : support.reason)
        );
    }
    const std::uint64_t writes = write_rights(abi);
    ll::ruleset_attr attr{};
    attr.handled_access_fs = writes; // reads and execution are not handled: allowed everywhere
    std::size_t size = sizeof(std::uint64_t);
    if (abi >= 4) {
        attr.handled_access_net = deny_tcp ? (ll::net_bind_tcp | ll::net_connect_tcp) : 0;
        size = 2 * sizeof(std::uint64_t);
    }
    if (abi >= 6) {
        attr.scoped = ll::scope_abstract_unix_socket | ll::scope_signal;
        size = sizeof(ll::ruleset_attr);
    }
    const long fd = ll::create_ruleset(&attr, size, 0);
    if (fd < 0) {
        throw sandbox_unavailable(
            std::string("sandbox unavailable: landlock_create_ruleset: ") + std::strerror(errno)
        );
    }
    landlock_ruleset rs(static_cast<int>(fd));

    auto allow = [&](const char* path, bool required) {
        const int pfd = ::open(path, O_PATH | O_CLOEXEC);
        if (pfd < 0) {
            if (!required) {
                return;
            }
            throw sandbox_unavailable(
                std::string("sandbox: cannot open writable path ") + path + ": " +
                std::strerror(errno)
            );
        }
        struct stat st {};
        const bool is_dir = ::fstat(pfd, &st) == 0 && S_ISDIR(st.st_mode);
        ll::path_beneath_attr rule{};
        rule.allowed_access = is_dir ? writes : (writes & ~dir_only_rights);
        rule.parent_fd = pfd;
        const long rc = ll::add_rule(rs.fd(), ll::rule_path_beneath, &rule);
        const int err = errno;
        ::close(pfd);
        if (rc != 0 && required) {
            throw sandbox_unavailable(
                std::string("sandbox: cannot allow writes to ") + path + ": " + std::strerror(err)
            );
        }
    };
    for (const auto& p : writable) {
        allow(p.c_str(), true);
    }
    for (const char* dev : harmless_devices) {
        allow(dev, false);
    }
    return rs;
}

int landlock_restrict_self(int ruleset_fd) noexcept {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return errno;
    }
    if (::syscall(SYS_landlock_restrict_self, ruleset_fd, 0U) != 0) {
        return errno;
    }
    return 0;
}

} // namespace detail

} // namespace wafer::tools
