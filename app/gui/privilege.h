// What the console may do as its user, and the commands it has others run with more rights: the
// demo's private service (directly when administrator, else through pkexec) and the system
// service (systemctl, which asks polkit). The console itself never runs as root.
#pragma once

#include <functional>

#include <QString>
#include <QStringList>

#include "command_line.h"

namespace redirect::gui {

/// What the process has.
struct Privileges {
    bool administrator = false;      ///< root, or all three capabilities (app::isAdministrator())
    QString user;                    ///< "alice (uid 1000)"
    QStringList missingCapabilities; ///< of CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, not in the effective set
};

/// Which of CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN (in that order) an effective set lacks.
QStringList missingCapabilities(quint64 effectiveSet);

/// The privileges of this process.
Privileges currentPrivileges();

/// redirect-consoled next to this executable (build/bin, or the install's bin), absolute. Installed,
/// it is the path the polkit action org.redirectconsole.console.demo names in exec.path.
QString serviceExecutable();

/// The command that starts this console's private demo service (`--demo --for-console`: its
/// socket is named by this console's pid, this console's user may change it, it ends with it).
/// Administrator: the service directly, with cl's --rules and --workers. Otherwise
/// `pkexec <serviceExecutable()> --demo --for-console` and nothing else: polkit authorizes the
/// program, not its arguments, so a path would let the user choose what root reads. What is left
/// out of cl (--rules, --workers, --cgroup with their values) goes to *dropped, in that order.
QStringList demoServiceCommand(const app::CommandLine& cl, bool administrator, QStringList* dropped);

/// One line for the log saying which arguments demoServiceCommand() left out and why; "" for none.
QString droppedArgumentsWarning(const QStringList& dropped, bool administrator);

/// `systemctl start redirect-console.service`: as a user, systemd asks polkit
/// (org.freedesktop.systemd1.manage-units), whose agent asks for an administrator password.
QStringList startServiceCommand();

/// Starts a command; returns whether it started.
using Launcher = std::function<bool(const QStringList& command)>;

/// The default launcher: starts the command and returns without waiting for it; when it ends
/// badly, its exit code and stderr go to the log (spdlog). Needs a QCoreApplication (it owns the
/// process until it ends). With REDIRECT_PRIVILEGE_DRYRUN=1 (tests only) it prints one line
/// "RUN <command joined by spaces>" on stdout instead, starts nothing and returns true.
bool launchDetached(const QStringList& command);

/// Whether REDIRECT_PRIVILEGE_DRYRUN=1 (tests only): commands are printed, not run.
bool dryRun();

}  // namespace redirect::gui
