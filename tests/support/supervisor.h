// A supervisor process around each kernel test, so that a test that crashes
// or is killed still leaves nothing behind: no helper holding ctest's output
// pipe, no sandbox cgroup, no temp directory, no pin or lock of its instances.
#pragma once

#include <string>

namespace redirect::test {

/// What the supervisor made for the test process; all of it goes when the test ends.
struct SupervisedTest {
    std::string cgroup;    ///< empty cgroup2 directory for the sandbox, "redirect-test-<pid>"
    std::string tmpDir;    ///< the test's $TMPDIR, "<$TMPDIR or /tmp>/redirect-test-<pid>.XXXXXX"
    std::string instance;  ///< callout instance name, "test-<pid>"
};

/**
 * Forks the calling process, which must still have a single thread. The
 * parent (whose pid names everything above) stays outside the sandbox: it
 * waits for the child, forwarding SIGINT, SIGTERM and SIGHUP to it, then kills
 * every process left in the cgroup tree (cgroup.kill, or SIGKILL to each pid
 * on kernels before 5.14) and every descendant that left the tree (they come
 * to it as orphans: it is their child subreaper), removes that tree, the temp directory and the pins
 * and locks of instances "test-<pid>" and "test-<pid>-*", and exits with the
 * child's status: its exit code, or 128+signal with the signal named on
 * stderr when it crashed. Cleanup that fails turns a pass into exit code 1.
 *
 * Returns only in the child, with $TMPDIR set to the temp directory and
 * PR_SET_PDEATHSIG(SIGKILL) set (a SIGKILLed supervisor takes the test down).
 * Throws std::runtime_error with the reason when nothing could be set up.
 */
SupervisedTest superviseTest();

}  // namespace redirect::test
