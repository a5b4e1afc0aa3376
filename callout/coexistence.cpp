#include "coexistence.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf_owners.h"
#include "cgroup2.h"

namespace redirect::coexist {

namespace {

struct Hook {
    const char* name;
    bpf_attach_type type;
    bool rewritesDestination;  // connect/sendmsg set it; recvmsg/getpeername set what the app sees
    bool outbound;             // connect/sendmsg: before us means "the destination our rules see"
};

const Hook kHooks[] = {
    {"connect4", BPF_CGROUP_INET4_CONNECT, true, true},
    {"connect6", BPF_CGROUP_INET6_CONNECT, true, true},
    {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG, true, true},
    {"sendmsg6", BPF_CGROUP_UDP6_SENDMSG, true, true},
    {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG, true, false},
    {"recvmsg6", BPF_CGROUP_UDP6_RECVMSG, true, false},
    {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME, true, false},
    {"getpeername6", BPF_CGROUP_INET6_GETPEERNAME, true, false},
    {"getsockname4", BPF_CGROUP_INET4_GETSOCKNAME, false, false},
    {"getsockname6", BPF_CGROUP_INET6_GETSOCKNAME, false, false},
    {"sock_ops", BPF_CGROUP_SOCK_OPS, false, false},
    {"bind4", BPF_CGROUP_INET4_BIND, false, false},
    {"bind6", BPF_CGROUP_INET6_BIND, false, false},
    {"post_bind4", BPF_CGROUP_INET4_POST_BIND, false, false},
    {"post_bind6", BPF_CGROUP_INET6_POST_BIND, false, false},
    {"sock_create", BPF_CGROUP_INET_SOCK_CREATE, false, false},
    {"sock_release", BPF_CGROUP_INET_SOCK_RELEASE, false, false},
};

// A cgroup holds at most 64 programs per hook (BPF_CGROUP_MAX_PROGS); the effective list of a
// deep scope can hold more, so a query that says ENOSPC is asked again with the count it gave.
constexpr uint32_t kQueryStart = 64;

std::string errnoText(int error) { return std::strerror(error); }

// The path from the scope up to the root, scope first.
std::vector<std::string> pathToRoot(const std::string& scope, const std::string& root)
{
    std::vector<std::string> out;
    std::string p = scope;
    while (p.size() > 1 && p.back() == '/')
        p.pop_back();
    for (;;) {
        out.push_back(p);
        if (p == root || !cgroup2::contains(root, p) || out.size() > 64)
            break;
        p = p.substr(0, std::max<size_t>(p.rfind('/'), 1));
    }
    return out;
}

struct Query {
    std::vector<uint32_t> ids;
    std::vector<uint32_t> flags;  // per program: the cgroup's flags (the kernel reports those)
    uint32_t cgroupFlags = 0;
    int error = 0;
};

Query query(int cgroupFd, bpf_attach_type type, bool effective)
{
    Query q;
    for (uint32_t room = kQueryStart;;) {
        q.ids.assign(room, 0);
        q.flags.assign(room, 0);
        LIBBPF_OPTS(bpf_prog_query_opts, opts);
        opts.query_flags = effective ? BPF_F_QUERY_EFFECTIVE : 0;
        opts.prog_ids = q.ids.data();
        opts.prog_cnt = room;
        // The kernel refuses per-program flags for an effective query.
        opts.prog_attach_flags = effective ? nullptr : q.flags.data();
        if (bpf_prog_query_opts(cgroupFd, type, &opts) == 0) {
            q.ids.resize(opts.prog_cnt);
            q.flags.resize(opts.prog_cnt);
            q.cgroupFlags = opts.attach_flags;
            return q;
        }
        if (errno == ENOSPC && opts.prog_cnt > room) {
            room = opts.prog_cnt;
            continue;
        }
        q.error = errno;
        q.ids.clear();
        q.flags.clear();
        return q;
    }
}

struct ProgramInfo {
    std::string name, type, tag, error;
    int64_t loadedUnixNs = 0;
    uint32_t uid = 0;
};

int64_t bootToUnixNs(uint64_t bootNs)
{
    timespec real{}, boot{};
    ::clock_gettime(CLOCK_REALTIME, &real);
    ::clock_gettime(CLOCK_BOOTTIME, &boot);
    const int64_t realNs = int64_t(real.tv_sec) * 1000000000 + real.tv_nsec;
    const int64_t bootNowNs = int64_t(boot.tv_sec) * 1000000000 + boot.tv_nsec;
    return realNs - (bootNowNs - int64_t(bootNs));
}

ProgramInfo programInfo(uint32_t id)
{
    ProgramInfo p;
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) {
        const int e = errno;
        p.error = e == ENOENT ? "program " + std::to_string(id) + " vanished while it was read"
                              : "cannot open program " + std::to_string(id) + ": " + errnoText(e);
        return p;
    }
    bpf_prog_info info{};
    uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) {
        p.error = "cannot read program " + std::to_string(id) + ": " + errnoText(errno);
        ::close(fd);
        return p;
    }
    ::close(fd);
    p.name = info.name;
    const char* type = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(info.type));
    p.type = type ? type : "type " + std::to_string(info.type);
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : info.tag)
        p.tag += std::string{hex[c >> 4], hex[c & 15]};
    p.loadedUnixNs = info.load_time ? bootToUnixNs(info.load_time) : 0;
    p.uid = info.created_by_uid;
    return p;
}

