#include "demo_service.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QThread>

#include <spdlog/spdlog.h>

#include "callout_paths.h"
#include "privilege.h"

extern char** environ;

namespace redirect::gui {

namespace {

constexpr int kDirectReadyMs = 30000;
// Through pkexec the wait includes the user typing the administrator password.
constexpr int kPkexecReadyMs = 300000;
constexpr int kStopGraceMs = 15000;

// SIGINT and SIGTERM stay blocked until the event loop reads them from the signalfd; one pending
// now means the user asked to stop while the console waited for its demo.
bool stopRequested()
{
    sigset_t pending;
    sigemptyset(&pending);
    return ::sigpending(&pending) == 0 && (sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1);
}

}  // namespace

DemoService::DemoService(const QStringList& command, const QString& socket, int readyWithinMs)
    : command_(command), socket_(socket), readyWithinMs_(readyWithinMs)
{
    if (command_.isEmpty()) {
        spawnError_ = EINVAL;
        return;
    }
    std::vector<QByteArray> args;
    for (const QString& a : command_)
        args.push_back(a.toLocal8Bit());
    std::vector<char*> argv;
    for (QByteArray& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    // Not QProcess: its destructor kills and waits 30 s, and a service pkexec made root cannot be
    // signalled by this user; it has to be left to end with this process.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);  // main() blocked SIGINT/SIGTERM; a mask survives exec
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    spawnError_ = ::posix_spawnp(&pid_, argv[0], nullptr, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    if (spawnError_ != 0)
        pid_ = -1;
}

DemoService::~DemoService()
{
    int status = 0;
    if (pid_ <= 0 || ended(&status))
        return;
    if (::kill(pid_, SIGTERM) != 0) {
        spdlog::info("the demo service (pid {}) runs as root and stops when the console ends", pid_);
        return;
    }
    QElapsedTimer timer;
    timer.start();
    while (!ended(&status)) {
        if (timer.elapsed() > kStopGraceMs) {
            spdlog::warn("the demo service (pid {}) did not stop within {} s; killed", pid_, kStopGraceMs / 1000);
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            return;
        }
        QThread::msleep(50);
    }
}

bool DemoService::throughPkexec() const
{
    return !command_.isEmpty() && QFileInfo(command_.first()).fileName() == QLatin1String("pkexec");
}

bool DemoService::ended(int* status)
{
    // Never a pid <= 0 to waitpid() or kill(): those mean "any child" and "every process".
    if (reaped_ || pid_ <= 0)
        return true;
    if (::waitpid(pid_, status, WNOHANG) != pid_)
        return false;
    reaped_ = true;
    return true;
}

bool DemoService::waitReady(QString* why, int* exitCode)
{
    const bool pkexec = throughPkexec();
    if (spawnError_ != 0) {
        if (pkexec && spawnError_ == ENOENT)
            *why = QStringLiteral("pkexec is not installed: the demo's service needs administrator rights, which the "
                                  "console asks for through pkexec (Debian: apt install pkexec); nothing was started");
        else
            *why = QStringLiteral("cannot run %1: %2; nothing was started")
                       .arg(command_.value(0), QString::fromLocal8Bit(std::strerror(spawnError_)));
        *exitCode = pkexec ? app::ExitNotAdministrator : app::ExitRuntimeError;
        return false;
    }
    QElapsedTimer timer;
    timer.start();
    for (;;) {
        if (QFileInfo::exists(socket_))
            return true;
        int status = 0;
        if (ended(&status)) {
            const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            *exitCode = app::ExitRuntimeError;
            if (pkexec && code == 126) {
                *why = QStringLiteral("the administrator password was not given (pkexec exit 126: the "
                                      "authentication dialog was dismissed); the demo was not started");
                *exitCode = app::ExitNotAdministrator;
            } else if (pkexec && code == 127) {
                *why = QStringLiteral("pkexec got no authorization to start the demo's service (exit 127: not "
                                      "authorized, or no polkit daemon or authentication agent; its own message "
                                      "is above); the demo was not started");
                *exitCode = app::ExitNotAdministrator;
            } else if (WIFEXITED(status)) {
                *why = QStringLiteral("the demo service ended (exit %1) before it opened %2").arg(code).arg(socket_);
            } else {
                *why = QStringLiteral("the demo service was killed by signal %1 before it opened %2")
                           .arg(WTERMSIG(status))
                           .arg(socket_);
            }
            return false;
        }
        if (stopRequested()) {
            *why = QStringLiteral("stopped (SIGINT or SIGTERM) before the demo service was up");
            *exitCode = app::ExitOk;
            return false;
        }
        if (timer.elapsed() > readyWithinMs_) {
            *why = QStringLiteral("the demo service did not open %1 within %2 s").arg(socket_).arg(readyWithinMs_ / 1000);
            *exitCode = app::ExitRuntimeError;
            return false;
        }
        QThread::msleep(100);
    }
}

std::unique_ptr<DemoService> openDemo(const app::CommandLine& cl, QString* why, int* exitCode)
{
    const bool administrator = app::isAdministrator();
    QStringList dropped;
    const QStringList command = demoServiceCommand(cl, administrator, &dropped);
    const QString warning = droppedArgumentsWarning(dropped, administrator);
    if (!warning.isEmpty())
        spdlog::warn("{}", warning.toStdString());
    if (dryRun()) {
        launchDetached(command);
        why->clear();
        *exitCode = app::ExitOk;
        return nullptr;
    }
    if (!administrator)
        spdlog::info("the demo's service needs administrator rights; asking through pkexec (polkit)");
    const QString socket =
        QStringLiteral(CALLOUT_RUN_DIR "/demo-console-%1.sock").arg(QCoreApplication::applicationPid());
    auto demo = std::make_unique<DemoService>(command, socket, administrator ? kDirectReadyMs : kPkexecReadyMs);
    if (!demo->waitReady(why, exitCode))
        return nullptr;
    return demo;
}

}  // namespace redirect::gui
