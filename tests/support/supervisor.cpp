#include "supervisor.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "callout_loader.h"
#include "callout_paths.h"

namespace redirect::test {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Generous: a loaded machine takes a while to tear down sockets and BPF links.
constexpr auto kChildGrace = std::chrono::seconds(10);
constexpr auto kDrainBound = std::chrono::seconds(10);

std::string errnoText(const std::string& what, int error)
{
    return what + ": " + std::strerror(error);
}

// Pids in one cgroup directory (not its children).
std::vector<pid_t> procsOf(const fs::path& cgroup)
{
    std::vector<pid_t> pids;
    std::ifstream in(cgroup / "cgroup.procs");
    for (pid_t pid; in >> pid;)
        pids.push_back(pid);
    return pids;
}

// Every cgroup directory of the tree, parents before children.
std::vector<fs::path> cgroupTree(const fs::path& root)
{
    std::vector<fs::path> all{root};
    for (size_t i = 0; i < all.size(); ++i) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(all[i], ec))
            if (entry.is_directory(ec))
                all.push_back(entry.path());
    }
    return all;
}

size_t countProcs(const fs::path& root)
{
    size_t n = 0;
    for (const auto& cgroup : cgroupTree(root))
        n += procsOf(cgroup).size();
    return n;
}

bool populated(const fs::path& cgroup)
{
    std::ifstream in(cgroup / "cgroup.events");
    std::string key;
    int value = 0;
    while (in >> key >> value)
        if (key == "populated")
            return value != 0;
    return countProcs(cgroup) != 0;  // no cgroup.events: go by the pids
}

// Orphans of the test are reparented to us (child subreaper): reap them so they go.
void reapAny(pid_t test, int* testStatus, bool* testDone)
{
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(-1, &status, WNOHANG);
        if (r <= 0)
            return;
        if (r == test) {
            *testStatus = status;
            *testDone = true;
        }
    }
}

// Our children now: the test's orphans (we are their subreaper) once the test is gone.
std::vector<pid_t> childrenOfSelf()
{
    std::vector<pid_t> pids;
    std::ifstream in("/proc/self/task/" + std::to_string(::getpid()) + "/children");
    for (pid_t pid; in >> pid;)
        pids.push_back(pid);
    return pids;
}

