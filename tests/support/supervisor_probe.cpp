// A kernel test that misbehaves on purpose, run by tst_supervisor: it leaves
// helpers holding its output, a temp dir, a nested cgroup and a loaded
// callout's pin and lock behind, then crashes, passes, fails or waits to be
// killed.
// Each function prints what it made ("made <path>") so the runner can check
// that the supervisor removed it.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <QTemporaryDir>

#include "callout_loader.h"
#include "callout_paths.h"
#include "kernel_test.h"

using namespace redirect::test;

namespace {

void made(const std::string& path)
{
    std::printf("made %s\n", path.c_str());
    std::fflush(stdout);
}

// A helper that holds stderr (the runner's pipe) and nobody kills but the supervisor:
// forked by a shell that exits at once, so neither we nor PR_SET_PDEATHSIG reach it.
// What the supervisor made for us.
void madeBySupervisor()
{
    const char* tmp = std::getenv("TMPDIR");
    made(tmp ? tmp : "(no $TMPDIR)");
    made(sandbox().cgroup());
}

int leakHelper()
{
    Child shell({"/bin/sh", "-c", "sleep 300 </dev/null & echo $!"});
    std::string pid = shell.readLine();
    shell.wait();
    std::printf("helper %s\n", pid.c_str());
    std::fflush(stdout);
    return std::atoi(pid.c_str());
}

}  // namespace

class SupervisorProbe : public QObject {
    Q_OBJECT

private slots:
    void crashLeavingEverything()
    {
        madeBySupervisor();
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        dir.setAutoRemove(false);
        made(dir.path().toStdString());

        LoadedCallout callout;
        made(callout->pinPath());
        made(std::filesystem::path(callout->pinPath()).parent_path());
        made(std::string(CALLOUT_RUN_DIR "/") + instanceName() + ".lock");

        std::string nested = sandbox().makeChildCgroup("nested");
        made(nested);
        int inNested = leakHelper();
        FILE* procs = std::fopen((nested + "/cgroup.procs").c_str(), "w");
        QVERIFY(inNested > 0 && procs && std::fprintf(procs, "%d", inNested) > 0 && std::fclose(procs) == 0);
        leakHelper();
        // One more that leaves the sandbox cgroup for the supervisor's own.
        int escaped = leakHelper();
        std::string outside;
        {
            std::ifstream in("/proc/" + std::to_string(::getppid()) + "/cgroup");
            for (std::string line; std::getline(in, line);)
                if (line.rfind("0::", 0) == 0)
                    outside = redirect::Callout::cgroup2Root() + line.substr(3);
        }
        QVERIFY2(!outside.empty(), "no cgroup2 line in the supervisor's /proc/PID/cgroup");
        procs = std::fopen((outside + "/cgroup.procs").c_str(), "w");
        QVERIFY(escaped > 0 && procs && std::fprintf(procs, "%d", escaped) > 0 && std::fclose(procs) == 0);
        std::abort();
    }

    void passLeavingHelper()
    {
        madeBySupervisor();
        leakHelper();
    }

    void failPlainly()
    {
        madeBySupervisor();
        QFAIL("failing on purpose");
    }

    void waitForSignal()
    {
        madeBySupervisor();
        leakHelper();
        std::printf("ready\n");
        std::fflush(stdout);
        QTest::qSleep(120000);  // the runner sends SIGTERM long before
    }
};

REDIRECT_KERNEL_TEST_MAIN(SupervisorProbe)
#include "supervisor_probe.moc"
