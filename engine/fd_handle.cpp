#include "fd_handle.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace redirect::engine {

std::string SysResult::text() const { return error ? std::strerror(error) : std::string(); }

SysResult sysResult(long value) { return {value, value < 0 ? errno : 0}; }

FdHandle::FdHandle(FdHandle&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), epoll_(std::exchange(other.epoll_, -1))
{
}

FdHandle& FdHandle::operator=(FdHandle&& other) noexcept
{
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        epoll_ = std::exchange(other.epoll_, -1);
    }
    return *this;
}

SysResult FdHandle::watch(int epoll, uint32_t events, void* ptr)
{
    return watch(epoll, events, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ptr)));
}

SysResult FdHandle::watch(int epoll, uint32_t events, uint64_t data)
{
    epoll_event ev{events, {.u64 = data}};
    SysResult r = sysResult(::epoll_ctl(epoll, EPOLL_CTL_ADD, fd_, &ev));
    if (r.ok())
        epoll_ = epoll;
    return r;
}

SysResult FdHandle::rewatch(uint32_t events, void* ptr)
{
    return rewatch(events, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ptr)));
}

SysResult FdHandle::rewatch(uint32_t events, uint64_t data)
{
    if (epoll_ < 0)
        return {-1, ENOENT};
    epoll_event ev{events, {.u64 = data}};
    return sysResult(::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd_, &ev));
}

SysResult FdHandle::unwatch()
{
    if (epoll_ < 0 || fd_ < 0)
        return {};
    SysResult r = sysResult(::epoll_ctl(std::exchange(epoll_, -1), EPOLL_CTL_DEL, fd_, nullptr));
    return r;
}

SysResult FdHandle::close()
{
    if (fd_ < 0)
        return {};
    SysResult removed = unwatch();
    // Linux frees the descriptor even when close() reports an error: never retry it.
    SysResult closed = sysResult(::close(std::exchange(fd_, -1)));
    return removed.ok() ? closed : removed;
}

SysResult FdHandle::shutdownAndClose()
{
    if (fd_ < 0)
        return {};
    SysResult removed = unwatch();
    // shutdown() acts on the connection, not on this reference to it; a listener stops
    // listening. ENOTCONN: the peer already reset it, nothing left to end.
    SysResult shut = sysResult(::shutdown(fd_, SHUT_RDWR));
    if (shut.error == ENOTCONN)
        shut = {};
    SysResult closed = close();
    return !removed.ok() ? removed : !shut.ok() ? shut : closed;
}

SysResult FdHandle::resetAndClose()
{
    if (fd_ < 0)
        return {};
    SysResult removed = unwatch();
    // connect(AF_UNSPEC) disconnects the socket itself (tcp_disconnect): RST to an established
    // peer, an abort of a connect in progress. SO_LINGER 0 would reset only on the last close,
    // which a forked child holding the file postpones.
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    SysResult reset = sysResult(::connect(fd_, &unspec, sizeof(unspec)));
    SysResult closed = close();
    return !removed.ok() ? removed : !reset.ok() ? reset : closed;
}

}  // namespace redirect::engine
