#include "listener_owner.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace redirect::engine {

namespace {

struct DiagListener {
    int family = AF_INET;
    uint8_t addr[16] = {};
    uint16_t port = 0;  // host order
    uint32_t uid = 0;
    unsigned long inode = 0;
};

// Every listening TCP socket (or unconnected UDP socket) of `family` in this network namespace
// (sock_diag dump).
std::vector<DiagListener> dumpListeners(int family, int protocol)
{
    int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        throw std::runtime_error(std::string("sock_diag socket: ") + std::strerror(errno));
    struct {
        nlmsghdr header;
        inet_diag_req_v2 request;
    } message{};
    message.header.nlmsg_len = sizeof(message);
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.request.sdiag_family = static_cast<uint8_t>(family);
    message.request.sdiag_protocol = static_cast<uint8_t>(protocol);
    // An unconnected UDP socket is in TCP_CLOSE as sock_diag tells it.
    message.request.idiag_states = 1u << (protocol == IPPROTO_UDP ? TCP_CLOSE : TCP_LISTEN);
    std::vector<DiagListener> out;
    std::string error;
    if (::send(fd, &message, sizeof(message), 0) != static_cast<ssize_t>(sizeof(message)))
        error = std::string("sock_diag request: ") + std::strerror(errno);
    alignas(nlmsghdr) char buffer[16384];
    for (bool done = !error.empty(); !done;) {
        ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            error = std::string("sock_diag reply: ") + std::strerror(errno);
            break;
        }
        if (n == 0)
            break;
        // NLMSG_OK/NLMSG_NEXT mix signed and unsigned lengths (clang's -Wsign-compare): walk by hand.
        size_t left = static_cast<size_t>(n);
        for (const char* at = buffer; left >= sizeof(nlmsghdr);) {
            auto* h = reinterpret_cast<const nlmsghdr*>(at);
            if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > left)
                break;
            size_t step = std::min<size_t>(NLMSG_ALIGN(h->nlmsg_len), left);
            at += step;
            left -= step;
            if (h->nlmsg_type == NLMSG_DONE) {
                done = true;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                error = std::string("sock_diag: ") + std::strerror(-e->error);
                done = true;
                break;
            }
            auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
            DiagListener l;
            l.family = m->idiag_family;
            std::memcpy(l.addr, m->id.idiag_src, l.family == AF_INET ? 4 : 16);
            l.port = ntohs(m->id.idiag_sport);
            l.uid = m->idiag_uid;
            l.inode = m->idiag_inode;
            out.push_back(l);
        }
    }
    ::close(fd);
    if (!error.empty())
        throw std::runtime_error(error);
    return out;
}

bool allZero(const uint8_t* a, size_t n) { return std::all_of(a, a + n, [](uint8_t b) { return b == 0; }); }

// How strongly the kernel prefers a listener for a connect to `e` (0: it would not reach it).
int preference(const DiagListener& l, const Endpoint& e)
{
    if (l.port != e.port)
        return 0;
    size_t n = e.family == AF_INET ? 4 : 16;
    if (l.family == e.family && std::memcmp(l.addr, e.addr.data(), n) == 0)
        return 3;
    if (l.family == e.family && allZero(l.addr, n))
        return 2;
    if (e.family == AF_INET && l.family == AF_INET6 && allZero(l.addr, 16))
        return 1;  // [::] without IPV6_V6ONLY takes IPv4 too
    return 0;
}

// pid, descriptor number and comm of a process holding each socket inode.
void findHolders(std::vector<ListenerSocket>& sockets)
{
    std::map<std::string, ListenerSocket*> wanted;
    for (ListenerSocket& s : sockets)
        wanted["socket:[" + std::to_string(s.inode) + "]"] = &s;
    std::error_code ec;
    for (auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
        std::string name = proc.path().filename();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit))
            continue;
        std::error_code fec;
        for (auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", fec)) {
            std::error_code lec;
            auto it = wanted.find(std::filesystem::read_symlink(fd.path(), lec).string());
            if (lec || it == wanted.end() || it->second->pid)
                continue;
            it->second->pid = std::stoi(name);
            it->second->fd = std::stoi(fd.path().filename().string());
            std::ifstream comm(proc.path() / "comm");
            std::getline(comm, it->second->comm);
        }
    }
}

}  // namespace

std::vector<ListenerSocket> listenersOn(const Endpoint& endpoint, bool holders, int protocol)
{
    std::vector<std::pair<int, DiagListener>> found;
    for (int family : {AF_INET, AF_INET6}) {
        if (family == AF_INET && endpoint.family == AF_INET6)
            continue;
        for (const DiagListener& l : dumpListeners(family, protocol))
            if (int p = preference(l, endpoint); p == 3 || (p && protocol == IPPROTO_TCP))
                found.emplace_back(p, l);
    }
    std::stable_sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<ListenerSocket> out;
    for (auto& [p, l] : found)
        out.push_back({l.inode, l.uid, 0, -1, {}});
    if (holders)
        findHolders(out);
    return out;
}

int duplicateDescriptor(int pid, int fd)
{
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0)
        return -errno;
    int dup = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
    int error = errno;
    ::close(pidfd);
    if (dup < 0)
        return -error;
    return dup;
}

}  // namespace redirect::engine
