// The UDP relay's thread: reading, flows, relaying and idle expiry (see udp_relay.h).
#include "udp_relay_loop.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "callout_abi.h"
#include "engine_internal.h"
#include "fd_handle.h"
#include "redirect/sio.h"

namespace redirect::engine {

using namespace udp_detail;

namespace {

// The rule that decided the flow, from the context blob (offset 64, after a successful decode).
uint32_t contextRuleId(const std::vector<uint8_t>& context)
{
    uint32_t id = 0;
    if (context.size() >= 68)
        std::memcpy(&id, context.data() + 64, sizeof(id));
    return id;
}

// A UDP query into a thread-local room: the blob, or false with errno.
bool udpQuery(int sock, const sockaddr_storage& from, socklen_t len, int option, std::vector<uint8_t>& out)
{
    thread_local std::vector<uint8_t> room(REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX);
    size_t bytes = 0;
    int rc = redirect_udp_query(sock, reinterpret_cast<const sockaddr*>(&from), len, option, room.data(), room.size(),
                                &bytes);
    if (rc != 0 && errno == EINVAL && bytes > room.size()) {  // a newer, larger blob
        room.resize(bytes);
        rc = redirect_udp_query(sock, reinterpret_cast<const sockaddr*>(&from), len, option, room.data(), room.size(),
                                &bytes);
    }
    if (rc != 0)
        return false;
    out.assign(room.begin(), room.begin() + static_cast<std::ptrdiff_t>(bytes));
    return true;
}

uint64_t recordsFlowId(const std::vector<uint8_t>& records)
{
    redirect_records_info info{};
    return redirect_records_decode(records.data(), records.size(), &info) == 0 ? info.flow_id : 0;
}

}  // namespace

UdpRelay::Loop::Loop(UdpRelay& relay) : relay_(relay), buffer_(size_t(kBatch) * kDatagramMax)
{
    epoll_ = FdHandle(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid())
        throw std::runtime_error(std::string("udp relay epoll: ") + std::strerror(errno));
    for (int i = 0; i < kBatch; ++i) {
        iov_[i] = {buffer_.data() + size_t(i) * kDatagramMax, kDatagramMax};
        in_[i].msg_hdr.msg_iov = &iov_[i];
        in_[i].msg_hdr.msg_iovlen = 1;
    }
}

void UdpRelay::Loop::run()
{
    if (relay_.options_.netnsFd >= 0 && ::setns(relay_.options_.netnsFd, CLONE_NEWNET) != 0)
        spdlog::error("udp relay: cannot enter network namespace: {}", std::strerror(errno));
    epoll_event events[64];
    while (!relay_.stopping_) {
        relay_.lastLoop_.store(steadyNs(), std::memory_order_relaxed);
        {
            std::unique_lock lock(relay_.mutex_);
            std::vector<Command> commands;
            commands.swap(relay_.commands_);
            lock.unlock();
            for (Command& c : commands)
                handle(c);
            lock.lock();
            relay_.handled_ += commands.size();
        }
        relay_.done_.notify_all();
        int n = ::epoll_wait(epoll_.fd(), events, 64, kWaitMs);
        for (int i = 0; i < n; ++i) {
            void* p = events[i].data.ptr;
            if (!p) {
                uint64_t count = 0;
                [[maybe_unused]] ssize_t r = ::read(relay_.wake_, &count, sizeof(count));
            } else if (*static_cast<Kind*>(p) == Kind::Listener) {
                readListener(*static_cast<Listener*>(p));
            } else {
                readUpstream(*static_cast<Flow*>(p));
            }
        }
        graveyard_.clear();
        int64_t now = steadyNs();
        if (now - lastSweepNs_ >= int64_t(kWaitMs) * 1000000) {
            lastSweepNs_ = now;
            sweep(now);
            graveyard_.clear();
        }
    }
}

void UdpRelay::Loop::handle(Command& command)
{
    if (command.add) {
        Listener* l = command.add.get();
        listeners_.push_back(std::move(command.add));
        if (SysResult r = l->fd.watch(epoll_.fd(), EPOLLIN, static_cast<void*>(l)); !r.ok())
            spdlog::error("udp relay: cannot watch redirector {}'s socket: {}", l->runtime->name, r.text());
        return;
    }
    if (!command.closed.empty()) {
        closed(command.closed);
        return;
    }
    std::vector<Flow*> ending;
    for (auto& [key, f] : flows_)
        if (f->listener->runtime.get() == command.remove)
            ending.push_back(f.get());
    for (Flow* f : ending)
        endFlow(*f, EndReason::Closed);
    graveyard_.clear();
    std::erase_if(listeners_, [&](const std::unique_ptr<Listener>& l) { return l->runtime.get() == command.remove; });
}

void UdpRelay::Loop::closed(const std::vector<uint64_t>& flowIds)
{
    std::vector<Flow*> ending;
    for (uint64_t id : flowIds)
        if (auto it = byId_.find(id); it != byId_.end())  // else ended already (idle), or never ours
            ending.push_back(it->second);
    // What the applications sent before they closed waits in the redirectors' sockets: relay it
    // first (a source no longer resolves to a flow once its flow is gone).
    readListenersOf(ending);
    for (Flow* f : ending)
        endFlow(*f, EndReason::Closed);  // a no-op for one that reading ended
    graveyard_.clear();
}

void UdpRelay::Loop::readListenersOf(const std::vector<Flow*>& flows)
{
    std::vector<Listener*> listeners;
    for (Flow* f : flows)
        if (std::find(listeners.begin(), listeners.end(), f->listener) == listeners.end())
            listeners.push_back(f->listener);
    for (Listener* l : listeners)
        readListener(*l);
}

void UdpRelay::Loop::endAll(EndReason reason)
{
    std::vector<Flow*> all;
    for (auto& [key, f] : flows_)
        all.push_back(f.get());
    for (Flow* f : all)
        endFlow(*f, reason);
    graveyard_.clear();
    listeners_.clear();
}

void UdpRelay::Loop::dropped(const char* why, int error)
{
    relay_.dropped_.fetch_add(1, std::memory_order_relaxed);
    int64_t now = steadyNs();
    if (now - lastDropLogNs_ < 1000000000)
        return;  // a flood of strangers logs once a second, and the count says how many
    lastDropLogNs_ = now;
    spdlog::warn("udp relay: datagram dropped, {}: {} ({} dropped so far)", why,
                 error ? std::strerror(error) : "no flow", relay_.dropped_.load());
}

int64_t UdpRelay::Loop::idleNsFor(uint32_t ruleId) const
{
    // Read at each flow's start, not copied between rounds: a flow whose first datagram came
    // in the same round as new rules once got the default (60 s) while the callout ended it
    // after its rule's 1 s, and the callout's next flows from that source went unseen.
    std::lock_guard lock(relay_.mutex_);
    auto it = relay_.timeouts_.find(ruleId);
    uint32_t s = it != relay_.timeouts_.end() && it->second ? it->second : CALLOUT_UDP_IDLE_DEFAULT_S;
    return int64_t(s) * 1000000000;
}

void UdpRelay::Loop::readListener(Listener& l)
{
    // A few batches per wake-up, so one busy redirector does not starve the others' replies.
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < kBatch; ++i) {
            in_[i].msg_hdr.msg_name = &from_[i];
            in_[i].msg_hdr.msg_namelen = sizeof(from_[i]);
            in_[i].msg_hdr.msg_flags = 0;
        }
        // Before the call: the callout stamps the flow's activity while recvmmsg() runs, and a
        // thread preempted after it returned would read the clock late, see a pause shorter
        // than the callout's, and miss a flow the callout started after its idle timeout.
        const int64_t before = steadyNs();
        int n = ::recvmmsg(l.fd.fd(), in_, kBatch, MSG_DONTWAIT, nullptr);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                dropped("receive failed", errno);
            return;
        }
        const int64_t now = steadyNs();
        std::vector<Flow*>& touched = touched_;
        touched.clear();
        for (int i = 0; i < n; ++i) {
            std::string_view data(static_cast<const char*>(iov_[i].iov_base), in_[i].msg_len);
            Flow* f = flowFor(l, from_[i], in_[i].msg_hdr.msg_namelen, data, now);
            if (!f)
                continue;  // counted and logged where it was refused
            if (!f->upstream.valid()) {
                dropped("its flow could not reach the destination", 0);
                continue;
            }
            if (f->pending.empty())
                touched.push_back(f);
            f->pending.push_back({iov_[i].iov_base, in_[i].msg_len});
            f->lastClientNs = before;
            f->lastActiveNs = now;  // the idle sweep errs late, after the callout's
        }
        for (Flow* f : touched)
            flushUp(*f);
        if (n < kBatch)
            return;
    }
}

