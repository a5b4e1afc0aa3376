// The facts behind the relay's kernel fast path (callout/fastpath.bpf.c, issue 10 item 1),
// measured rather than assumed: one hop (sender -> A | B -> receiver) whose sockets A and B
// are joined by the sk_skb verdict, in a private network namespace of its own. Prints:
//  (d) bytes queued in A before A joins the sockhash: relayed at once, or only with the next?
//  (a) a receiver that does not read: does the sender stop (back-pressure), or do bytes pile
//      up between A and B, outside every socket buffer (the psock backlog)? Capped at
//      256 MiB so the probe cannot exhaust the machine.
//  (b) the sender's FIN and the receiver's RST: what reaches the peer, what epoll reports.
// Not a pass/fail test. Run as root: fastpath_probe (it makes its own network namespace).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fastpath.skel.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const char* what)
{
    std::fprintf(stderr, "fastpath_probe: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

void loopbackUp()
{
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        die("lo flags");
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        die("lo up");
    ::close(s);
}

int listener(uint16_t* port)
{
    int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(l, 4) != 0 ||
        ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        die("listen");
    *port = ntohs(a.sin_port);
    return l;
}

// A connected pair: *client connects, the accepted end is returned.
int pair(int* client)
{
    uint16_t port = 0;
    int l = listener(&port);
    *client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(*client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
        die("connect");
    int accepted = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (accepted < 0)
        die("accept");
    ::close(l);
    return accepted;
}

uint64_t cookie(int fd)
{
    uint64_t c = 0;
    socklen_t len = sizeof(c);
    if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) != 0)
        die("SO_COOKIE");
    return c;
}

int queued(int fd, unsigned long request)
{
    int n = 0;
    ::ioctl(fd, request, &n);
    return n;
}

tcp_info info(int fd)
{
    tcp_info i{};
    socklen_t len = sizeof(i);
    ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &i, &len);
    return i;
}

long memAvailableKiB()
{
    std::ifstream f("/proc/meminfo");
    std::string key;
    long value = 0;
    std::string unit;
    while (f >> key >> value >> unit)
        if (key == "MemAvailable:")
            return value;
    return -1;
}

std::string sockstatTcp()
{
    std::ifstream f("/proc/net/sockstat");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("TCP:", 0) == 0)
            return line;
    return "?";
}

// Bytes readable from fd within `ms` (non-blocking reads until quiet).
size_t drain(int fd, int ms, bool* eof = nullptr)
{
    static char buf[1 << 16];
    size_t total = 0;
    auto end = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < end) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            total += static_cast<size_t>(n);
            continue;
        }
        if (n == 0) {
            if (eof)
                *eof = true;
            break;
        }
        if (errno != EAGAIN) {
            std::printf("    recv error: %s\n", std::strerror(errno));
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return total;
}

std::string events(int ep, int fd)
{
    epoll_event e{};
    e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    e.data.fd = fd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    epoll_event got{};
    std::string s;
    if (::epoll_wait(ep, &got, 1, 100) == 1) {
        if (got.events & EPOLLIN) s += "IN ";
        if (got.events & EPOLLOUT) s += "OUT ";
        if (got.events & EPOLLRDHUP) s += "RDHUP ";
        if (got.events & EPOLLHUP) s += "HUP ";
        if (got.events & EPOLLERR) s += "ERR ";
    }
    ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    return s.empty() ? "(none)" : s;
}

struct Route {
    uint64_t peer;
    uint64_t bytes;
};

// Two sockets of a hop joined by the verdict, each sending what the other receives.
void join(int socks, int routes, int a, int b)
{
    uint64_t ca = cookie(a), cb = cookie(b);
    Route ra{cb, 0}, rb{ca, 0};
    uint64_t fa = static_cast<uint64_t>(a), fb = static_cast<uint64_t>(b);
    if (bpf_map_update_elem(routes, &ca, &ra, BPF_ANY) != 0 || bpf_map_update_elem(routes, &cb, &rb, BPF_ANY) != 0 ||
        bpf_map_update_elem(socks, &ca, &fa, BPF_ANY) != 0 || bpf_map_update_elem(socks, &cb, &fb, BPF_ANY) != 0)
        die("sockhash insert");
}