// Which of the path's levels the kernel runs for the scope (kernel/bpf/cgroup.c,
// compute_effective_progs): walking up from the scope, a level counts while nothing below it
// has programs, or when it was attached with BPF_F_ALLOW_MULTI; a single-program level
// (override or exclusive) above levels with programs yields to them.
std::vector<bool> levelsThatRun(const std::vector<Query>& levels)
{
    std::vector<bool> runs(levels.size(), false);
    size_t below = 0;
    for (size_t d = 0; d < levels.size(); ++d) {
        runs[d] = below == 0 || (levels[d].cgroupFlags & BPF_F_ALLOW_MULTI);
        if (runs[d])
            below += levels[d].ids.size();
    }
    return runs;
}

std::string warningFor(const Hook& hook, const Attachment& a)
{
    std::vector<std::string> parts;
    if (!a.ours && hook.rewritesDestination && a.order == Order::Before)
        parts.push_back(hook.outbound ? "runs before ours: may change the destination our rules see"
                                      : "runs before ours: ours may overwrite the address it sets");
    if (!a.ours && hook.rewritesDestination && a.order == Order::After)
        parts.push_back(hook.outbound ? "runs after ours: may send redirected connections elsewhere"
                                      : "runs after ours: may change the address the application sees");
    if (a.depth > 0 && !(a.attachFlags & BPF_F_ALLOW_MULTI)) {
        const std::string kind = (a.attachFlags & BPF_F_ALLOW_OVERRIDE) ? "override" : "exclusive";
        parts.push_back("single-program (" + kind + ") attachment in an ancestor: " +
                        (a.order == Order::NotRun
                             ? "programs below it replace it for our scope, so it does not run for our sockets"
                             : "it runs for our scope and other software may replace it there"));
    }
    std::string out;
    for (const std::string& p : parts)
        out += (out.empty() ? "" : "; ") + p;
    return out;
}

void inventoryHook(const Hook& hook, const std::vector<std::string>& cgroups, const std::vector<int>& fds,
                   const std::vector<uint64_t>& cgroupIds, const std::set<uint32_t>& ours, const Holders& holders,
                   std::map<uint32_t, ProgramInfo>& programs, Report& report)
{
    std::vector<Query> levels;
    for (size_t d = 0; d < cgroups.size(); ++d) {
        levels.push_back(fds[d] < 0 ? Query{} : query(fds[d], hook.type, false));
        if (levels.back().error != 0)
            report.problems.push_back(std::string(hook.name) + " of " + cgroups[d] + ": cannot list programs: " +
                                      errnoText(levels.back().error));
    }
    const Query effective = fds[0] < 0 ? Query{{}, {}, 0, EBADF} : query(fds[0], hook.type, true);
    if (effective.error != 0 && fds[0] >= 0)  // an unopened scope is said once, by inventory()
        report.problems.push_back(std::string(hook.name) + " of " + cgroups[0] + ": cannot read the run order: " +
                                  errnoText(effective.error));
    const std::vector<bool> runs = levelsThatRun(levels);

    // Our program's place in the run order; a foreign one is before or after it.
    int ourPosition = -1;
    for (size_t i = 0; i < effective.ids.size() && ourPosition < 0; ++i)
        if (ours.count(effective.ids[i]))
            ourPosition = static_cast<int>(i);

    std::vector<bool> taken(effective.ids.size(), false);
    std::vector<Attachment> found;
    for (size_t d = 0; d < levels.size(); ++d) {
        for (size_t i = 0; i < levels[d].ids.size(); ++i) {
            Attachment a;
            a.hook = hook.name;
            a.cgroup = cgroups[d];
            a.depth = static_cast<int>(d);
            a.progId = levels[d].ids[i];
            a.attachFlags = levels[d].flags[i] ? levels[d].flags[i] : levels[d].cgroupFlags;
            a.ours = ours.count(a.progId) > 0;
            auto [it, fresh] = programs.try_emplace(a.progId);
            if (fresh)
                it->second = programInfo(a.progId);
            a.name = it->second.name;
            a.type = it->second.type;
            a.tag = it->second.tag;
            a.loadedUnixNs = it->second.loadedUnixNs;
            a.createdByUid = it->second.uid;
            a.error = it->second.error;
            // The same program may sit at two levels (or twice, by two links): occurrences in the
            // run order go to the levels in the order the kernel fills them.
            if (effective.error == 0 && runs[d])
                for (size_t k = 0; k < effective.ids.size(); ++k)
                    if (!taken[k] && effective.ids[k] == a.progId) {
                        taken[k] = true;
                        a.runPosition = static_cast<int>(k);
                        break;
                    }
            if (a.ours)
                a.order = Order::Ours;
            else if (effective.error != 0)
                a.order = Order::Unknown;
            else if (a.runPosition < 0)
                a.order = Order::NotRun;
            else if (ourPosition < 0)
                a.order = Order::NoneOfOurs;
            else
                a.order = a.runPosition < ourPosition ? Order::Before : Order::After;
            holders.ownersOf(cgroupIds[d], hook.type, a.progId, &a.linkIds, &a.owners);
            a.warning = warningFor(hook, a);
            found.push_back(std::move(a));
        }
    }
    std::stable_sort(found.begin(), found.end(), [](const Attachment& x, const Attachment& y) {
        auto key = [](const Attachment& a) { return a.runPosition < 0 ? INT32_MAX : a.runPosition; };
        return key(x) < key(y);
    });
    report.attachments.insert(report.attachments.end(), found.begin(), found.end());
}

}  // namespace

