// A small epoll TCP server for the benchmarks, so the server is never the
// bottleneck and behaves the same in every case:
//   bench_server PORT http   answer each request "200 OK" and close (Connection: close)
//   bench_server PORT hold   accept and keep every connection open, discarding input
// Listens on 127.0.0.1:PORT; prints "READY" once listening; runs until killed.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char** argv)
{
    if (argc != 3 || (std::string(argv[2]) != "http" && std::string(argv[2]) != "hold")) {
        std::fprintf(stderr, "usage: bench_server PORT http|hold\n");
        return 2;
    }
    bool http = std::string(argv[2]) == "http";
    rlimit lim{1 << 20, 1 << 20};
    setrlimit(RLIMIT_NOFILE, &lim);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 65535) != 0) {
        std::fprintf(stderr, "bench_server: %s\n", std::strerror(errno));
        return 1;
    }
    int ep = epoll_create1(0);
    epoll_event ev{EPOLLIN, {.fd = fd}};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    std::printf("READY\n");
    std::fflush(stdout);
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    epoll_event events[512];
    char buf[16384];
    for (;;) {
        int n = epoll_wait(ep, events, 512, -1);
        for (int i = 0; i < n; ++i) {
            int e = events[i].data.fd;
            if (e == fd) {
                for (int c; (c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
                    epoll_event cev{EPOLLIN | EPOLLRDHUP, {.fd = c}};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t r = read(e, buf, sizeof(buf));
            if (r <= 0) {
                close(e);
                continue;
            }
            if (http && memmem(buf, static_cast<size_t>(r), "\r\n\r\n", 4)) {
                [[maybe_unused]] ssize_t w = send(e, reply, sizeof(reply) - 1, MSG_NOSIGNAL);
                close(e);
            }
        }
    }
}