// Seconds to move `total` bytes from `from` to `to` (a sender and a reader thread, both
// blocking), while `relay` (if any) runs in a third thread until the reader is done.
double timed(int from, int to, size_t total, void (*relay)(int, int, size_t), int relayIn, int relayOut)
{
    for (int fd : {from, to})
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    auto start = Clock::now();
    std::thread reader([&] {
        static char buf[1 << 18];
        size_t got = 0;
        while (got < total) {
            ssize_t n = ::recv(to, buf, sizeof(buf), 0);
            if (n <= 0)
                die("timed recv");
            got += static_cast<size_t>(n);
        }
    });
    std::thread relayThread;
    if (relay)
        relayThread = std::thread(relay, relayIn, relayOut, total);
    static char chunk[1 << 18];
    for (size_t sent = 0; sent < total;) {
        ssize_t n = ::send(from, chunk, std::min(sizeof(chunk), total - sent), MSG_NOSIGNAL);
        if (n <= 0)
            die("timed send");
        sent += static_cast<size_t>(n);
    }
    reader.join();
    if (relayThread.joinable())
        relayThread.join();
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// The splice path in its simplest form: socket -> pipe -> socket, blocking.
void spliceRelay(int in, int out, size_t total)
{
    int p[2];
    if (::pipe(p) != 0)
        die("pipe");
    ::fcntl(p[1], F_SETPIPE_SZ, 1 << 18);
    for (int fd : {in, out})
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    for (size_t moved = 0; moved < total;) {
        ssize_t n = ::splice(in, nullptr, p[1], nullptr, 1 << 18, SPLICE_F_MOVE);
        if (n <= 0)
            die("splice in");
        for (ssize_t left = n; left > 0;) {
            ssize_t w = ::splice(p[0], nullptr, out, nullptr, static_cast<size_t>(left), SPLICE_F_MOVE);
            if (w <= 0)
                die("splice out");
            left -= w;
        }
        moved += static_cast<size_t>(n);
    }
    ::close(p[0]);
    ::close(p[1]);
}

}  // namespace

