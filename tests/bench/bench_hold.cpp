// Opens N connections to 127.0.0.1:PORT and holds them idle, for the engine's
// memory with many concurrent flows. Prints "HELD N" once all are established;
// runs until killed.   bench_hold PORT N
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char** argv)
{
    if (argc != 3 || std::atoi(argv[2]) <= 0) {
        std::fprintf(stderr, "usage: bench_hold PORT N\n");
        return 2;
    }
    rlimit lim{1 << 20, 1 << 20};
    setrlimit(RLIMIT_NOFILE, &lim);
    int count = std::atoi(argv[2]);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::vector<int> fds;
    for (int i = 0; i < count; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
            std::fprintf(stderr, "bench_hold: connection %d: %s\n", i, std::strerror(errno));
            return 1;
        }
        fds.push_back(fd);
    }
    std::printf("HELD %d\n", count);
    std::fflush(stdout);
    pause();
    return 0;
}
