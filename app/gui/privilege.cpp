#include "privilege.h"

#include <csignal>
#include <cstdio>

#include <pthread.h>
#include <pwd.h>
#include <unistd.h>

#include <QCoreApplication>
#include <QFile>
#include <QFileInfo>
#include <QProcess>

#include <spdlog/spdlog.h>

namespace redirect::gui {

namespace {

struct Capability {
    int bit;
    const char* name;
};

// linux/capability.h, in the order messages name them.
constexpr Capability kNeeded[] = {{39, "CAP_BPF"}, {12, "CAP_NET_ADMIN"}, {21, "CAP_SYS_ADMIN"}};

// A failing command's stderr is logged, but not without bound.
constexpr qsizetype kStderrLogged = 2000;

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

QString serviceExecutable()
{
    return QFileInfo(QCoreApplication::applicationDirPath() + QStringLiteral("/redirect-consoled")).absoluteFilePath();
}

QStringList demoServiceCommand(const app::CommandLine& cl, bool administrator, QStringList* dropped)
{
    QStringList command{serviceExecutable(), QStringLiteral("--demo"), QStringLiteral("--for-console")};
    QStringList passed;
    QStringList left;
    if (!cl.rules.empty())
        passed << QStringLiteral("--rules") << QString::fromStdString(cl.rules);
    if (cl.workers > 0)
        passed << QStringLiteral("--workers") << QString::number(cl.workers);
    // The demo makes its own cgroup: a --cgroup never applies (the parser refuses it with --demo).
    if (!cl.cgroup.empty())
        left << QStringLiteral("--cgroup") << QString::fromStdString(cl.cgroup);
    if (administrator) {
        command += passed;
    } else {
        command.prepend(QStringLiteral("pkexec"));
        left = passed + left;
    }
    if (dropped)
        *dropped = left;
    return command;
}

QString droppedArgumentsWarning(const QStringList& dropped, bool administrator)
{
    if (dropped.isEmpty())
        return {};
    const QString list = dropped.join(QLatin1Char(' '));
    if (administrator)
        return QStringLiteral("the demo service makes its own cgroup; left out: %1").arg(list);
    return QStringLiteral("the demo service runs as root through pkexec, and polkit authorizes the program, not "
                          "its arguments: a path would let whoever started the console choose what root reads, "
                          "so it gets only --demo --for-console; left out: %1 (choose rules in the window: "
                          "Rules > Import)")
        .arg(list);
}

QStringList startServiceCommand()
{
    return {QStringLiteral("systemctl"), QStringLiteral("start"), QStringLiteral("redirect-console.service")};
}

bool dryRun()
{
    return qgetenv("REDIRECT_PRIVILEGE_DRYRUN") == "1";
}

bool launchDetached(const QStringList& command)
{
    if (command.isEmpty())
        return false;
    const QString line = command.join(QLatin1Char(' '));
    if (dryRun()) {
        std::printf("RUN %s\n", line.toLocal8Bit().constData());
        std::fflush(stdout);
        return true;
    }
    // Owned by the application until it ends: its exit code and stderr are what the user needs
    // when, say, systemd or polkit refused (the polkit agent's dialog says nothing after it).
    auto* process = new QProcess(QCoreApplication::instance());
    process->setStandardOutputFile(QProcess::nullDevice());
    // main() blocks SIGINT and SIGTERM for its signalfd, and a blocked mask survives exec.
    process->setChildProcessModifier([] {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, nullptr);
    });
    QObject::connect(process, &QProcess::finished, process, [process, line](int code, QProcess::ExitStatus status) {
        const QString said = QString::fromLocal8Bit(process->readAllStandardError()).trimmed().right(kStderrLogged);
        if (status == QProcess::NormalExit && code == 0)
            spdlog::info("{}: done", line.toStdString());
        else if (status == QProcess::NormalExit)
            spdlog::error("{} failed (exit {}): {}", line.toStdString(), code, said.toStdString());
        else
            spdlog::error("{} ended by a signal: {}", line.toStdString(), said.toStdString());
        process->deleteLater();
    });
    process->start(command.first(), command.mid(1));
    if (!process->waitForStarted(10000)) {
        spdlog::error("could not run {}: {}", line.toStdString(), process->errorString().toStdString());
        delete process;
        return false;
    }
    spdlog::info("started {}", line.toStdString());
    return true;
}

}  // namespace redirect::gui
