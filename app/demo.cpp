#include "demo.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "callout_loader.h"
#include "cgroup2.h"
#include "output_file.h"

namespace redirect::app {

namespace {

constexpr uint16_t kHttpPort = 8080;
constexpr uint16_t kClosedPort = 8081;
constexpr uint16_t kBypassPort = 9;
constexpr uint16_t kEchoPort = 7007;
constexpr uint16_t kVendorPort = 18080;
constexpr uint16_t kDnsPort = 53;  // the namespace's own loopback: no resolver of the machine's

const char* kDemoRules = R"({
  "version": 1,
  "redirectors": [
    { "id": "inspector", "name": "Web inspector" },
    { "id": "dlp", "name": "DLP agent", "data": "dlp-policy-7" },
    { "id": "vendor-x", "name": "Vendor X proxy", "external": true, "listen": ["127.0.0.1:18080"] }
  ],
  "rules": [
    { "id": "no-discard", "action": "bypass", "ports": "9" },
    { "id": "web", "action": "redirect", "redirector": "inspector", "ports": "8080-8081" },
    { "id": "web-dlp", "action": "redirect", "redirector": "dlp", "ports": "8080" },
    { "id": "echo-vendor", "action": "redirect", "redirector": "vendor-x", "ports": "7007" },
    { "id": "echo-inspect", "action": "redirect", "redirector": "inspector", "ports": "7007" },
    { "id": "dns", "action": "redirect", "redirector": "inspector", "protocol": "udp", "ports": "53",
      "idle_timeout": 2 }
  ]
})";

[[noreturn]] void fail(const std::string& what, int error)
{
    throw std::runtime_error(what + ": " + std::strerror(error));
}

// A cgroup control file: it exists already; never create, truncate or follow anything there.
void writeControl(const std::string& path, const std::string& text)
{
    int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        fail("open " + path, errno);
    ssize_t n = ::write(fd, text.data(), text.size());
    int error = n < 0 ? errno : EIO;
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size()))
        fail("write " + path, error);
}

// A file of the demo web root: created 0600, never through a link (the same helper as reports).
void writeNew(const std::string& path, const std::string& text)
{
    std::string error;
    if (!engine::writeWholeFile(path, [&](std::ostream& out) { return bool(out << text); }, &error))
        throw std::runtime_error(error);
}

// A network namespace with loopback up, kept alive by the returned descriptor.
int makeNetns()
{
    int fd = -1, error = 0;
    std::thread t([&] {
        if (::unshare(CLONE_NEWNET) != 0) {
            error = errno;
            return;
        }
        int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        ::ioctl(s, SIOCGIFFLAGS, &ifr);
        ifr.ifr_flags |= IFF_UP;
        if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            error = errno;
        ::close(s);
        fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            error = errno;
    });
    t.join();
    if (error)
        fail("create the demo network namespace", error);
    return fd;
}

int connectTo(int family, uint16_t port)
{
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = 0;
    sockaddr_storage ss = engine::loopbackAddress(family, port, &len);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// One DNS query for `name` (A record) to the demo's responder; waits up to a second for the answer.
void dnsQuery(const std::string& name, uint16_t id)
{
    std::string q = {static_cast<char>(id >> 8), static_cast<char>(id & 0xff), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    for (size_t start = 0; start <= name.size();) {
        size_t dot = std::min(name.find('.', start), name.size());
        q += static_cast<char>(dot - start);
        q += name.substr(start, dot - start);
        start = dot + 1;
    }
    q += std::string("\0\0\1\0\1", 5);  // root label, type A, class IN
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = 0;
    sockaddr_storage to = engine::loopbackAddress(AF_INET, kDnsPort, &len);
    if (fd < 0)
        return;
    if (::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), len) == static_cast<ssize_t>(q.size())) {
        pollfd p{fd, POLLIN, 0};
        char buf[512];
        if (::poll(&p, 1, 1000) == 1)
            ::recv(fd, buf, sizeof(buf), 0);
    }
    ::close(fd);
}

// In a fresh child: the demo's namespace, no blocked signals (the headless loop blocks
// SIGINT/SIGTERM and exec would keep that), and death with the console.
void childSetup(int netnsFd)
{
    ::setns(netnsFd, CLONE_NEWNET);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
}

