// Who else is on our hooks: every BPF program attached to the callout's scope cgroup and its
// ancestors at the socket hooks we use (or that could undo what we do), where each one runs
// relative to ours, and who owns it. The Linux counterpart of WFPExplorer's filter/callout list.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace redirect::coexist {

/// Where a foreign program runs for a socket in our scope, relative to our program on the hook.
enum class Order {
    Ours,        ///< this is one of our programs
    Before,      ///< runs before ours
    After,       ///< runs after ours
    NotRun,      ///< attached on our path but not run for our scope (overridden below)
    NoneOfOurs,  ///< runs for our scope; we have no program on this hook
    Unknown,     ///< the kernel's run order could not be read
};
const char* orderName(Order order);

/// A process (or pin) that keeps an attachment or its program alive.
struct Owner {
    int pid = 0;           ///< 0 for a pin
    std::string comm;      ///< process name, or the pinned path
    std::string holds;     ///< "link", "program" or "pinned link", "pinned program"
};

/// One program attached at one hook of one cgroup on the path from our scope to the root.
struct Attachment {
    std::string hook;          ///< "connect4", "sock_ops", ...
    std::string cgroup;        ///< path of the cgroup it is attached to
    int depth = 0;             ///< 0: our scope, 1: its parent, ...
    uint32_t progId = 0;
    std::string name;          ///< program name (may be truncated by the kernel to 15 bytes)
    std::string type;          ///< program type ("cgroup_sock_addr")
    std::string tag;           ///< hex digest of the instructions
    int64_t loadedUnixNs = 0;  ///< 0 when unknown
    uint32_t createdByUid = 0;
    uint32_t attachFlags = 0;  ///< the cgroup's flags for this hook (BPF_F_ALLOW_MULTI, ...)
    std::vector<uint32_t> linkIds;  ///< bpf_links holding it; empty: BPF_PROG_ATTACH (stays until detached)
    std::vector<Owner> owners;
    bool ours = false;
    Order order = Order::Unknown;
    int runPosition = -1;      ///< index in the kernel's run order for our scope; -1: not run
    std::string warning;       ///< what an administrator should know about it, "" when nothing
    std::string error;         ///< what could not be read about it (EPERM, vanished), "" when all
};

struct Report {
    std::string scope;
    std::vector<std::string> cgroups;     ///< scope first, then each ancestor up to the cgroup2 root
    std::vector<Attachment> attachments;  ///< by hook, then in run order, then the ones not run
    std::vector<std::string> problems;    ///< what could not be read at all, with the reason
    /// One line: how many foreign programs, how many warnings, what matters most.
    std::string summary() const;
    size_t foreignCount() const;
    size_t warningCount() const;
};

/// Hooks inventoried, by their bpftool names (connect4 ... sock_create).
const std::vector<std::string>& hookNames();
/// The flag names of a cgroup's attach flags ("multi", "override", "none").
std::string attachFlagsText(uint32_t flags);

/**
 * Inventory of `scope` (a cgroup v2 directory) and its ancestors up to `cgroupRoot` (the cgroup2
 * mount point; "" finds it). `ours` are the ids of our loaded programs. Owners come from
 * /proc/<pid>/fdinfo and pins under /sys/fs/bpf. Never throws for what it cannot read: that goes
 * into the attachment's error or the report's problems, with the reason.
 */
Report inventory(const std::string& scope, const std::set<uint32_t>& ours, std::string cgroupRoot = {});

}  // namespace redirect::coexist
