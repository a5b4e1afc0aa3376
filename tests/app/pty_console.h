// The headless console as a person runs it: on a pseudo-terminal. Its stdout (and stdin) is the
// terminal; its stderr is a pipe of its own, so that a test can tell the lines printed for people
// from the log. And a transfer of the test's own, made inside a running demo's sandbox.
#pragma once

#include <sys/types.h>

#include <QByteArray>
#include <QString>
#include <QStringList>

namespace redirect::test {

class PtyConsole {
public:
    PtyConsole() = default;
    PtyConsole(const PtyConsole&) = delete;
    PtyConsole& operator=(const PtyConsole&) = delete;
    /// Kills (SIGKILL) and reaps the program if it still runs.
    ~PtyConsole();

    /// Starts `program` with `args`; false with the reason in *error.
    bool start(const QString& program, const QStringList& args, QString* error);
    /// Reads what the program wrote, for up to `ms` milliseconds.
    void pump(int ms);
    /// Reads on until the program exits, at most `timeoutMs`; past that it is killed and false.
    bool waitExit(int timeoutMs);

    pid_t pid() const { return pid_; }
    /// The terminal's output (output processing off: "\n", not "\r\n").
    QByteArray out;
    QByteArray err;
    /// Exit code, -1 when it did not exit normally.
    int code = -1;

private:
    bool readFrom(int& fd, QByteArray& into);
    int master_ = -1;
    int err_ = -1;
    pid_t pid_ = -1;
    bool reaped_ = false;
};

/**
 * Makes one TCP exchange from a process of the test's inside the demo of `console` (its network
 * namespace and cgroup): connects to 127.0.0.1:`port`, sends `bytes` bytes, half-closes and reads
 * until the server closes. The process is named "tst-xfer". Pumps `console` while it waits.
 * Returns the process's pid, or -1 with the reason in *error (also when fewer bytes came back).
 */
pid_t transferInDemo(PtyConsole& console, const QString& demoCgroup, uint16_t port, size_t bytes, QString* error);

}  // namespace redirect::test
