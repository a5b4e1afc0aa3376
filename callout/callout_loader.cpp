#include "callout_loader.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include "callout.skel.h"
#include "callout_abi_check.h"
#include "callout_paths.h"
#include "cgroup2.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace redirect {

namespace {

std::string errnoText(int error) { return std::strerror(error); }

[[noreturn]] void fail(const std::string& step, int error)
{
    throw CalloutError(step + ": " + errnoText(error), error);
}

void makeDir(const std::string& path, mode_t mode)
{
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
        fail("create " + path, errno);
}

bool isInstanceName(const std::string& name)
{
    if (name.empty() || name.size() > CALLOUT_INSTANCE_MAX || name == "." || name == "..")
        return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

// bpffs must be mounted for the SDK to find the records map.
void ensureBpffs()
{
    struct statfs fs {};
    if (::statfs(CALLOUT_BPFFS_ROOT, &fs) == 0 && fs.f_type == BPF_FS_MAGIC)
        return;
    if (::mount("bpf", CALLOUT_BPFFS_ROOT, "bpf", 0, "mode=0700") != 0)
        fail("mount bpffs at " CALLOUT_BPFFS_ROOT, errno);
}

// Holds LOCK_EX on the lock file at `path` while the instance lives. Lock files are removed
// while locked (destructor, sweep), so after locking check the path still names our inode.
// Retries for a second: an SDK caller holds LOCK_SH for a moment while it checks liveness.
// Mode 0600: anyone who can open the file can hold LOCK_SH on it for ever and keep every
// restart from loading; older versions created it 0644, so an existing one is narrowed too.
int takeInstanceLock(const std::string& path)
{
    for (int attempt = 0; attempt < 100; ++attempt) {
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            fail("open lock " + path, errno);
        struct stat st {};
        if (::fstat(fd, &st) != 0 || ((st.st_mode & 07777) != 0600 && ::fchmod(fd, 0600) != 0)) {
            int e = errno;
            ::close(fd);
            fail("make lock " + path + " mode 0600", e);
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
            struct stat held {}, named {};
            if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_ino == named.st_ino)
                return fd;
            ::close(fd);  // removed under us: lock the new file
            continue;
        }
        int e = errno;
        ::close(fd);
        if (e != EWOULDBLOCK)
            fail("lock " + path, e);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw CalloutError("callout instance is already loaded by another process (" + path + " is locked)", EBUSY);
}

// Pins of instances whose owner died (SIGKILL, crash) stay on bpffs; no live lock means stale.
void sweepStaleInstances()
{
    DIR* dir = ::opendir(CALLOUT_BPFFS_DIR);
    if (!dir)
        return;
    while (dirent* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (!isInstanceName(name))
            continue;
        std::string lock = std::string(CALLOUT_RUN_DIR "/") + name + ".lock";
        int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
        // No lock file here: the instance may live in another mount namespace that shares this
        // bpffs (a chroot, a container) with its own /run. Only an unlocked lock file proves death.
        if (fd < 0)
            continue;
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd);  // alive
            continue;
        }
        std::string pinDir = std::string(CALLOUT_BPFFS_DIR "/") + name;
        ::unlink((pinDir + "/" CALLOUT_SOCKS_PIN_NAME).c_str());
        ::unlink((pinDir + "/" CALLOUT_UDP_FLOWS_PIN_NAME).c_str());
        ::rmdir(pinDir.c_str());
        if (fd >= 0) {
            ::unlink(lock.c_str());  // while locked: see takeInstanceLock
            ::close(fd);
        }
    }
    ::closedir(dir);
}

// libbpf's messages (a verifier rejection among them, many lines in one message) go to our
// log line by line, where people read them. libbpf prefixes its own "libbpf: ".
// The format attribute tells clang the format is libbpf's, checked there (-Wformat-nonliteral).
__attribute__((format(printf, 2, 0))) int libbpfToLog(enum libbpf_print_level level, const char* format, va_list args)
{
    va_list copy;
    va_copy(copy, args);
    int n = std::vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (n <= 0)
        return n;
    std::string text(static_cast<size_t>(n) + 1, '\0');
    std::vsnprintf(text.data(), text.size(), format, args);
    text.resize(static_cast<size_t>(n));
    auto lvl = level == LIBBPF_WARN ? spdlog::level::warn : level == LIBBPF_INFO ? spdlog::level::debug
                                                                                  : spdlog::level::trace;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos)
            end = text.size();
        if (end > start)
            spdlog::log(lvl, "{}", std::string_view(text).substr(start, end - start));
        start = end + 1;
    }
    return n;
}

}  // namespace

