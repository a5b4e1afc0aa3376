// An owned descriptor that knows the epoll set it is registered with (after
// Envoy's io_socket_handle_impl), and system call results that keep their errno.
#pragma once

#include <cstdint>
#include <string>

namespace redirect::engine {

/// A system call's return value with the errno it left (0 on success).
struct SysResult {
    long value = 0;
    int error = 0;
    bool ok() const { return error == 0; }
    /// strerror text of the error ("" on success).
    std::string text() const;
};

/// Wrap a raw return value: negative means failed, errno says why.
SysResult sysResult(long value);

/**
 * Owns one descriptor. close() takes it out of its epoll set before closing:
 * close() alone leaves the registration alive while another process (a forked
 * child) still holds the file, and epoll keeps reporting it to its owner.
 * The socket endings act on the connection itself, so a forked copy cannot
 * keep it open either.
 */
class FdHandle {
public:
    FdHandle() = default;
    explicit FdHandle(int fd) noexcept : fd_(fd) {}
    ~FdHandle() { close(); }
    FdHandle(FdHandle&& other) noexcept;
    FdHandle& operator=(FdHandle&& other) noexcept;
    FdHandle(const FdHandle&) = delete;
    FdHandle& operator=(const FdHandle&) = delete;

    int fd() const { return fd_; }
    bool valid() const { return fd_ >= 0; }

    /// Register with `epoll` (EPOLL_CTL_ADD); events come back carrying `ptr`.
    SysResult watch(int epoll, uint32_t events, void* ptr);
    /// Register with `epoll`; events come back carrying `data`.
    SysResult watch(int epoll, uint32_t events, uint64_t data);
    /// The registration ends with the file instead of by EPOLL_CTL_DEL at close(): one system
    /// call less, for an owner whose `data` can tell a stale event (a forked child's copy keeps
    /// the registration, and epoll reporting, alive) from a live one.
    void leaveWatchToClose() { epoll_ = -1; }
    /// Change the registration (EPOLL_CTL_MOD); 0 events keeps it registered but quiet.
    SysResult rewatch(uint32_t events, void* ptr);
    SysResult rewatch(uint32_t events, uint64_t data);
    /// Leave the epoll set, then close.
    SysResult close();
    /// Socket: send FIN both ways and stop listening for every holder of the file, then close.
    SysResult shutdownAndClose();
    /// Socket: abort the connection with RST for every holder of the file, then close.
    SysResult resetAndClose();

private:
    SysResult unwatch();

    int fd_ = -1;
    int epoll_ = -1;  // the set fd_ is registered with, or -1
};

}  // namespace redirect::engine