const char* orderName(Order order)
{
    switch (order) {
    case Order::Ours: return "ours";
    case Order::Before: return "before ours";
    case Order::After: return "after ours";
    case Order::NotRun: return "not run for our scope";
    case Order::NoneOfOurs: return "runs (none of ours on this hook)";
    case Order::Unknown: return "unknown";
    }
    return "unknown";
}

const std::vector<std::string>& hookNames()
{
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const Hook& h : kHooks)
            n.emplace_back(h.name);
        return n;
    }();
    return names;
}

std::string attachFlagsText(uint32_t flags)
{
    std::string out;
    auto add = [&](uint32_t bit, const char* name) {
        if (flags & bit)
            out += (out.empty() ? "" : "|") + std::string(name);
    };
    add(BPF_F_ALLOW_MULTI, "multi");
    add(BPF_F_ALLOW_OVERRIDE, "override");
    return out.empty() ? "none" : out;
}

size_t Report::foreignCount() const
{
    return static_cast<size_t>(std::count_if(attachments.begin(), attachments.end(), [](const Attachment& a) { return !a.ours; }));
}

size_t Report::warningCount() const
{
    return static_cast<size_t>(
        std::count_if(attachments.begin(), attachments.end(), [](const Attachment& a) { return !a.warning.empty(); }));
}

std::string Report::summary() const
{
    std::ostringstream s;
    const size_t foreign = foreignCount(), warnings = warningCount();
    s << foreign << (foreign == 1 ? " foreign program" : " foreign programs") << " on the hooks of " << scope
      << " and its " << (cgroups.empty() ? 0 : cgroups.size() - 1) << " ancestors; " << warnings
      << (warnings == 1 ? " warning" : " warnings");
    size_t before = 0, after = 0;
    for (const Attachment& a : attachments)
        if (!a.warning.empty()) {
            before += a.order == Order::Before;
            after += a.order == Order::After;
        }
    if (before)
        s << "; " << before << " run before ours";
    if (after)
        s << "; " << after << " run after ours";
    if (!problems.empty())
        s << "; " << problems.size() << " unreadable";
    return s.str();
}

Report inventory(const std::string& scope, const std::set<uint32_t>& ours, std::string cgroupRoot)
{
    Report report;
    report.scope = scope;
    if (cgroupRoot.empty())
        cgroupRoot = cgroup2::findRoot();
    if (cgroupRoot.empty())
        report.problems.push_back("no cgroup2 hierarchy is mounted: only " + scope + " is inventoried");
    report.cgroups = cgroupRoot.empty() ? std::vector<std::string>{scope} : pathToRoot(scope, cgroupRoot);

    std::vector<int> fds;
    std::vector<uint64_t> ids;
    for (const std::string& path : report.cgroups) {
        int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0)
            report.problems.push_back("cannot open cgroup " + path + ": " + errnoText(errno));
        fds.push_back(fd);
        ids.push_back(fd < 0 ? 0 : st.st_ino);  // a cgroup2 directory's inode number is its cgroup id
    }
    const Holders holders = Holders::scan(&report.problems);
    std::map<uint32_t, ProgramInfo> programs;
    for (const Hook& hook : kHooks)
        inventoryHook(hook, report.cgroups, fds, ids, ours, holders, programs, report);
    for (int fd : fds)
        if (fd >= 0)
            ::close(fd);
    return report;
}

}  // namespace redirect::coexist
