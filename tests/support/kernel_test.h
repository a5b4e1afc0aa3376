// Shared pieces of the kernel tests: sandbox main, a loaded callout with its
// event log, and real servers on loopback.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <QCoreApplication>
#include <QtTest>

#include "callout_loader.h"
#include "sandbox.h"

namespace redirect::test {

/// The sandbox of this test process (entered in main, before any thread).
Sandbox& sandbox();
/// Instance name unique to this test process; also exported as $REDIRECT_CALLOUT_INSTANCE.
const std::string& instanceName();
/// Start the supervisor (supervisor.h), then enter the sandbox in the supervised
/// child; prints why not and returns false on failure. Only the child returns.
bool enterSandbox();

/// A callout loaded into the sandbox cgroup, recording every event it emits.
class LoadedCallout {
public:
    LoadedCallout();
    Callout& operator*() { return *callout_; }
    Callout* operator->() { return callout_.get(); }
    /// Drain queued events into the log.
    void drain();
    std::vector<callout_event> events();
    /// Wait (bounded) until an event satisfies `pred`; drains as it waits.
    bool waitForEvent(const std::function<bool(const callout_event&)>& pred, int timeoutMs = 3000);
    void clearEvents();

private:
    std::unique_ptr<Callout> callout_;
    std::vector<callout_event> events_;
};

/// In-process TCP server on loopback: answers each connection with `reply`
/// after reading the request up to `requestBytes` (0: reply at once), then closes.
class TcpServer {
public:
    TcpServer(int family, std::string reply, size_t requestBytes = 0);
    ~TcpServer();
    uint16_t port() const { return port_; }
    /// Peer addresses seen by accept(), as "addr:port" text.
    std::vector<std::string> peers();

private:
    int fd_ = -1;
    uint16_t port_ = 0;
    std::string reply_;
    size_t requestBytes_;
    std::thread thread_;
    std::vector<std::thread> workers_;  // one per connection
    std::mutex mutex_;
    std::vector<std::string> peers_;
    int wake_[2] = {-1, -1};
};

/// A real external process (the HTTP server, a test proxy, curl...). It gets
/// SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG follows the
/// thread), so start it from the thread that outlives it.
/// Another user to run a child as: no supplementary groups, working directory "/".
struct RunAs {
    uid_t uid = 0;
    gid_t gid = 0;
};

class Child {
public:
    /// Start argv (as `as`, when given; exit 126 when the switch fails); stdout is captured line by line.
    explicit Child(const std::vector<std::string>& argv, std::optional<RunAs> as = std::nullopt);
    ~Child();
    int pid() const { return pid_; }
    /// Read one line of stdout (bounded wait); empty on EOF or timeout.
    std::string readLine(int timeoutMs = 5000);
    /// Wait for exit (bounded); returns the exit status as waitpid gives it, or -1 on timeout.
    int wait(int timeoutMs = 10000);
    void kill(int signal);
    /// Stdout reached end of file.
    bool eof() const { return eof_; }

private:
    bool eof_ = false;
    int pid_ = -1;
    int out_ = -1;
    std::string buffer_;
    bool reaped_ = false;
};

/// CPUs this process may run on, ascending; never empty (the current one if unknown).
std::vector<int> allowedCpus();
/// Runs `work` on a thread pinned to `cpu` and returns its result; false (not run) if the
/// pin fails. Socket cookies come from per-CPU batches: pinning makes their disorder certain.
bool runOnCpu(int cpu, const std::function<bool()>& work);

/// Run a command to completion (bounded); returns {exit code, stdout}.
std::pair<int, std::string> run(const std::vector<std::string>& argv, int timeoutMs = 20000,
                                std::optional<RunAs> as = std::nullopt);

/// One "ping" to a TcpServer through whatever the callout decides: answered at all, and whether the
/// server saw this client's own address (direct) rather than a redirector's.
struct Exchange {
    bool answered = false;
    bool direct = false;
};
Exchange exchange(TcpServer& server, uint16_t port, int answerTimeoutMs = 3000);

/// Text of a sockaddr ("127.0.0.1:80", "[::1]:80").
std::string addressText(const sockaddr_storage& ss);
/// Original destination of an event as text.
std::string eventDestination(const callout_event& e);

/// Path of a binary built next to the tests.
std::string binaryPath(const std::string& name);

}  // namespace redirect::test

/// main() for kernel tests: enter the sandbox first (single thread), then run the Qt test.
#define REDIRECT_KERNEL_TEST_MAIN(TestObject)                                    \
    int main(int argc, char** argv)                                              \
    {                                                                            \
        if (!redirect::test::enterSandbox())                                     \
            return 1;                                                            \
        QCoreApplication app(argc, argv);                                        \
        TestObject tc;                                                           \
        QTEST_SET_MAIN_SOURCE_PATH                                               \
        return QTest::qExec(&tc, argc, argv);                                    \
    }