CalloutError::CalloutError(const std::string& what, int error) : std::runtime_error(what), error_(error) {}

std::string Callout::cgroup2Root() { return cgroup2::root(); }

uint64_t Callout::currentNetnsCookie()
{
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("socket for netns cookie", errno);
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    int rc = ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
    int e = errno;
    ::close(fd);
    if (rc != 0)
        fail("SO_NETNS_COOKIE", e);
    return cookie;
}

Callout::Callout(CalloutOptions options) : options_(std::move(options))
{
    if (!isInstanceName(options_.instance))
        throw CalloutError("invalid callout instance name '" + options_.instance +
                               "' (expected 1-64 of A-Z a-z 0-9 . _ -)",
                           EINVAL);
    cgroupPath_ = options_.cgroup.empty() ? cgroup2Root() : options_.cgroup;
    try {
        // Open the cgroup first: a wrong path is the most common mistake.
        cgroupFd_ = ::open(cgroupPath_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cgroupFd_ < 0)
            fail("open cgroup " + cgroupPath_, errno);
        struct statfs fs {};
        if (::fstatfs(cgroupFd_, &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
            throw CalloutError(cgroupPath_ + " is not a cgroup v2 directory", ENOTDIR);

        makeDir(CALLOUT_RUN_DIR, 0755);
        lockPath_ = std::string(CALLOUT_RUN_DIR "/") + options_.instance + ".lock";
        lockFd_ = takeInstanceLock(lockPath_);

        // open -> load: the verifier checks every program here; its log reaches ours.
        libbpf_set_print(libbpfToLog);
        skel_ = callout__open_and_load();
        if (!skel_)
            fail("load callout programs", errno);
        attach();
        pin();
        ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.callout_events), &Callout::onEvent, this, nullptr);
        if (!ring_)
            fail("open event ring buffer", errno);
    } catch (...) {
        release();
        throw;
    }
}

Callout::~Callout() { release(); }

void Callout::release()
{
    if (ring_)
        ring_buffer__free(ring_);
    ring_ = nullptr;
    // Unpin before the lock goes: the SDK must never see a live lock with a dead map.
    if (!pinPath_.empty()) {
        ::unlink(pinPath_.c_str());
        ::unlink((pinPath_.substr(0, pinPath_.rfind('/')) + "/" CALLOUT_UDP_FLOWS_PIN_NAME).c_str());
        std::string dir = pinPath_.substr(0, pinPath_.rfind('/'));
        ::rmdir(dir.c_str());
        pinPath_.clear();
    }
    for (auto* link : links_)
        bpf_link__destroy(link);
    links_.clear();
    if (skel_)
        callout__destroy(skel_);
    skel_ = nullptr;
    if (cgroupFd_ >= 0)
        ::close(cgroupFd_);
    cgroupFd_ = -1;
    if (lockFd_ >= 0) {
        ::unlink(lockPath_.c_str());  // while locked: see takeInstanceLock
        ::close(lockFd_);
    }
    lockFd_ = -1;
}

void Callout::attach()
{
    bpf_program* programs[] = {
        skel_->progs.callout_connect4,     skel_->progs.callout_connect6, skel_->progs.callout_sockops,
        skel_->progs.callout_getpeername4, skel_->progs.callout_getpeername6,
        skel_->progs.callout_sendmsg4,     skel_->progs.callout_sendmsg6, skel_->progs.callout_recvmsg4,
        skel_->progs.callout_recvmsg6,     skel_->progs.callout_sock_release,
    };
    for (auto* program : programs) {
        // bpf_link, not BPF_PROG_ATTACH: the attachment dies with its last fd.
        bpf_link* link = bpf_program__attach_cgroup(program, cgroupFd_);
        if (!link)
            fail(std::string("attach ") + bpf_program__name(program) + " to " + cgroupPath_, errno);
        links_.push_back(link);
        bpf_prog_info info{};
        uint32_t length = sizeof(info);
        if (bpf_obj_get_info_by_fd(bpf_program__fd(program), &info, &length) != 0)
            fail(std::string("read the id of ") + bpf_program__name(program), errno);
        programIds_.push_back(info.id);
    }
}

