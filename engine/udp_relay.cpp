#include "udp_relay.h"
#include "udp_relay_loop.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "callout_abi.h"
#include "engine_internal.h"
#include "fd_handle.h"
#include "redirect/sio.h"

namespace redirect::engine {

using namespace udp_detail;

UdpRelay::UdpRelay(UdpRelayOptions options, Relay::HopSink sink)
    : options_(std::move(options)), sink_(std::move(sink)), loop_(std::make_unique<Loop>(*this))
{
    maxFlows_ = options_.maxFlows;
    if (rlimit lim{}; !maxFlows_ && ::getrlimit(RLIMIT_NOFILE, &lim) == 0)
        maxFlows_ = std::max<size_t>(1024, size_t(std::min<rlim_t>(lim.rlim_cur, 1u << 30) / 4));
    limitText_ = "at the limit of " + std::to_string(maxFlows_) + " open UDP flows" +
                 (options_.maxFlows ? "" : " (a quarter of RLIMIT_NOFILE)");
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0)
        throw std::runtime_error(std::string("udp relay eventfd: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    if (::epoll_ctl(loop_->epoll(), EPOLL_CTL_ADD, wake_, &ev) != 0) {
        int e = errno;
        ::close(wake_);
        throw std::runtime_error(std::string("udp relay epoll: ") + std::strerror(e));
    }
    lastLoop_ = steadyNs();
    thread_ = std::thread([this] { loop_->run(); });
}

UdpRelay::~UdpRelay()
{
    stop();
    ::close(wake_);
}

void UdpRelay::stop()
{
    if (stopping_.exchange(true))
        return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof(one));
    thread_.join();
    // The thread is gone: what it did not take is done here, then every flow ends. Under the
    // lock, like any command posted from now on.
    {
        std::lock_guard lock(mutex_);
        stopped_ = true;
        for (Command& c : commands_)
            loop_->handle(c);
        commands_.clear();
        loop_->endAll(EndReason::Closed);
        handled_ = posted_;
    }
    done_.notify_all();
}

void UdpRelay::post(Command command, bool wait)
{
    std::unique_lock lock(mutex_);
    if (stopped_) {
        loop_->handle(command);  // stopped: nobody else touches the loop
        return;
    }
    commands_.push_back(std::move(command));
    const uint64_t ticket = ++posted_;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof(one));
    if (wait)
        done_.wait(lock, [&] { return handled_ >= ticket; });
}

void UdpRelay::addRedirector(std::shared_ptr<RedirectorRuntime> runtime, uint16_t* port4, uint16_t* port6)
{
    std::vector<std::unique_ptr<Listener>> made;
    // Sockets belong to the network namespace of the thread that creates them.
    inNetns(options_.netnsFd, [&] {
        const RedirectorConfig& c = runtime->config;
        for (int family : {AF_INET, AF_INET6}) {
            if (family == AF_INET6 && !c.listen6)
                continue;
            uint16_t want = family == AF_INET ? c.port4 : c.port6;
            auto l = std::make_unique<Listener>();
            l->runtime = runtime;
            l->fd = FdHandle(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
            if (!l->fd.valid())
                throw std::runtime_error(std::string("udp socket: ") + std::strerror(errno));
            int one = 1;
            if (family == AF_INET6)
                ::setsockopt(l->fd.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
            ::setsockopt(l->fd.fd(), SOL_SOCKET, SO_RCVBUF, &kRcvBuf, sizeof(kRcvBuf));
            socklen_t len = 0;
            const uint8_t* addr = family == AF_INET ? c.addr4.data() : c.addr6.data();
            sockaddr_storage ss = loopbackAddress(family, want, &len, addr);
            // Bound to the address itself, not a wildcard: the SDK's query names the flow by it.
            if (::bind(l->fd.fd(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
                throw std::runtime_error(std::string("udp bind ") + (family == AF_INET ? "IPv4" : "IPv6") +
                                         " port " + std::to_string(want) + ": " + std::strerror(errno));
            len = sizeof(ss);
            ::getsockname(l->fd.fd(), reinterpret_cast<sockaddr*>(&ss), &len);
            (family == AF_INET ? *port4 : *port6) = portOf(ss);
            if (options_.markListener)
                options_.markListener(l->fd.fd(), runtime->id);
            made.push_back(std::move(l));
        }
    });
    for (auto& l : made)
        post({std::move(l), nullptr, {}}, false);
}

void UdpRelay::removeRedirector(const std::shared_ptr<RedirectorRuntime>& runtime)
{
    post({nullptr, runtime.get(), {}}, true);
}

void UdpRelay::applicationsClosed(std::vector<uint64_t> flowIds)
{
    if (!flowIds.empty())
        post({nullptr, nullptr, std::move(flowIds)}, false);
}

void UdpRelay::setIdleTimeouts(std::map<uint32_t, uint32_t> byRule)
{
    std::lock_guard lock(mutex_);
    timeouts_ = std::move(byRule);
}

}  // namespace redirect::engine
