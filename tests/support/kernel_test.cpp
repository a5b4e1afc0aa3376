#include "kernel_test.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor.h"

namespace redirect::test {

namespace {
std::unique_ptr<Sandbox> g_sandbox;
std::string g_instance;
}  // namespace

Sandbox& sandbox() { return *g_sandbox; }
const std::string& instanceName() { return g_instance; }

bool enterSandbox()
{
    try {
        SupervisedTest made = superviseTest();  // from here on, this is the supervised child
        g_sandbox = std::make_unique<Sandbox>(made.cgroup);
        g_instance = made.instance;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "FAIL: cannot build the kernel test sandbox: %s\n", e.what());
        return false;
    }
    ::setenv("REDIRECT_CALLOUT_INSTANCE", g_instance.c_str(), 1);
    return true;
}

LoadedCallout::LoadedCallout()
{
    callout_ = std::make_unique<Callout>(CalloutOptions{sandbox().cgroup(), instanceName()});
    callout_->setEventHandler([this](const callout_event& e) { events_.push_back(e); });
}

void LoadedCallout::drain() { callout_->drainEvents(); }

std::vector<callout_event> LoadedCallout::events()
{
    drain();
    return events_;
}

void LoadedCallout::clearEvents()
{
    drain();
    events_.clear();
}

bool LoadedCallout::waitForEvent(const std::function<bool(const callout_event&)>& pred, int timeoutMs)
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    size_t seen = 0;
    do {
        callout_->pollEvents(50);
        for (; seen < events_.size(); ++seen)
            if (pred(events_[seen]))
                return true;
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
}

TcpServer::TcpServer(int family, std::string reply, size_t requestBytes)
    : reply_(std::move(reply)), requestBytes_(requestBytes)
{
    fd_ = listenLoopback(family, &port_);
    if (fd_ < 0 || ::pipe2(wake_, O_CLOEXEC) != 0)
        throw std::runtime_error("TcpServer: cannot listen");
    thread_ = std::thread([this] {
        for (;;) {
            pollfd p[2] = {{wake_[0], POLLIN, 0}, {fd_, POLLIN, 0}};
            if (::poll(p, 2, -1) < 0 && errno == EINTR)
                continue;
            if (p[0].revents)
                return;
            sockaddr_storage peer{};
            socklen_t len = sizeof(peer);
            int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            {
                std::lock_guard lock(mutex_);
                peers_.push_back(addressText(peer));
            }
            std::lock_guard lock(mutex_);
            workers_.emplace_back([this, c] {
                std::string got;
                char buf[4096];
                while (got.size() < requestBytes_) {
                    ssize_t n = ::read(c, buf, sizeof(buf));
                    if (n <= 0)
                        break;
                    got.append(buf, static_cast<size_t>(n));
                }
                [[maybe_unused]] ssize_t w = ::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
                ::close(c);
            });
        }
    });
}

TcpServer::~TcpServer()
{
    char c = 0;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
    thread_.join();
    for (auto& t : workers_)
        t.join();
    for (int fd : {fd_, wake_[0], wake_[1]})
        ::close(fd);
}

std::vector<std::string> TcpServer::peers()
{
    std::lock_guard lock(mutex_);
    return peers_;
}

Child::Child(const std::vector<std::string>& argv, std::optional<RunAs> as)
{
    int pipefd[2], armed[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0)
        throw std::runtime_error("Child: pipe");
    if (::pipe2(armed, O_CLOEXEC) != 0) {
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        throw std::runtime_error("Child: pipe");
    }
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0)
        throw std::runtime_error("Child: fork");
    if (pid_ == 0) {
        // Second line behind the supervisor: a helper never outlives the test.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent)
            ::_exit(127);
        ::close(armed[1]);
        ::dup2(pipefd[1], 1);
        if (as && (::chdir("/") != 0 || ::setgroups(0, nullptr) != 0 || ::setgid(as->gid) != 0 ||
                   ::setuid(as->uid) != 0))
            ::_exit(126);
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(pipefd[1]);
    out_ = pipefd[0];
    // Return once the death signal is armed: it follows the thread that forked, so that
    // thread must still be there when the child arms it (end of file: the child closed it).
    ::close(armed[1]);
    char c;
    while (::read(armed[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::close(armed[0]);
}

Child::~Child()
{
    if (!reaped_) {
        kill(SIGKILL);
        wait(5000);
    }
    if (out_ >= 0)
        ::close(out_);
}

std::string Child::readLine(int timeoutMs)
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        auto nl = buffer_.find('\n');
        if (nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return {};
        pollfd p{out_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            return {};
        char buf[4096];
        ssize_t n = ::read(out_, buf, sizeof(buf));
        if (n <= 0) {
            eof_ = true;
            return {};
        }
        buffer_.append(buf, static_cast<size_t>(n));
    }
}

int Child::wait(int timeoutMs)
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            return status;
        }
        if (r < 0 || std::chrono::steady_clock::now() >= deadline)
            return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

void Child::kill(int signal)
{
    if (!reaped_)
        ::kill(pid_, signal);
}

std::vector<int> allowedCpus()
{
    cpu_set_t allowed;
    std::vector<int> cpus;
    if (::sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
            if (CPU_ISSET(cpu, &allowed))
                cpus.push_back(cpu);
    if (cpus.empty())
        cpus.push_back(std::max(::sched_getcpu(), 0));
    return cpus;
}

bool runOnCpu(int cpu, const std::function<bool()>& work)
{
    bool result = false;
    std::thread([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        result = ::sched_setaffinity(0, sizeof(set), &set) == 0 && work();  // 0: this thread only
    }).join();
    return result;
}

std::pair<int, std::string> run(const std::vector<std::string>& argv, int timeoutMs, std::optional<RunAs> as)
{
    Child child(argv, as);
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return {-1, out};
        std::string line = child.readLine(static_cast<int>(left.count()));
        if (line.empty() && child.eof())
            break;
        out += line + "\n";
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    int status = child.wait(static_cast<int>(std::max<long>(left.count(), 0)));
    if (status == -1)
        return {-1, out};
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

Exchange exchange(TcpServer& server, uint16_t port, int answerTimeoutMs)
{
    Exchange x;
    int fd = connectLoopback(AF_INET, port);
    if (fd < 0)
        return x;
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    [[maybe_unused]] ssize_t w = ::send(fd, "ping\n", 5, MSG_NOSIGNAL);
    pollfd p{fd, POLLIN, 0};
    char buf[64];
    if (::poll(&p, 1, answerTimeoutMs) == 1 && ::recv(fd, buf, sizeof(buf), 0) > 0) {
        x.answered = true;
        auto peers = server.peers();
        x.direct = std::find(peers.begin(), peers.end(), addressText(local)) != peers.end();
    }
    ::close(fd);
    return x;
}

std::string addressText(const sockaddr_storage& ss)
{
    char text[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        return std::string(text) + ":" + std::to_string(ntohs(sin->sin_port));
    }
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(sin6->sin6_port));
}

std::string eventDestination(const callout_event& e)
{
    sockaddr_storage ss{};
    if (e.family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, e.orig_addr, 4);
        sin->sin_port = e.orig_port;
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, e.orig_addr, 16);
        sin6->sin6_port = e.orig_port;
    }
    return addressText(ss);
}

std::string binaryPath(const std::string& name)
{
    return QCoreApplication::applicationDirPath().toStdString() + "/" + name;
}

}  // namespace redirect::test