int main()
{
    if (::unshare(CLONE_NEWNET) != 0)
        die("unshare(CLONE_NEWNET)");
    loopbackUp();

    fastpath* skel = fastpath__open_and_load();
    if (!skel)
        die("load the fast path programs");
    int socks = bpf_map__fd(skel->maps.fastpath_socks);
    int routes = bpf_map__fd(skel->maps.fastpath_routes);
    int prog = bpf_program__fd(skel->progs.fastpath_verdict);
    if (bpf_prog_attach(prog, socks, BPF_SK_SKB_STREAM_VERDICT, 0) != 0)
        die("attach verdict");

    int sender = -1, receiver = -1;
    int a = pair(&sender);    // sender -> A (the relay's accepted socket)
    int r = pair(&receiver);  // B = receiver's peer: the relay's upstream socket
    int b = receiver;
    receiver = r;
    for (int fd : {a, b, sender, receiver})
        ::fcntl(fd, F_SETFL, O_NONBLOCK);

    // (d) Bytes already queued in A when it joins the map.
    if (::send(sender, "0123456789", 10, 0) != 10)
        die("send");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    join(socks, routes, a, b);
    uint64_t ca = cookie(a);
    Route ra{};
    std::printf("(d) 10 bytes in A's receive queue at insertion: SIOCINQ(A)=%d; receiver got %zu within 300 ms\n",
                queued(a, SIOCINQ), drain(receiver, 300));
    char peek[16];
    ssize_t own = ::recv(a, peek, sizeof(peek), MSG_DONTWAIT);
    std::printf("    then one recv(A) = %zd (%s); receiver got %zu within 300 ms\n", own,
                own < 0 ? std::strerror(errno) : "read by the engine", drain(receiver, 300));
    ::send(sender, "x", 1, 0);
    std::printf("    1 more byte: receiver got %zu\n", drain(receiver, 300));

    // (a) Back-pressure: the receiver stops reading; the sender writes as fast as it can.
    constexpr size_t kCap = size_t(256) << 20;
    static char chunk[1 << 16];
    long memBefore = memAvailableKiB();
    std::string statBefore = sockstatTcp();
    size_t sent = 0;
    auto lastProgress = Clock::now();
    auto start = Clock::now();
    while (sent < kCap && Clock::now() - lastProgress < std::chrono::milliseconds(500) &&
           Clock::now() - start < std::chrono::seconds(10)) {
        ssize_t n = ::send(sender, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            lastProgress = Clock::now();
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    bpf_map_lookup_elem(routes, &ca, &ra);
    tcp_info ib = info(b);
    size_t inSockets = static_cast<size_t>(queued(sender, SIOCOUTQ)) + static_cast<size_t>(queued(a, SIOCINQ)) +
                       static_cast<size_t>(queued(b, SIOCOUTQ)) + static_cast<size_t>(queued(receiver, SIOCINQ));
    std::printf("(a) receiver not reading: sender wrote %.1f MiB in %.1f s%s\n", sent / 1048576.0,
                std::chrono::duration<double>(Clock::now() - start).count(),
                sent >= kCap ? " (hit the 256 MiB cap: no back-pressure)" : " (then blocked)");
    std::printf("    socket queues: outq(sender)=%d inq(A)=%d outq(B)=%d inq(receiver)=%d, total %.1f MiB\n",
                queued(sender, SIOCOUTQ), queued(a, SIOCINQ), queued(b, SIOCOUTQ), queued(receiver, SIOCINQ),
                inSockets / 1048576.0);
    std::printf("    verdict redirected %.1f MiB out of A; B's TCP took %.1f MiB (bytes_acked + outq)\n",
                ra.bytes / 1048576.0, (ib.tcpi_bytes_acked + static_cast<uint64_t>(queued(b, SIOCOUTQ))) / 1048576.0);
    std::printf("    held outside every socket buffer (psock backlog of B): %.1f MiB\n",
                (static_cast<double>(sent) + 11 - static_cast<double>(inSockets) - 11) / 1048576.0);
    std::printf("    MemAvailable dropped by %.1f MiB; sockstat before \"%s\" after \"%s\"\n",
                (memBefore - memAvailableKiB()) / 1024.0, statBefore.c_str(), sockstatTcp().c_str());
    size_t got = drain(receiver, 3000);
    std::printf("    receiver then drained %.1f MiB\n", got / 1048576.0);

    // (a') The same with a reader at 10 MiB/s for 2 s: how the backlog grows while data flows.
    size_t read = 0;
    sent = 0;
    start = Clock::now();
    auto nextRead = start;
    auto nextReport = start + std::chrono::milliseconds(500);
    std::printf("(a') reader at 10 MiB/s, sender at full speed (cap 256 MiB):\n");
    while (Clock::now() - start < std::chrono::seconds(2)) {
        if (sent < kCap) {
            ssize_t n = ::send(sender, chunk, sizeof(chunk), MSG_NOSIGNAL);
            if (n > 0)
                sent += static_cast<size_t>(n);
        }
        if (Clock::now() >= nextRead) {
            // 100 KiB every 10 ms.
            for (size_t want = 100 * 1024; want > 0;) {
                ssize_t n = ::recv(receiver, chunk, std::min(want, sizeof(chunk)), MSG_DONTWAIT);
                if (n <= 0)
                    break;
                read += static_cast<size_t>(n);
                want -= static_cast<size_t>(n);
            }
            nextRead += std::chrono::milliseconds(10);
        }
        if (Clock::now() >= nextReport) {
            size_t queues = static_cast<size_t>(queued(b, SIOCOUTQ)) + static_cast<size_t>(queued(receiver, SIOCINQ));
            std::printf("    t=%.1fs sent %6.1f MiB read %5.1f MiB, socket queues %4.1f MiB, psock backlog %6.1f MiB\n",
                        std::chrono::duration<double>(Clock::now() - start).count(), sent / 1048576.0,
                        read / 1048576.0, queues / 1048576.0,
                        (static_cast<double>(sent) - static_cast<double>(read) - static_cast<double>(queues)) /
                            1048576.0);
            nextReport += std::chrono::milliseconds(500);
        }
        if (sent >= kCap)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::printf("    then drained %.1f MiB\n", drain(receiver, 3000) / 1048576.0);

    // (b) FIN from the sender; what epoll reports on A and whether the receiver sees an end.
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    ::send(sender, "fin", 3, 0);
    ::shutdown(sender, SHUT_WR);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    bool eof = false;
    size_t tail = drain(receiver, 300, &eof);
    std::printf("(b) sender FIN: epoll(A) = %s; receiver got %zu bytes, EOF %s\n", events(ep, a).c_str(), tail,
                eof ? "yes" : "no (the FIN stops at A)");
    ::shutdown(b, SHUT_WR);
    eof = false;
    drain(receiver, 300, &eof);
    std::printf("    after the relay's shutdown(B, SHUT_WR): receiver EOF %s\n", eof ? "yes" : "no");
    linger lg{1, 0};
    ::setsockopt(receiver, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    ::close(receiver);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int err = 0;
    socklen_t el = sizeof(err);
    ::getsockopt(b, SOL_SOCKET, SO_ERROR, &err, &el);
    std::printf("    receiver RST: epoll(B) = %s, SO_ERROR(B) = %s; epoll(A) = %s\n", events(ep, b).c_str(),
                std::strerror(err), events(ep, a).c_str());

    // (f) Throughput of one 1 GiB stream, same run: direct, through a splice relay, through the
    // verdict (the reader keeps up, so the backlog of (a) does not build).
    constexpr size_t kStream = size_t(1) << 30;
    int d1 = -1;
    int d2 = pair(&d1);
    double direct = timed(d1, d2, kStream, nullptr, -1, -1);
    int s1 = -1, s3 = -1;
    int s2 = pair(&s1);  // sender s1 -> s2 (relay in)
    int s4 = pair(&s3);  // relay out s3 -> s4 (reader)
    double spliced = timed(s1, s4, kStream, spliceRelay, s2, s3);
    int f1 = -1, f3 = -1;
    int f2 = pair(&f1);
    int f4 = pair(&f3);
    join(socks, routes, f2, f3);
    double verdict = timed(f1, f4, kStream, nullptr, -1, -1);
    std::printf("(f) 1 GiB, one stream: direct %.0f MiB/s, splice relay %.0f MiB/s (%.2f of direct), "
                "sk_skb verdict %.0f MiB/s (%.2f of direct)\n",
                1024 / direct, 1024 / spliced, direct / spliced, 1024 / verdict, direct / verdict);

    // (g) The relay passes the FIN on (shutdown of its upstream socket) while the peer's psock
    // backlog still holds bytes: what does the receiver get?
    int g1 = -1, g3 = -1;
    int g2 = pair(&g1);
    int g4 = pair(&g3);
    join(socks, routes, g2, g3);
    ::fcntl(g1, F_SETFL, O_NONBLOCK);
    ::fcntl(g4, F_SETFL, O_NONBLOCK);
    constexpr size_t kHalf = size_t(32) << 20;
    size_t gsent = 0;
    lastProgress = Clock::now();
    while (gsent < kHalf && Clock::now() - lastProgress < std::chrono::milliseconds(500)) {
        ssize_t n = ::send(g1, chunk, std::min(sizeof(chunk), kHalf - gsent), MSG_NOSIGNAL);
        if (n > 0) {
            gsent += static_cast<size_t>(n);
            lastProgress = Clock::now();
        }
    }
    ::shutdown(g1, SHUT_WR);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::shutdown(g3, SHUT_WR);
    eof = false;
    size_t ggot = drain(g4, 3000, &eof);
    std::printf("(g) shutdown(B) with a backlog: sender wrote %.1f MiB, receiver got %.1f MiB then EOF %s\n",
                gsent / 1048576.0, ggot / 1048576.0, eof ? "yes" : "no");
    bpf_prog_detach2(prog, socks, BPF_SK_SKB_STREAM_VERDICT);

    // (e) The alternative: sk_msg on the application's socket into the ingress of the relay's
    // accepted socket; the relay does not read. Capped lower (64 MiB): this memory is charged
    // to the machine-wide TCP pool, which other sockets share.
    int appSocks = bpf_map__fd(skel->maps.fastpath_app_socks);
    int msgProg = bpf_program__fd(skel->progs.fastpath_app_verdict);
    if (bpf_prog_attach(msgProg, appSocks, BPF_SK_MSG_VERDICT, 0) != 0)
        die("attach sk_msg verdict");
    int app = -1;
    int accepted = pair(&app);
    ::fcntl(app, F_SETFL, O_NONBLOCK);
    uint64_t capp = cookie(app), cacc = cookie(accepted);
    Route rapp{cacc, 0};
    uint64_t appFd = static_cast<uint64_t>(app), accFd = static_cast<uint64_t>(accepted);
    int appRoutes = bpf_map__fd(skel->maps.fastpath_app_routes);
    sockaddr_in local{};
    socklen_t localLen = sizeof(local);
    ::getsockname(app, reinterpret_cast<sockaddr*>(&local), &localLen);
    uint32_t appPort = ntohs(local.sin_port);
    if (bpf_map_update_elem(appRoutes, &appPort, &rapp, BPF_ANY) != 0 ||
        bpf_map_update_elem(appSocks, &cacc, &accFd, BPF_ANY) != 0 ||
        bpf_map_update_elem(appSocks, &capp, &appFd, BPF_ANY) != 0)
        die("sk_msg maps");
    constexpr size_t kMsgCap = size_t(64) << 20;
    statBefore = sockstatTcp();
    sent = 0;
    lastProgress = start = Clock::now();
    int lastError = 0;
    while (sent < kMsgCap && Clock::now() - lastProgress < std::chrono::milliseconds(500)) {
        ssize_t n = ::send(app, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            lastProgress = Clock::now();
        } else {
            lastError = errno;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    bpf_map_lookup_elem(appRoutes, &appPort, &rapp);
    std::printf("(e) sk_msg app->relay ingress, relay not reading: app wrote %.1f MiB%s, last send error %s\n",
                sent / 1048576.0, sent >= kMsgCap ? " (hit the 64 MiB cap)" : " (then blocked)",
                lastError ? std::strerror(lastError) : "none");
    std::printf("    redirected %.1f MiB; rcvbuf of the relay socket %d; sockstat before \"%s\" after \"%s\"\n",
                rapp.bytes / 1048576.0, [&] {
                    int v = 0;
                    socklen_t l = sizeof(v);
                    ::getsockopt(accepted, SOL_SOCKET, SO_RCVBUF, &v, &l);
                    return v;
                }(),
                statBefore.c_str(), sockstatTcp().c_str());
    ::fcntl(accepted, F_SETFL, O_NONBLOCK);
    std::printf("    relay then read %.1f MiB\n", drain(accepted, 3000) / 1048576.0);
    bpf_prog_detach2(msgProg, appSocks, BPF_SK_MSG_VERDICT);
    fastpath__destroy(skel);
    return 0;
}