UdpRelay::Flow* UdpRelay::Loop::flowFor(Listener& l, const sockaddr_storage& from, socklen_t len,
                                          std::string_view first, int64_t now)
{
    FlowKey key;
    key.listener = &l;  // a source at another redirector socket is another flow
    std::memcpy(key.from.data(), &from, std::min<size_t>(len, key.from.size()));
    auto it = flows_.find(key);
    if (it != flows_.end()) {
        Flow& f = *it->second;
        // After a pause the callout may have given this source to a new flow: ask once more.
        if (now - f.lastClientNs < std::min(kRecheckNs, f.idleNs / 2))
            return &f;
        std::vector<uint8_t> records;
        if (!udpQuery(l.fd.fd(), from, len, IP_WFP_REDIRECT_RECORDS, records) || recordsFlowId(records) == f.hop.flowId)
            return &f;
        endFlow(f, EndReason::Idle);  // the callout ended it already: its socket sent after the timeout
    }
    return startFlow(l, key, from, len, first, now);
}

UdpRelay::Flow* UdpRelay::Loop::startFlow(Listener& l, const FlowKey& key, const sockaddr_storage& from, socklen_t len,
                                            std::string_view first, int64_t now)
{
    if (relay_.openFlows_.load(std::memory_order_relaxed) >= relay_.maxFlows_) {
        dropped(relay_.limitText_.c_str(), 0);  // a flood at the limit: no work beyond the count
        return nullptr;
    }
    auto f = std::make_unique<Flow>();
    HopReport& hop = f->hop;
    const int fd = l.fd.fd();
    if (!udpQuery(fd, from, len, IP_WFP_REDIRECT_CONTEXT, hop.context) ||
        !udpQuery(fd, from, len, IP_WFP_REDIRECT_RECORDS, hop.records)) {
        dropped("unknown source (not a flow the callout redirected here)", errno);
        return nullptr;
    }
    if (!describeBlobs(hop)) {
        dropped("undecodable records or context", EINVAL);
        return nullptr;
    }
    const socklen_t destLen = hop.destination.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    hop.redirectorId = l.runtime->id;
    hop.protocol = IPPROTO_UDP;
    hop.startNs = wallNowNs();
    hop.reason = EndReason::Open;
    if (relay_.options_.peek && portOf(hop.destination) == 53)
        hop.host = peekDnsQueryName(first);
    f->kind = Kind::Flow;
    f->listener = &l;
    f->key = key;
    f->app = from;
    f->appLen = len;
    f->idleNs = idleNsFor(contextRuleId(hop.context));
    f->lastClientNs = f->lastActiveNs = now;

    Flow* flow = f.get();  // owned by flows_ from here on
    // SET before the socket's first datagram; connected, so replies from the destination (and
    // only from it) come back here, and the callout classifies it once, at connect.
    auto start = [&]() -> int {
        flow->upstream = FdHandle(::socket(hop.destination.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!flow->upstream.valid())
            return errno;
        // A server's burst of replies waits here as the application's waits at the listener.
        ::setsockopt(flow->upstream.fd(), SOL_SOCKET, SO_RCVBUF, &kRcvBuf, sizeof(kRcvBuf));
        size_t consumed = 0;
        if (redirect_ioctl(flow->upstream.fd(), SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, hop.records.data(),
                           hop.records.size(), nullptr, 0, &consumed, nullptr, nullptr) != 0)
            return errno;
        hop.setRecords = true;
        if (::connect(flow->upstream.fd(), reinterpret_cast<const sockaddr*>(&hop.destination), destLen) != 0)
            return errno;
        if (SysResult r = flow->upstream.watch(epoll_.fd(), EPOLLIN, static_cast<void*>(flow)); !r.ok())
            return r.error;
        return 0;
    };
    l.runtime->accepted.fetch_add(1, std::memory_order_relaxed);
    l.runtime->active.fetch_add(1, std::memory_order_relaxed);
    relay_.openFlows_.fetch_add(1, std::memory_order_relaxed);
    flows_[key] = std::move(f);
    byId_[hop.flowId] = flow;
    if (int error = start(); error != 0) {
        spdlog::warn("udp relay: flow {:#x} to port {} not started: {}", hop.flowId, portOf(hop.destination),
                     std::strerror(error));
        flow->upstream.close();
        endFlow(*flow, endReasonForErrno(error));
        return flow;
    }
    // The hop is open now: the console shows its records and the query name while it lives.
    relay_.sink_(HopReport(hop));
    return flow;
}

bool UdpRelay::Loop::flushSegmented(Flow& f, size_t from, size_t n)
{
    // Same-size datagrams (the last may be shorter) go down the stack as one, cut by the kernel
    // (UDP_SEGMENT, the way QUIC stacks send): one pass through routing and the IP layer per
    // batch instead of one per datagram. The receiver still gets them one by one. At most
    // kSegmentsMax at once: the segments land in the receiver's buffer together.
    const iovec* v = f.pending.data() + from;
    const size_t size = v[0].iov_len;
    size_t total = 0;
    if (!segmentation_ || n < 2 || n > kSegmentsMax)
        return false;
    for (size_t i = 0; i < n; ++i) {
        if (v[i].iov_len == 0 || v[i].iov_len > size || (i + 1 < n && v[i].iov_len != size))
            return false;
        total += v[i].iov_len;
    }
    if (total > kSegmentedMax)
        return false;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))] = {};
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(v);
    m.msg_iovlen = n;
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const uint16_t segment = static_cast<uint16_t>(size);
    std::memcpy(CMSG_DATA(c), &segment, sizeof(segment));
    if (::sendmsg(f.upstream.fd(), &m, MSG_DONTWAIT) != ssize_t(total)) {
        if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT) {
            segmentation_ = false;  // the route cannot segment: datagram by datagram from now on
            spdlog::info("udp relay: no UDP segmentation offload here ({}), sending datagram by datagram",
                         std::strerror(errno));
        }
        return false;  // nothing was sent: the caller sends them one by one
    }
    f.hop.bytesUp += total;
    f.hop.datagramsUp += n;
    return true;
}

