// The demo's private service (redirect-consoled --demo --for-console), a child of this console,
// attached to like any node. It ends with the console (the service sets PR_SET_PDEATHSIG itself,
// after pkexec's exec would have cleared one set here).
#pragma once

#include <memory>

#include <sys/types.h>

#include <QString>
#include <QStringList>

#include "command_line.h"

namespace redirect::gui {

class DemoService {
public:
    /// Starts `command` (demoServiceCommand()) as a child, its signal mask cleared and its output
    /// the console's. `socket` is where it will listen; `readyWithinMs` bounds waitReady().
    DemoService(const QStringList& command, const QString& socket, int readyWithinMs);
    /// Stops it when this user may (SIGTERM, then SIGKILL after 15 s), so its sandbox is torn down
    /// in order. A service pkexec runs is root's to stop: it ends with this process instead.
    ~DemoService();
    DemoService(const DemoService&) = delete;
    DemoService& operator=(const DemoService&) = delete;

    /// Waits (bounded) for its socket. False with one line for the user and the exit code the
    /// console ends with: ExitNotAdministrator (3) when pkexec is missing or gave no authorization
    /// (it exits 126 when the dialog was dismissed, 127 when not authorized), ExitOk when SIGINT or
    /// SIGTERM came first, ExitRuntimeError for the rest.
    bool waitReady(QString* why, int* exitCode);

    QString socket() const { return socket_; }
    pid_t pid() const { return pid_; }

private:
    bool throughPkexec() const;
    /// Reaps the child when it has ended; then *status is its wait status.
    bool ended(int* status);

    QStringList command_;
    QString socket_;
    int readyWithinMs_;
    pid_t pid_ = -1;
    int spawnError_ = 0;   ///< errno when it could not be started
    bool reaped_ = false;
};

/// This console's demo (--demo, or "Open the demo"): logs what demoServiceCommand() leaves out and
/// why, starts it (pkexec unless administrator) and waits for its socket
/// (/run/redirect-console/demo-console-<this pid>.sock). Returns nullptr with *why and *exitCode when
/// it did not come up, nothing left running. With REDIRECT_PRIVILEGE_DRYRUN=1 (tests only) the
/// command goes to launchDetached() (it prints it) and nothing starts: nullptr, *why "", ExitOk.
std::unique_ptr<DemoService> openDemo(const app::CommandLine& cl, QString* why, int* exitCode);

}  // namespace redirect::gui
