// Loads the callout into the kernel and owns it for the life of the object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "callout_abi.h"

struct callout;  // libbpf skeleton (callout.skel.h)
struct ring_buffer;
struct bpf_link;

namespace redirect {

/// Any failure to load, attach, pin or update the callout; what() says which step and why.
class CalloutError : public std::runtime_error {
public:
    CalloutError(const std::string& what, int error);
    int error() const { return error_; }

private:
    int error_;
};

struct CalloutOptions {
    /// cgroup v2 directory to attach to; empty means the cgroup2 root (mounted if needed).
    std::string cgroup;
    /// Instance name: pin directory and lock file (see callout_paths.h).
    std::string instance = "default";
};

struct CalloutStats {
    uint64_t values[CALLOUT_STAT_COUNT] = {};
    uint64_t operator[](callout_stat s) const { return values[s]; }
};

/**
 * The loaded callout: programs attached to one cgroup through bpf_links owned
 * by this object (never pinned: when the process dies the hooks vanish and
 * traffic goes direct), the records map pinned 0600 for the SDK, and an
 * exclusive instance lock that tells the SDK the callout is alive.
 *
 * Steps: open -> load -> attach -> pin -> lock. Destruction undoes them.
 * Not thread-safe: one owner thread updates maps and polls events.
 */
class Callout {
public:
    explicit Callout(CalloutOptions options);
    ~Callout();
    Callout(const Callout&) = delete;
    Callout& operator=(const Callout&) = delete;

    const std::string& cgroupPath() const { return cgroupPath_; }
    const std::string& pinPath() const { return pinPath_; }
    const std::string& instance() const { return options_.instance; }
    /// Kernel ids of our attached programs (fixed once loaded: safe to read from any thread).
    const std::vector<uint32_t>& programIds() const { return programIds_; }

    /// Write one redirector slot (0..CALLOUT_MAX_REDIRECTORS-1).
    void setRedirector(uint32_t slot, const callout_redirector& redirector);
    void clearRedirector(uint32_t slot);
    callout_redirector redirector(uint32_t slot) const;

    /// Replace the whole ordered rule list atomically (idle table, then flip).
    void setRules(std::span<const callout_rule> rules);
    /// Toggle one rule in place: one map update, next connect() sees it. False if no such rule.
    bool setRuleEnabled(uint32_t ruleId, bool enabled);
    /// The live rule table as the kernel holds it.
    std::vector<callout_rule> rules() const;

    using EventHandler = std::function<void(const callout_event&)>;
    /// Deliver events to `handler` (replaces any previous handler).
    void setEventHandler(EventHandler handler);
    /// Wait up to timeoutMs for events (the callout wakes consumers only under load, so drain
    /// at least every 100 ms) and deliver them; returns events delivered or -errno.
    int pollEvents(int timeoutMs);
    /// Deliver what is queued without waiting.
    int drainEvents();
    /// epoll-able descriptor that becomes readable when events are queued.
    int eventFd() const;

    CalloutStats stats() const;
    int socksMapFd() const;
    /// UDP flows handed to redirectors' sockets (callout_udp.bpf.h), for the SDK's UDP query.
    int udpFlowsMapFd() const;
    /// The redirectors and rules maps (tests freeze them to see a refused update handled).
    int redirectorsMapFd() const;
    int rulesMapFd() const;

    /// Mark a listening socket (ours, or another process's duplicated with pidfd_getfd) as the
    /// verified listener of redirector `redirectorId`; for UDP, its bound socket: only a marked
    /// socket gets the flows of the datagrams it receives handed over. Redirectors with
    /// CALLOUT_REDIRECTOR_VERIFY_LISTENER are used only while such a socket is what a connect to
    /// their endpoint would reach; the mark dies with the socket.
    void markListener(int listenerFd, uint32_t redirectorId);

    /// Fail-open for a stalled engine: when the last heartbeat() is older than `deadlineNs`,
    /// connects pass over the redirectors this engine hosts (0 turns the check off, the default).
    void setStallDeadline(uint64_t deadlineNs);
    /// Record that the engine is alive now (a store into mapped memory, no system call).
    void heartbeat();
    /// CLOCK_BOOTTIME in ns, the clock of events, rule expiry and the heartbeat.
    static uint64_t bootNowNs();

    /// The cgroup2 mount point, mounting one under /run/redirect-console if none is mounted.
    static std::string cgroup2Root();
    /// Network namespace cookie of the calling thread (SO_NETNS_COOKIE).
    static uint64_t currentNetnsCookie();

private:
    void attach();
    void release();
    void pin();
    void writeRuleTable(uint32_t table, std::span<const callout_rule> rules);
    static int onEvent(void* self, void* data, size_t size);

    CalloutOptions options_;
    std::string cgroupPath_;
    std::string pinPath_;
    std::string lockPath_;
    int cgroupFd_ = -1;
    int lockFd_ = -1;
    callout* skel_ = nullptr;
    std::vector<::bpf_link*> links_;
    std::vector<uint32_t> programIds_;
    ring_buffer* ring_ = nullptr;
    EventHandler handler_;
};

}  // namespace redirect