void Callout::pin()
{
    ensureBpffs();
    makeDir(CALLOUT_BPFFS_DIR, 0700);
    sweepStaleInstances();
    std::string dir = std::string(CALLOUT_BPFFS_DIR "/") + options_.instance;
    makeDir(dir, 0700);
    std::string path = dir + "/" CALLOUT_SOCKS_PIN_NAME;
    ::unlink(path.c_str());  // a pin left by a killed instance: we hold the lock, it is stale
    if (bpf_obj_pin(bpf_map__fd(skel_->maps.callout_socks), path.c_str()) != 0)
        fail("pin records map at " + path, errno);
    pinPath_ = path;
    if (::chmod(path.c_str(), 0600) != 0)
        fail("chmod 0600 " + path, errno);
    std::string udp = dir + "/" CALLOUT_UDP_FLOWS_PIN_NAME;
    ::unlink(udp.c_str());
    if (bpf_obj_pin(bpf_map__fd(skel_->maps.callout_udp_flows), udp.c_str()) != 0)
        fail("pin UDP flows map at " + udp, errno);
    if (::chmod(udp.c_str(), 0600) != 0)
        fail("chmod 0600 " + udp, errno);
}

void Callout::setRedirector(uint32_t slot, const callout_redirector& redirector)
{
    if (slot >= CALLOUT_MAX_REDIRECTORS)
        throw CalloutError("redirector slot " + std::to_string(slot) + " out of range", EINVAL);
    if (bpf_map__update_elem(skel_->maps.callout_redirectors, &slot, sizeof(slot), &redirector,
                             sizeof(redirector), BPF_ANY) != 0)
        fail("update redirector slot " + std::to_string(slot), errno);
}

void Callout::clearRedirector(uint32_t slot)
{
    callout_redirector empty{};
    setRedirector(slot, empty);
}

callout_redirector Callout::redirector(uint32_t slot) const
{
    callout_redirector value{};
    if (bpf_map__lookup_elem(skel_->maps.callout_redirectors, &slot, sizeof(slot), &value, sizeof(value), 0) != 0)
        fail("read redirector slot " + std::to_string(slot), errno);
    return value;
}

void Callout::writeRuleTable(uint32_t table, std::span<const callout_rule> rules)
{
    for (uint32_t i = 0; i < rules.size(); ++i) {
        uint32_t key = table * CALLOUT_MAX_RULES + i;
        if (bpf_map__update_elem(skel_->maps.callout_rules, &key, sizeof(key), &rules[i], sizeof(rules[i]),
                                 BPF_ANY) != 0)
            fail("write rule " + std::to_string(i), errno);
    }
}

void Callout::setRules(std::span<const callout_rule> rules)
{
    if (rules.size() > CALLOUT_MAX_RULES)
        throw CalloutError("too many rules: " + std::to_string(rules.size()) + " (at most " +
                               std::to_string(CALLOUT_MAX_RULES) + ")",
                           E2BIG);
    uint32_t zero = 0;
    callout_config config{};
    if (bpf_map__lookup_elem(skel_->maps.callout_config, &zero, sizeof(zero), &config, sizeof(config), 0) != 0)
        fail("read callout config", errno);
    uint32_t idle = config.active_table ? 0 : 1;
    writeRuleTable(idle, rules);
    config.rule_count[idle] = static_cast<uint32_t>(rules.size());
    config.active_table = idle;
    // The flip is one map update: a connect() sees the old list or the new one, never a mix.
    if (bpf_map__update_elem(skel_->maps.callout_config, &zero, sizeof(zero), &config, sizeof(config), BPF_ANY) != 0)
        fail("switch rule table", errno);
}

std::vector<callout_rule> Callout::rules() const
{
    uint32_t zero = 0;
    callout_config config{};
    if (bpf_map__lookup_elem(skel_->maps.callout_config, &zero, sizeof(zero), &config, sizeof(config), 0) != 0)
        fail("read callout config", errno);
    uint32_t table = config.active_table ? 1 : 0;
    std::vector<callout_rule> out(config.rule_count[table]);
    for (uint32_t i = 0; i < out.size(); ++i) {
        uint32_t key = table * CALLOUT_MAX_RULES + i;
        if (bpf_map__lookup_elem(skel_->maps.callout_rules, &key, sizeof(key), &out[i], sizeof(out[i]), 0) != 0)
            fail("read rule " + std::to_string(i), errno);
    }
    return out;
}

