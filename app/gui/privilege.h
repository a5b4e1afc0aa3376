// The administrator gate of the console: without root (or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN)
// it shows one dialog that offers to relaunch through pkexec or to quit, and starts nothing.
#pragma once

#include <functional>

#include <QDialog>
#include <QString>
#include <QStringList>

class QLabel;
class QPushButton;

namespace redirect::gui {

enum class PrivilegeChoice { Relaunch, Quit };

/// What the process has, for the dialog's message.
struct Privileges {
    bool administrator = false;      ///< root, or all three capabilities (app::isAdministrator())
    QString user;                    ///< "alice (uid 1000)"
    QStringList missingCapabilities; ///< of CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, not in the effective set
};

/// Which of CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN (in that order) an effective set lacks.
QStringList missingCapabilities(quint64 effectiveSet);

/// The privileges of this process.
Privileges currentPrivileges();

/// The one dialog: what is missing, why, "Relaunch as administrator" (default) or "Quit", and which
/// of the given arguments a relaunch leaves out (`droppedArguments`, see relaunchArguments()).
/// Object names: "privilegeMessage" (the QLabel), "relaunchButton", "quitButton".
/// With REDIRECT_PRIVILEGE_AUTOANSWER=relaunch|quit in the environment (tests only) it answers
/// itself once it has been shown.
class PrivilegeDialog : public QDialog {
    Q_OBJECT
public:
    explicit PrivilegeDialog(const Privileges& privileges, const QStringList& droppedArguments = {},
                             QWidget* parent = nullptr);

    PrivilegeChoice choice() const { return choice_; }
    QString message() const;
    QPushButton* relaunchButton() const { return relaunch_; }
    QPushButton* quitButton() const { return quit_; }

protected:
    void showEvent(QShowEvent* event) override;

private:
    PrivilegeChoice choice_ = PrivilegeChoice::Quit;
    QLabel* message_ = nullptr;
    QPushButton* relaunch_ = nullptr;
    QPushButton* quit_ = nullptr;
    bool autoAnswered_ = false;
};

/// The executable pkexec should run: the absolute path of this executable
/// (QCoreApplication::applicationFilePath()). Installed, it is the path the polkit action
/// org.redirectconsole.console.run names in org.freedesktop.policykit.exec.path, which is what
/// lets pkexec keep DISPLAY and XAUTHORITY (allow_gui).
QString relaunchExecutable();

/// What a relaunch passes on of `args` (the arguments after the program name) and what it drops.
struct RelaunchArguments {
    QStringList kept;     ///< flags of a fixed list that take no value (--demo), in order
    QStringList dropped;  ///< everything else, values included, in order
};

/// Splits `args` for the relaunch. The relaunched console runs as root, and polkit authorizes the
/// program, not its arguments: a path (--jsonl, --report, --rules, --cgroup...) or any free-form
/// value would let whoever started the unprivileged console choose what root writes, reads or
/// attaches to. So only value-less flags of a fixed list go through; files are chosen in the window.
RelaunchArguments relaunchArguments(const QStringList& args);

/// `pkexec <relaunchExecutable()> <relaunchArguments(args).kept...>`.
QStringList relaunchCommand(const QStringList& args);

/// Starts a command; returns whether it started.
using Launcher = std::function<bool(const QStringList& command)>;

/// The default launcher: QProcess::startDetached. With REDIRECT_PRIVILEGE_DRYRUN=1 (tests only)
/// it prints one line "RELAUNCH <command joined by spaces>" on stdout instead and returns true.
bool launchDetached(const QStringList& command);

/// True when this process is administrator (app::isAdministrator()). Otherwise shows the
/// PrivilegeDialog (modal, needs a QApplication) naming the arguments a relaunch drops; Relaunch
/// calls launcher(relaunchCommand(args)) once, Quit calls nothing; either way returns false and the
/// caller exits with ExitNotAdministrator (3) without creating anything else.
bool ensureAdministrator(const QStringList& args, const Launcher& launcher = launchDetached);

/// The same with the privileges given instead of read from this process (for tests).
bool ensureAdministrator(const QStringList& args, const Launcher& launcher, const Privileges& privileges);

}  // namespace redirect::gui
