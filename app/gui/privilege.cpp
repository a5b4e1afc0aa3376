#include "privilege.h"

#include <cstdio>

#include <pwd.h>
#include <unistd.h>

#include <QCoreApplication>
#include <QDialogButtonBox>
#include <QFile>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QIcon>
#include <QLabel>
#include <QProcess>
#include <QPushButton>
#include <QStyle>
#include <QTimer>
#include <QVBoxLayout>

#include "command_line.h"

// Resources of a static library must be registered explicitly, outside any namespace.
static void initRedirectResources()
{
    Q_INIT_RESOURCE(resources);
}

namespace redirect::gui {

namespace {

struct Capability {
    int bit;
    const char* name;
};

// linux/capability.h, in the order the message names them.
constexpr Capability kNeeded[] = {{39, "CAP_BPF"}, {12, "CAP_NET_ADMIN"}, {21, "CAP_SYS_ADMIN"}};

/// The effective capability set from /proc/self/status (0 when it cannot be read).
quint64 effectiveCapabilities()
{
    QFile status(QStringLiteral("/proc/self/status"));
    if (!status.open(QIODevice::ReadOnly | QIODevice::Text))
        return 0;
    // readAll: a /proc file has size 0, so QFile::atEnd() would say "end" before reading.
    const QList<QByteArray> lines = status.readAll().split('\n');
    for (const QByteArray& line : lines) {
        if (line.startsWith("CapEff:")) {
            bool ok = false;
            const quint64 caps = line.mid(7).trimmed().toULongLong(&ok, 16);
            return ok ? caps : 0;
        }
    }
    return 0;
}

QString joinedNames(const QStringList& names)
{
    if (names.size() <= 1)
        return names.join(QString());
    return names.mid(0, names.size() - 1).join(QStringLiteral(", ")) + QStringLiteral(" and ") + names.last();
}

QString buildMessage(const Privileges& p, const QStringList& dropped)
{
    QStringList needed;
    for (const Capability& c : kNeeded)
        needed << QString::fromLatin1(c.name);
    const QStringList missing = p.missingCapabilities.isEmpty() ? needed : p.missingCapabilities;
    return QStringLiteral(
               "<p><b>Redirect Console must run as administrator.</b></p>"
               "<p>It loads the kernel callout, an eBPF program on the connect hooks that hands "
               "connections to the redirectors. Only root, or a process with %1, may load it.</p>"
               "<p>It is running as %2, which is not root and lacks %3.</p>"
               "<p><i>Relaunch as administrator</i> asks for an administrator password (pkexec) "
               "and starts the console again; <i>Quit</i> starts nothing.</p>%4")
        .arg(joinedNames(needed), p.user.toHtmlEscaped(), joinedNames(missing),
             dropped.isEmpty()
                 ? QString()
                 : QStringLiteral("<p>The relaunched console gets no file paths or other values from this "
                                  "command line; these are left out: <code>%1</code>. Choose rules and "
                                  "output files in its window.</p>")
                       .arg(dropped.join(QLatin1Char(' ')).toHtmlEscaped()));
}

// Value-less flags that choose nothing root would read, write or attach to.
const QStringList& relaunchSafeFlags()
{
    static const QStringList flags{QStringLiteral("--demo")};
    return flags;
}

}  // namespace

Privileges currentPrivileges()
{
    Privileges p;
    p.administrator = app::isAdministrator();
    const uid_t uid = geteuid();
    const passwd* pw = getpwuid(uid);
    p.user = QStringLiteral("%1 (uid %2)").arg(pw ? QString::fromLocal8Bit(pw->pw_name) : QStringLiteral("?")).arg(uid);
    p.missingCapabilities = missingCapabilities(effectiveCapabilities());
    return p;
}

QStringList missingCapabilities(quint64 effectiveSet)
{
    QStringList missing;
    for (const Capability& c : kNeeded)
        if (!(effectiveSet & (quint64{1} << c.bit)))
            missing << QString::fromLatin1(c.name);
    return missing;
}

PrivilegeDialog::PrivilegeDialog(const Privileges& privileges, const QStringList& droppedArguments, QWidget* parent)
    : QDialog(parent)
{
    initRedirectResources();
    setObjectName(QStringLiteral("privilegeDialog"));
    setWindowTitle(QStringLiteral("Redirect Console: administrator rights needed"));
    setWindowIcon(QIcon(QStringLiteral(":/icons/redirect-console.svg")));
    setModal(true);

    auto* icon = new QLabel(this);
    const int size = style()->pixelMetric(QStyle::PM_MessageBoxIconSize, nullptr, this);
    icon->setPixmap(style()->standardIcon(QStyle::SP_MessageBoxWarning, nullptr, this).pixmap(size, size));
    icon->setAlignment(Qt::AlignTop);

    message_ = new QLabel(buildMessage(privileges, droppedArguments), this);
    message_->setObjectName(QStringLiteral("privilegeMessage"));
    message_->setTextFormat(Qt::RichText);
    message_->setWordWrap(true);
    message_->setMinimumWidth(420);

    auto* buttons = new QDialogButtonBox(this);
    relaunch_ = buttons->addButton(QStringLiteral("Relaunch as administrator"), QDialogButtonBox::AcceptRole);
    relaunch_->setObjectName(QStringLiteral("relaunchButton"));
    relaunch_->setDefault(true);
    relaunch_->setAutoDefault(true);
    quit_ = buttons->addButton(QStringLiteral("Quit"), QDialogButtonBox::RejectRole);
    quit_->setObjectName(QStringLiteral("quitButton"));
    quit_->setAutoDefault(false);
    connect(relaunch_, &QPushButton::clicked, this, [this] {
        choice_ = PrivilegeChoice::Relaunch;
        accept();
    });
    connect(quit_, &QPushButton::clicked, this, [this] {
        choice_ = PrivilegeChoice::Quit;
        reject();
    });
    // Escape and the window's close button mean Quit.
    connect(this, &QDialog::rejected, this, [this] { choice_ = PrivilegeChoice::Quit; });

    auto* row = new QHBoxLayout;
    row->addWidget(icon);
    row->addWidget(message_, 1);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(row);
    layout->addWidget(buttons);
}

QString PrivilegeDialog::message() const
{
    return message_->text();
}

void PrivilegeDialog::showEvent(QShowEvent* event)
{
    QDialog::showEvent(event);
    if (autoAnswered_)
        return;
    const QByteArray answer = qgetenv("REDIRECT_PRIVILEGE_AUTOANSWER");
    QPushButton* button = answer == "relaunch" ? relaunch_ : answer == "quit" ? quit_ : nullptr;
    if (!button)
        return;
    autoAnswered_ = true;
    QTimer::singleShot(0, button, &QPushButton::click);
}

QString relaunchExecutable()
{
    return QFileInfo(QCoreApplication::applicationFilePath()).absoluteFilePath();
}

RelaunchArguments relaunchArguments(const QStringList& args)
{
    RelaunchArguments split;
    for (qsizetype i = 0; i < args.size(); ++i) {
        if (relaunchSafeFlags().contains(args[i])) {
            split.kept << args[i];
        } else {
            split.dropped << args[i];
            // The value goes with its option, even when it looks like a safe flag.
            if (app::optionTakesValue(args[i].toStdString()) && i + 1 < args.size())
                split.dropped << args[++i];
        }
    }
    return split;
}

QStringList relaunchCommand(const QStringList& args)
{
    return QStringList{QStringLiteral("pkexec"), relaunchExecutable()} + relaunchArguments(args).kept;
}

bool launchDetached(const QStringList& command)
{
    if (command.isEmpty())
        return false;
    if (qgetenv("REDIRECT_PRIVILEGE_DRYRUN") == "1") {
        std::printf("RELAUNCH %s\n", command.join(QLatin1Char(' ')).toLocal8Bit().constData());
        std::fflush(stdout);
        return true;
    }
    const bool started = QProcess::startDetached(command.first(), command.mid(1));
    if (!started)
        std::fprintf(stderr, "redirect-console: could not start %s\n", qPrintable(command.first()));
    return started;
}

bool ensureAdministrator(const QStringList& args, const Launcher& launcher)
{
    return ensureAdministrator(args, launcher, currentPrivileges());
}

bool ensureAdministrator(const QStringList& args, const Launcher& launcher, const Privileges& privileges)
{
    if (privileges.administrator)
        return true;
    PrivilegeDialog dialog(privileges, relaunchArguments(args).dropped);
    dialog.exec();
    if (dialog.choice() == PrivilegeChoice::Relaunch && launcher)
        launcher(relaunchCommand(args));
    return false;
}

}  // namespace redirect::gui