bool Callout::setRuleEnabled(uint32_t ruleId, bool enabled)
{
    uint32_t zero = 0;
    callout_config config{};
    if (bpf_map__lookup_elem(skel_->maps.callout_config, &zero, sizeof(zero), &config, sizeof(config), 0) != 0)
        fail("read callout config", errno);
    uint32_t table = config.active_table ? 1 : 0;
    for (uint32_t i = 0; i < config.rule_count[table]; ++i) {
        uint32_t key = table * CALLOUT_MAX_RULES + i;
        callout_rule rule{};
        if (bpf_map__lookup_elem(skel_->maps.callout_rules, &key, sizeof(key), &rule, sizeof(rule), 0) != 0)
            fail("read rule " + std::to_string(i), errno);
        if (rule.id != ruleId)
            continue;
        rule.enabled = enabled ? 1 : 0;
        if (bpf_map__update_elem(skel_->maps.callout_rules, &key, sizeof(key), &rule, sizeof(rule), BPF_ANY) != 0)
            fail("toggle rule " + std::to_string(ruleId), errno);
        return true;
    }
    return false;
}

void Callout::setEventHandler(EventHandler handler) { handler_ = std::move(handler); }

int Callout::onEvent(void* self, void* data, size_t size)
{
    auto* callout = static_cast<Callout*>(self);
    if (size < sizeof(callout_event) || !callout->handler_)
        return 0;
    callout_event event;
    std::memcpy(&event, data, sizeof(event));
    callout->handler_(event);
    return 0;
}

int Callout::pollEvents(int timeoutMs)
{
    // The callout wakes consumers only when the ring fills up (BPF_RB_NO_WAKEUP otherwise),
    // so a poll that timed out still consumes what is pending.
    int woken = ring_buffer__poll(ring_, timeoutMs);
    if (woken < 0 && woken != -EINTR)
        return woken;
    int drained = ring_buffer__consume(ring_);
    return drained < 0 ? drained : std::max(woken, 0) + drained;
}

int Callout::drainEvents() { return ring_buffer__consume(ring_); }

int Callout::eventFd() const { return ring_buffer__epoll_fd(ring_); }

CalloutStats Callout::stats() const
{
    CalloutStats stats;
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0)
        return stats;
    std::vector<uint64_t> perCpu(static_cast<size_t>(cpus));
    for (uint32_t key = 0; key < CALLOUT_STAT_COUNT; ++key) {
        if (bpf_map__lookup_elem(skel_->maps.callout_stats, &key, sizeof(key), perCpu.data(),
                                 perCpu.size() * sizeof(uint64_t), 0) != 0)
            continue;
        for (uint64_t v : perCpu)
            stats.values[key] += v;
    }
    return stats;
}

int Callout::socksMapFd() const { return bpf_map__fd(skel_->maps.callout_socks); }
int Callout::udpFlowsMapFd() const { return bpf_map__fd(skel_->maps.callout_udp_flows); }
int Callout::redirectorsMapFd() const { return bpf_map__fd(skel_->maps.callout_redirectors); }
int Callout::rulesMapFd() const { return bpf_map__fd(skel_->maps.callout_rules); }

void Callout::markListener(int listenerFd, uint32_t redirectorId)
{
    callout_sock mark{};
    mark.role = CALLOUT_ROLE_LISTENER;
    mark.context.redirector_id = redirectorId;
    if (bpf_map_update_elem(socksMapFd(), &listenerFd, &mark, BPF_ANY) != 0)
        fail("mark listener of redirector " + std::to_string(redirectorId), errno);
}

uint64_t Callout::bootNowNs()
{
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void Callout::setStallDeadline(uint64_t deadlineNs)
{
    heartbeat();  // a deadline must never start out already missed
    skel_->bss->callout_stall_deadline_ns = deadlineNs;
}

void Callout::heartbeat() { __atomic_store_n(&skel_->bss->callout_heartbeat_ns, bootNowNs(), __ATOMIC_RELAXED); }

}  // namespace redirect
