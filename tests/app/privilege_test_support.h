// Helpers shared by tst_privilege and tst_privilege_demo: a Unix socket a service would listen
// on, and what a child's signal mask is (the console blocks SIGINT and SIGTERM; its children must not).
#pragma once

#include <csignal>
#include <cstring>

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <QByteArray>
#include <QFile>
#include <QString>
#include <QStringList>

namespace redirect::test {

// A Unix socket listening at `path` that any user may connect to; closed (the file stays) when
// `listening` is false: a service that died.
inline int makeSocket(const QString& path, bool listening)
{
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const QByteArray p = QFile::encodeName(path);
    if (fd < 0 || p.size() >= qsizetype(sizeof(a.sun_path)))
        return -1;
    std::memcpy(a.sun_path, p.constData(), p.size() + 1);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::chmod(p.constData(), 0777) != 0 ||
        (listening && ::listen(fd, 4) != 0)) {
        ::close(fd);
        return -1;
    }
    if (!listening) {
        ::close(fd);
        return 0;
    }
    return fd;
}

// The SigBlk field (blocked signals, hex) of a copy of /proc/PID/status.
inline QByteArray signalMaskOf(const QString& statusCopy)
{
    QFile f(statusCopy);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    for (const QByteArray& line : f.readAll().split('\n'))
        if (line.startsWith("SigBlk:"))
            return line.mid(7).trimmed();
    return {};
}

// A command whose process copies its /proc/self/status, SigBlk included, to `file`.
inline QStringList maskReporter(const QString& file)
{
    return {QStringLiteral("/bin/sh"), QStringLiteral("-c"), QStringLiteral("exec cat /proc/self/status > \"$0\""), file};
}

// SIGINT and SIGTERM blocked in this thread, as main() blocks them in the console, until the scope ends.
struct StopSignalsBlocked {
    sigset_t set, old;
    StopSignalsBlocked()
    {
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, &old);
    }
    ~StopSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};

}  // namespace redirect::test