// Waits for `pid` until `deadline`, then kills it (SIGKILL) and waits for that.
void reapBy(pid_t pid, std::chrono::steady_clock::time_point deadline)
{
    while (::waitpid(pid, nullptr, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

// Set by SIGTERM in the traffic process: finish the exchange under way, then end.
volatile sig_atomic_t trafficStop = 0;

void onTrafficStop(int)
{
    trafficStop = 1;
}

std::string selfDir()
{
    return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

}  // namespace

DemoSandbox::DemoSandbox()
{
    instance_ = "demo-" + std::to_string(::getpid());
    netnsFd_ = makeNetns();
    try {
        setUp();
    } catch (...) {
        tearDown();  // the destructor does not run for an object whose constructor threw
        throw;
    }
}

void DemoSandbox::setUp()
{
    std::string root = Callout::cgroup2Root();
    // Demo cgroups left by a console that was killed: empty ones go (rmdir fails on busy ones).
    std::error_code ec;
    for (auto& entry : std::filesystem::directory_iterator(root, ec))
        if (entry.path().filename().string().rfind("redirect-demo-", 0) == 0)
            ::rmdir(entry.path().c_str());
    originalCgroup_ = cgroup2::ofProcess(0, root);
    cgroup_ = root + "/redirect-demo-" + std::to_string(::getpid());
    if (::mkdir(cgroup_.c_str(), 0755) != 0 && errno != EEXIST)
        fail("create " + cgroup_, errno);
    // This process joins the cgroup: the relay's sockets must be seen by the callout too.
    writeControl(cgroup_ + "/cgroup.procs", std::to_string(::getpid()));

    char tmpl[] = "/tmp/redirect-demo-XXXXXX";
    if (!::mkdtemp(tmpl))
        fail("create the demo web root", errno);
    webRoot_ = tmpl;
    writeNew(webRoot_ + "/index.html", "<html><body><h1>Redirect Console demo</h1></body></html>\n");
    std::string blob(256 * 1024, 'x');
    std::mt19937 rng(7);
    for (char& c : blob)
        c = static_cast<char>('a' + rng() % 26);
    writeNew(webRoot_ + "/data.bin", blob);

    spawn({"python3", "-m", "http.server", std::to_string(kHttpPort), "--bind", "::", "--directory", webRoot_},
          nullptr);
    echo_ = std::thread([this] { echoServer(); });
    // A process of its own, like the traffic: a reply sent from the engine's process would count
    // as the redirector's own send without records (records repair flags it), not a server's.
    pid_t dns = ::fork();
    if (dns < 0)
        fail("fork the DNS responder", errno);
    if (dns == 0) {
        childSetup(netnsFd_);
        ::close_range(3, ~0U, 0);
        ::prctl(PR_SET_NAME, "demo-dns");
        dnsServer();
        ::_exit(1);  // it serves until SIGTERM; returning means it could not start
    }
    children_.push_back(dns);
    int out = -1;
    spawn({selfDir() + "/redirect-sdk-proxy", std::to_string(kVendorPort)}, &out);
    // Wait (bounded) for the servers: the external proxy's owner is looked up when rules apply.
    bool ready = false;
    std::thread probe([&] {
        ::setns(netnsFd_, CLONE_NEWNET);
        for (int i = 0; i < 100 && !ready; ++i) {
            int a = connectTo(AF_INET, kHttpPort), b = connectTo(AF_INET, kVendorPort);
            ready = a >= 0 && b >= 0;
            for (int fd : {a, b})
                if (fd >= 0)
                    ::close(fd);
            if (!ready)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    });
    probe.join();
    if (out >= 0)
        ::close(out);
    if (!ready)
        throw std::runtime_error("demo servers did not start (is python3 installed?)");
    spdlog::info("demo sandbox: cgroup {}, network namespace with HTTP :{}, echo :{}, DNS (UDP) :{}, vendor-x proxy :{}",
                 cgroup_, kHttpPort, kEchoPort, kDnsPort, kVendorPort);
}

DemoSandbox::~DemoSandbox()
{
    tearDown();
}

void DemoSandbox::tearDown()
{
    stopTraffic();
    stopping_ = true;
    if (echoFd_ >= 0)
        ::shutdown(echoFd_, SHUT_RDWR);
    if (echo_.joinable())
        echo_.join();
    for (int pid : children_)
        ::kill(pid, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (int pid : children_)
        reapBy(pid, deadline);
    // Leave the cgroup so it can go; our children are gone with it.
    if (!cgroup_.empty()) {
        try {
            writeControl(originalCgroup_ + "/cgroup.procs", std::to_string(::getpid()));
        } catch (const std::exception&) {
        }
        ::rmdir(cgroup_.c_str());
    }
    std::error_code ec;
    std::filesystem::remove_all(webRoot_, ec);
    if (netnsFd_ >= 0)
        ::close(netnsFd_);
    netnsFd_ = -1;
}

engine::RuleSet DemoSandbox::rules() const
{
    engine::RulesResult r = engine::parseRules(kDemoRules);
    if (!r.ok())
        throw std::runtime_error("demo rules: " + r.error.str());
    return r.rules;
}

int DemoSandbox::spawn(const std::vector<std::string>& argv, int* stdoutFd)
{
    int pipefd[2] = {-1, -1};
    if (stdoutFd && ::pipe2(pipefd, O_CLOEXEC) != 0)
        fail("pipe", errno);
    pid_t pid = ::fork();
    if (pid < 0)
        fail("fork", errno);
    if (pid == 0) {
        childSetup(netnsFd_);
        ::setenv("REDIRECT_CALLOUT_INSTANCE", instance_.c_str(), 1);
        int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(stdoutFd ? pipefd[1] : devnull, 1);
        ::dup2(devnull, 2);
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    if (stdoutFd) {
        ::close(pipefd[1]);
        *stdoutFd = pipefd[0];
    }
    children_.push_back(pid);
    return pid;
}

void DemoSandbox::echoServer()
{
    ::setns(netnsFd_, CLONE_NEWNET);
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int zero = 0, one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));  // dual-stack
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(kEchoPort);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 128) != 0) {
        spdlog::error("demo echo server: {}", std::strerror(errno));
        ::close(fd);
        return;
    }
    echoFd_ = fd;
    while (!stopping_) {
        int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0)
            break;
        // Detached: a session ends when its client closes; nothing to join.
        std::thread([c] {
            char buf[16384];
            for (ssize_t n; (n = ::read(c, buf, sizeof(buf))) > 0;)
                if (::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n)
                    break;
            ::close(c);
        }).detach();
    }
    ::close(fd);
}

// Answers each query with the query itself, flagged as a response: enough for the demo's client,
// which only waits for an answer. Runs in a child of its own (in the namespace) until SIGTERM;
// says nothing (no logging after fork) and returns only when it cannot start.
void DemoSandbox::dnsServer()
{
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = 0;
    sockaddr_storage addr = engine::loopbackAddress(AF_INET, kDnsPort, &len);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0)
        return;
    char buf[512];
    for (;;) {
        sockaddr_storage from{};
        socklen_t fromLen = sizeof(from);
        ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
        if (n < 12)
            continue;
        buf[2] = static_cast<char>(buf[2] | 0x80);  // QR: a response
        ::sendto(fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fromLen);
    }
}