// Processes the test moved out of its cgroup end up as our orphans when their parents
// die: SIGKILL every child until none is left (their own children come to us in turn).
size_t killOrphans(pid_t test, int* testStatus, bool* testDone)
{
    std::vector<pid_t> seen;
    auto deadline = Clock::now() + kDrainBound;
    for (;;) {
        reapAny(test, testStatus, testDone);
        std::vector<pid_t> now = childrenOfSelf();
        if (now.empty() || Clock::now() > deadline)
            return seen.size();
        for (pid_t pid : now) {
            ::kill(pid, SIGKILL);
            if (std::find(seen.begin(), seen.end(), pid) == seen.end())
                seen.push_back(pid);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

// cgroup.kill (kernel 5.14+) kills the whole subtree at once, including processes
// forking right now; before it, SIGKILL each pid until none is left.
void killTree(const fs::path& root, pid_t test, int* testStatus, bool* testDone)
{
    int fd = ::open((root / "cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        bool ok = ::write(fd, "1", 1) == 1;
        ::close(fd);
        if (ok)
            return;
    }
    auto deadline = Clock::now() + kDrainBound;
    while (populated(root) && Clock::now() < deadline) {
        for (const auto& cgroup : cgroupTree(root))
            for (pid_t pid : procsOf(cgroup))
                ::kill(pid, SIGKILL);
        reapAny(test, testStatus, testDone);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

// Children before parents; a cgroup directory goes with rmdir (its files are virtual).
std::string removeTree(const fs::path& root)
{
    auto all = cgroupTree(root);
    std::string error;
    for (auto it = all.rbegin(); it != all.rend(); ++it)
        if (::rmdir(it->c_str()) != 0 && errno != ENOENT && error.empty())
            error = errnoText("rmdir " + it->string(), errno);
    return error;
}

// Pins and locks of instances named after this test ("test-<pid>", "test-<pid>-host"...):
// a crashed test never ran the destructors that remove them.
std::string removeInstances(const std::string& instance)
{
    auto ours = [&](const std::string& name) { return name == instance || name.rfind(instance + "-", 0) == 0; };
    std::string error;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(CALLOUT_BPFFS_DIR, ec))
        if (ours(entry.path().filename().string())) {
            std::error_code rc;
            fs::remove_all(entry.path(), rc);
            // ENOENT: another process's Callout swept it as stale first.
            if (rc && rc != std::errc::no_such_file_or_directory && error.empty())
                error = "remove " + entry.path().string() + ": " + rc.message();
        }
    for (const auto& entry : fs::directory_iterator(CALLOUT_RUN_DIR, ec)) {
        std::string name = entry.path().filename().string();
        if (name.size() > 5 && name.ends_with(".lock") && ours(name.substr(0, name.size() - 5)) &&
            ::unlink(entry.path().c_str()) != 0 && errno != ENOENT && error.empty())
            error = errnoText("unlink " + entry.path().string(), errno);
    }
    return error;
}

[[noreturn]] void supervise(pid_t test, const SupervisedTest& made, const sigset_t& waitSet)
{
    const char* name = program_invocation_short_name;
    int status = 0;
    bool done = false;
    int forwarded = 0;
    Clock::time_point graceEnd{};
    while (!done) {
        timespec tick{0, 100 * 1000 * 1000};
        int sig = ::sigtimedwait(&waitSet, nullptr, forwarded ? &tick : nullptr);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            // The test's own handler says which function was running; then it dies.
            if (!forwarded)
                graceEnd = Clock::now() + kChildGrace;
            forwarded = sig;
            ::kill(test, sig);
        }
        reapAny(test, &status, &done);
        if (!done && forwarded && Clock::now() > graceEnd) {
            killTree(made.cgroup, test, &status, &done);
            ::kill(test, SIGKILL);  // in case it died before joining its cgroup
            graceEnd = Clock::now() + kChildGrace;
        }
    }

    size_t left = countProcs(made.cgroup);
    killTree(made.cgroup, test, &status, &done);
    auto deadline = Clock::now() + kDrainBound;
    while (populated(made.cgroup) && Clock::now() < deadline) {
        reapAny(test, &status, &done);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    size_t escaped = killOrphans(test, &status, &done);
    if (left)
        std::fprintf(stderr, "%s: killed %zu process(es) the test left in %s\n", name, left, made.cgroup.c_str());
    if (escaped)
        std::fprintf(stderr, "%s: killed %zu process(es) the test left outside its cgroup\n", name, escaped);

    std::vector<std::string> errors;
    if (auto e = removeTree(made.cgroup); !e.empty())
        errors.push_back(e);
    std::error_code ec;
    fs::remove_all(made.tmpDir, ec);
    if (ec)
        errors.push_back("remove " + made.tmpDir + ": " + ec.message());
    if (auto e = removeInstances(made.instance); !e.empty())
        errors.push_back(e);

    int code = 0;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char* abbrev = ::sigabbrev_np(sig);
        std::fprintf(stderr, "FAIL: %s: the test process (pid %d) was killed by signal %d (SIG%s, %s)%s\n", name,
                     static_cast<int>(test), sig, abbrev ? abbrev : "?", ::strsignal(sig),
                     WCOREDUMP(status) ? ", core dumped" : "");
        code = 128 + sig;
    } else {
        code = WEXITSTATUS(status);
    }
    for (const auto& e : errors)
        std::fprintf(stderr, "FAIL: %s: cleanup after the test: %s\n", name, e.c_str());
    if (code == 0 && !errors.empty())
        code = 1;
    std::fflush(stderr);
    ::_exit(code);
}

}  // namespace

SupervisedTest superviseTest()
{
    if (::geteuid() != 0)
        throw std::runtime_error("kernel tests need root (CI runs them as root)");
    const pid_t self = ::getpid();
    SupervisedTest made;
    made.instance = "test-" + std::to_string(self);
    made.cgroup = Callout::cgroup2Root() + "/redirect-test-" + std::to_string(self);
    // EEXIST: left by a SIGKILLed supervisor that had our pid; we clean it up at the end.
    if (::mkdir(made.cgroup.c_str(), 0755) != 0 && errno != EEXIST)
        throw std::runtime_error(errnoText("mkdir " + made.cgroup, errno));

    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/redirect-test-" + std::to_string(self) + ".XXXXXX";
    if (!::mkdtemp(pattern.data())) {
        int e = errno;
        ::rmdir(made.cgroup.c_str());
        throw std::runtime_error(errnoText("mkdtemp " + pattern, e));
    }
    made.tmpDir = pattern;
    // Like /tmp: tests that drop to nobody still reach their own temp files.
    ::chmod(made.tmpDir.c_str(), 01777);

    // Blocked before fork so that no signal slips between fork and sigtimedwait.
    sigset_t waitSet, old;
    sigemptyset(&waitSet);
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP})
        sigaddset(&waitSet, sig);
    ::sigprocmask(SIG_BLOCK, &waitSet, &old);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    std::fflush(nullptr);
    pid_t test = ::fork();
    if (test < 0) {
        int e = errno;
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        ::rmdir(made.cgroup.c_str());
        ::rmdir(made.tmpDir.c_str());
        throw std::runtime_error(errnoText("fork the test process", e));
    }
    if (test > 0)
        supervise(test, made, waitSet);

    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != self)  // the supervisor died before PDEATHSIG was armed
        ::_exit(128 + SIGKILL);
    ::setenv("TMPDIR", made.tmpDir.c_str(), 1);
    return made;
}

}  // namespace redirect::test