void UdpRelay::Loop::flushUp(Flow& f)
{
    const size_t n = std::min<size_t>(f.pending.size(), kBatch);
    size_t sent = 0;
    for (size_t part; n - sent >= 2 && flushSegmented(f, sent, part = std::min(n - sent, kSegmentsMax));)
        sent += part;
    for (size_t i = sent; i < n; ++i) {
        out_[i] = {};
        out_[i].msg_hdr.msg_iov = &f.pending[i];
        out_[i].msg_hdr.msg_iovlen = 1;
    }
    bool retried = false;
    while (sent < n) {
        int r = ::sendmmsg(f.upstream.fd(), out_ + sent, unsigned(n - sent), MSG_DONTWAIT);
        if (r > 0) {
            for (size_t i = sent; i < sent + size_t(r); ++i)
                f.hop.bytesUp += f.pending[i].iov_len;
            f.hop.datagramsUp += uint64_t(r);
            sent += size_t(r);
            continue;
        }
        // An ICMP error of an earlier datagram is reported on this send, once: try again.
        if (!retried && (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)) {
            retried = true;
            continue;
        }
        for (size_t i = sent; i < n; ++i)
            dropped("upstream send failed", errno);
        break;
    }
    f.pending.clear();
}

void UdpRelay::Loop::readUpstream(Flow& f)
{
    if (!f.upstream.valid())
        return;
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < kBatch; ++i) {
            in_[i].msg_hdr.msg_name = nullptr;
            in_[i].msg_hdr.msg_namelen = 0;
            in_[i].msg_hdr.msg_flags = 0;
        }
        int n = ::recvmmsg(f.upstream.fd(), in_, kBatch, MSG_DONTWAIT, nullptr);
        if (n <= 0) {
            // An ICMP port unreachable for an earlier datagram: nothing to read, the flow stays.
            if (n < 0 && errno == ECONNREFUSED)
                continue;
            return;
        }
        f.lastActiveNs = steadyNs();
        for (int i = 0; i < n; ++i) {
            out_[i] = {};
            out_[i].msg_hdr.msg_name = &f.app;
            out_[i].msg_hdr.msg_namelen = f.appLen;
            out_[i].msg_hdr.msg_iov = &iov_[i];
            out_[i].msg_hdr.msg_iovlen = 1;
            iov_[i].iov_len = in_[i].msg_len;
        }
        int sent = 0;
        while (sent < n) {
            int r = ::sendmmsg(f.listener->fd.fd(), out_ + sent, unsigned(n - sent), MSG_DONTWAIT);
            if (r <= 0) {
                for (int i = sent; i < n; ++i)
                    dropped("reply to the application failed", errno);
                break;
            }
            for (int i = sent; i < sent + r; ++i)
                f.hop.bytesDown += in_[i].msg_len;
            f.hop.datagramsDown += uint64_t(r);
            sent += r;
        }
        for (int i = 0; i < kBatch; ++i)
            iov_[i].iov_len = kDatagramMax;
        if (n < kBatch)
            return;
    }
}

