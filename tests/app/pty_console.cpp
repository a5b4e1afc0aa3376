#include "pty_console.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <QElapsedTimer>
#include <QFile>

namespace redirect::test {

namespace {

QString errnoText(const char* what)
{
    return QStringLiteral("%1: %2").arg(QString::fromLatin1(what), QString::fromLocal8Bit(std::strerror(errno)));
}

// After fork() in a threaded test: system calls only, then _exit.
[[noreturn]] void runChild(int slave, int errWrite, const std::vector<char*>& argv)
{
    ::setsid();
    ::ioctl(slave, TIOCSCTTY, 0);
    ::dup2(slave, STDIN_FILENO);
    ::dup2(slave, STDOUT_FILENO);
    ::dup2(errWrite, STDERR_FILENO);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
}

// Digits of a pid, without the allocator (after fork).
size_t pidText(pid_t pid, char* out)
{
    char digits[16];
    size_t n = 0;
    do {
        digits[n++] = static_cast<char>('0' + pid % 10);
        pid /= 10;
    } while (pid > 0);
    for (size_t i = 0; i < n; ++i)
        out[i] = digits[n - 1 - i];
    return n;
}

// The exchange itself, in the forked child: exit 0 when every byte came back.
[[noreturn]] void exchangeChild(int netns, const char* procs, uint16_t port, const std::string& data)
{
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::alarm(20);  // bounded whatever happens
    if (::setns(netns, CLONE_NEWNET) != 0)
        ::_exit(10);
    int cg = ::open(procs, O_WRONLY | O_CLOEXEC);
    char pid[16];
    const size_t n = pidText(::getpid(), pid);
    if (cg < 0 || ::write(cg, pid, n) != ssize_t(n))
        ::_exit(11);
    ::close(cg);
    ::prctl(PR_SET_NAME, "tst-xfer");
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0)
        ::_exit(12);
    for (size_t sent = 0; sent < data.size();) {
        ssize_t w = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (w <= 0)
            ::_exit(13);
        sent += size_t(w);
    }
    ::shutdown(fd, SHUT_WR);
    char buf[65536];
    size_t got = 0;
    for (ssize_t r; (r = ::read(fd, buf, sizeof(buf))) > 0;)
        got += size_t(r);
    ::close(fd);
    ::_exit(got == data.size() ? 0 : 14);
}

// A process of the demo's in its network namespace (not ours): the namespace to enter.
int demoNetns(const QString& demoCgroup)
{
    struct stat ours {};
    if (::stat("/proc/self/ns/net", &ours) != 0)
        return -1;
    QFile procs(demoCgroup + "/cgroup.procs");
    if (!procs.open(QIODevice::ReadOnly))
        return -1;
    for (const QByteArray& line : procs.readAll().split('\n')) {
        if (line.isEmpty())
            continue;
        const QByteArray path = "/proc/" + line + "/ns/net";
        struct stat ns {};
        if (::stat(path.constData(), &ns) == 0 && ns.st_ino != ours.st_ino)
            return ::open(path.constData(), O_RDONLY | O_CLOEXEC);
    }
    return -1;
}

}  // namespace

PtyConsole::~PtyConsole()
{
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {master_, err_})
        if (fd >= 0)
            ::close(fd);
}

bool PtyConsole::start(const QString& program, const QStringList& args, QString* error)
{
    int slave = -1;
    winsize size{};
    size.ws_col = 120;
    size.ws_row = 40;
    if (::openpty(&master_, &slave, nullptr, nullptr, &size) != 0) {
        *error = errnoText("openpty");
        return false;
    }
    ::fcntl(master_, F_SETFD, FD_CLOEXEC);
    termios mode{};
    ::tcgetattr(slave, &mode);
    mode.c_oflag &= ~tcflag_t(OPOST);  // "\n" as written, not "\r\n"
    ::tcsetattr(slave, TCSANOW, &mode);
    int errPipe[2];
    if (::pipe2(errPipe, O_CLOEXEC) != 0) {
        *error = errnoText("pipe");
        ::close(slave);
        return false;
    }
    std::vector<QByteArray> storage{QFile::encodeName(program)};
    for (const QString& a : args)
        storage.push_back(a.toLocal8Bit());
    std::vector<char*> argv;
    for (QByteArray& s : storage)
        argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0)
        runChild(slave, errPipe[1], argv);
    const int forkErrno = errno;
    ::close(slave);
    ::close(errPipe[1]);
    err_ = errPipe[0];
    if (pid_ < 0) {
        errno = forkErrno;
        *error = errnoText("fork");
        return false;
    }
    ::fcntl(master_, F_SETFL, O_NONBLOCK);
    ::fcntl(err_, F_SETFL, O_NONBLOCK);
    return true;
}

// False at the end of `fd`'s data (EOF, or EIO once the terminal's last writer closed it).
bool PtyConsole::readFrom(int& fd, QByteArray& into)
{
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n > 0) {
            into.append(buf, n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        ::close(fd);
        fd = -1;
        return false;
    }
}

void PtyConsole::pump(int ms)
{
    QElapsedTimer t;
    t.start();
    do {
        pollfd fds[2] = {{master_, POLLIN, 0}, {err_, POLLIN, 0}};
        if (master_ < 0 && err_ < 0)
            return;
        const int left = std::max<int>(0, ms - int(t.elapsed()));
        if (::poll(fds, 2, left) <= 0)
            return;
        if (master_ >= 0 && fds[0].revents)
            readFrom(master_, out);
        if (err_ >= 0 && fds[1].revents)
            readFrom(err_, err);
    } while (t.elapsed() < ms);
}

bool PtyConsole::waitExit(int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    int status = 0;
    while (!reaped_) {
        pump(100);
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
        } else if (t.elapsed() > timeoutMs) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            reaped_ = true;
            return false;
        }
    }
    code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    // What it wrote last is still in the terminal and the pipe; the demo's own children may keep
    // the terminal open a little longer (bounded).
    QElapsedTimer drain;
    drain.start();
    while ((master_ >= 0 || err_ >= 0) && drain.elapsed() < 3000)
        pump(100);
    return true;
}

pid_t transferInDemo(PtyConsole& console, const QString& demoCgroup, uint16_t port, size_t bytes, QString* error)
{
    int netns = -1;
    QElapsedTimer t;
    t.start();
    while ((netns = demoNetns(demoCgroup)) < 0 && t.elapsed() < 20000)
        console.pump(100);
    if (netns < 0) {
        *error = "no process of the demo in its network namespace under " + demoCgroup;
        return -1;
    }
    const QByteArray procs = QFile::encodeName(demoCgroup + "/cgroup.procs");
    const std::string data(bytes, 't');
    const pid_t pid = ::fork();
    if (pid == 0)
        exchangeChild(netns, procs.constData(), port, data);
    ::close(netns);
    if (pid < 0) {
        *error = errnoText("fork");
        return -1;
    }
    int status = 0;
    pid_t r = 0;
    while ((r = ::waitpid(pid, &status, WNOHANG)) == 0)
        console.pump(50);  // the child ends by itself within 20 s (alarm)
    if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *error = QStringLiteral("the transfer process failed (status %1: 10 setns, 11 cgroup, 12 connect, 13 send, "
                                "14 short read)")
                     .arg(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
        return -1;
    }
    return pid;
}

}  // namespace redirect::test
