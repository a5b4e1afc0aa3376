// The end of a test's run of a program through QProcess: waited for (bounded), killed past the
// bound, and its exit code and output put into the test's result.
#pragma once

#include <QProcess>

namespace redirect::test {

/// `Run` has finished, code (-1 when it did not exit normally), out and err.
template <typename Run>
void finishRun(QProcess& p, int timeoutMs, Run& r)
{
    r.finished = p.waitForFinished(timeoutMs);
    if (!r.finished) {
        p.kill();
        p.waitForFinished(5000);
    }
    r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = p.readAllStandardOutput();
    r.err = p.readAllStandardError();
}

}  // namespace redirect::test