void DemoSandbox::startTraffic(engine::Engine&)
{
    // A process of its own: connects from the engine's process count as a redirector's
    // own connects (records repair), never as an application's.
    trafficPid_ = ::fork();
    if (trafficPid_ == 0) {
        childSetup(netnsFd_);
        // Nothing of the service's: its API socket, relay sockets and maps stay with it.
        ::close_range(3, ~0U, 0);
        ::prctl(PR_SET_NAME, "demo-client");  // how its flows show up in the table
        struct sigaction stop {};
        stop.sa_handler = onTrafficStop;
        stop.sa_flags = SA_RESTART;  // an exchange under way reads on to its end
        ::sigaction(SIGTERM, &stop, nullptr);
        children_.clear();
        generator();
        ::_exit(0);
    }
}

// The traffic process finishes what it started (its last echo, its curls) so that the demo's
// last flows end as they would have, not cut by the stop; bounded, then it is killed.
void DemoSandbox::stopTraffic()
{
    if (trafficPid_ <= 0)
        return;
    ::kill(trafficPid_, SIGTERM);
    reapBy(trafficPid_, std::chrono::steady_clock::now() + std::chrono::seconds(5));
    trafficPid_ = -1;
}

// Runs in the traffic process until SIGTERM, then waits for its curls (they die with it:
// PR_SET_PDEATHSIG); no threads, no logging (forked from a threaded parent).
void DemoSandbox::generator()
{
    std::mt19937 rng(std::random_device{}());
    std::vector<pid_t> curls;
    for (unsigned round = 0; !trafficStop; ++round) {
        switch (round % 7) {
        case 0:
            curls.push_back(spawn({"curl", "-s", "-o", "/dev/null", "http://127.0.0.1:8080/"}, nullptr));
            break;
        case 1:
            curls.push_back(spawn({"curl", "-s", "-o", "/dev/null", "http://[::1]:8080/data.bin"}, nullptr));
            break;
        case 2:
        case 4: {
            // Echo through vendor-x and the inspector: random size, half-close, read it all back.
            int fd = connectTo(round % 4 ? AF_INET6 : AF_INET, kEchoPort);
            if (fd >= 0) {
                std::string data(1 + rng() % 200000, 'e');
                ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
                ::shutdown(fd, SHUT_WR);
                char buf[16384];
                ssize_t got = 0;
                for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
                    got += n;
                if (got != sent)
                    std::fprintf(stderr, "demo echo: sent %zd bytes, got %zd back\n", sent, got);
                ::close(fd);
            }
            break;
        }
        case 3: {
            int fd = connectTo(AF_INET, kClosedPort);  // refused upstream: the client is reset
            if (fd >= 0)
                ::close(fd);
            break;
        }
        case 5: {
            int fd = connectTo(AF_INET, kBypassPort);  // bypass rule: never redirected
            if (fd >= 0)
                ::close(fd);
            break;
        }
        case 6: {
            // DNS over UDP through the inspector: a flow per socket, ended idle after 2 s.
            static const char* const names[] = {"example.org", "updates.example.com", "mail.example.net"};
            dnsQuery(names[round / 7 % 3], static_cast<uint16_t>(rng()));
            break;
        }
        }
        for (auto it = curls.begin(); it != curls.end();) {
            if (::waitpid(*it, nullptr, WNOHANG) == *it) {
                children_.erase(std::remove(children_.begin(), children_.end(), *it), children_.end());
                it = curls.erase(it);
            } else {
                ++it;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 200));
    }
    for (pid_t pid : curls)
        ::waitpid(pid, nullptr, 0);
}

}  // namespace redirect::app