bool UdpRelay::Loop::endFlow(Flow& f, EndReason reason)
{
    auto it = flows_.find(f.key);
    if (it == flows_.end() || it->second.get() != &f)
        return false;
    if (!f.reported) {
        f.reported = true;
        f.hop.endNs = wallNowNs();
        f.hop.reason = reason;
        RedirectorRuntime& rt = *f.listener->runtime;
        rt.bytesUp.fetch_add(f.hop.bytesUp, std::memory_order_relaxed);
        rt.bytesDown.fetch_add(f.hop.bytesDown, std::memory_order_relaxed);
        rt.active.fetch_sub(1, std::memory_order_relaxed);
        relay_.openFlows_.fetch_sub(1, std::memory_order_relaxed);
        relay_.sink_(HopReport(f.hop));
    }
    // A flow whose start failed stays (without a socket) until idle, so its datagrams do not
    // each cost a query; any other ends here.
    if (reason == EndReason::Idle || reason == EndReason::Closed || f.upstream.valid()) {
        f.upstream.close();
        if (auto at = byId_.find(f.hop.flowId); at != byId_.end() && at->second == &f)
            byId_.erase(at);
        graveyard_.push_back(std::move(it->second));
        flows_.erase(it);
    }
    return true;
}

void UdpRelay::Loop::sweep(int64_t now)
{
    std::vector<Flow*> idle;
    for (auto& [key, f] : flows_)
        if (now - f->lastActiveNs >= f->idleNs)
            idle.push_back(f.get());
    if (idle.empty())
        return;
    readListenersOf(idle);  // a datagram waiting in a redirector's socket is activity not counted yet
    now = steadyNs();
    for (Flow* f : idle) {
        if (now - f->lastActiveNs < f->idleNs || !endFlow(*f, EndReason::Idle))
            continue;  // active after all, or ended while reading (the callout started a new flow)
        // Tell the callout: a connected socket's next datagram is then a new flow (sio.h).
        if (redirect_udp_flow_end(f->listener->fd.fd(), reinterpret_cast<const sockaddr*>(&f->app), f->appLen) != 0 &&
            errno != ENOENT)
            spdlog::warn("udp relay: flow {:#x} ended, but the callout was not told: {}", f->hop.flowId,
                         std::strerror(errno));
    }
}

}  // namespace redirect::engine
