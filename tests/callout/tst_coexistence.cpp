// The coexistence inventory on its own, against the real kernel in the test's sandbox: our callout
// in a child cgroup of the sandbox (the scope), foreign programs beside it and in its parent. Each
// is listed where it is attached, marked ours or foreign, with its owner (this process) and its
// place in the kernel's run order relative to ours, and gone once detached.
#include <algorithm>
#include <cstring>
#include <set>

#include <QtTest>

#include <unistd.h>

#include "callout_paths.h"
#include "coexistence.h"
#include "foreign_program.h"
#include "kernel_test.h"

using namespace redirect;
using namespace redirect::test;
using coexist::Order;

namespace {

const coexist::Attachment* find(const coexist::Report& report, const std::string& hook, uint32_t progId)
{
    for (const coexist::Attachment& a : report.attachments)
        if (a.hook == hook && a.progId == progId)
            return &a;
    return nullptr;
}

bool ownedBy(const coexist::Attachment& a, int pid, const std::string& holds)
{
    for (const coexist::Owner& o : a.owners)
        if (o.pid == pid && o.holds == holds)
            return true;
    return false;
}

std::string describe(const coexist::Report& report)
{
    std::string out = report.summary() + "\n";
    for (const coexist::Attachment& a : report.attachments)
        out += a.hook + " " + a.cgroup + " " + std::to_string(a.progId) + " " + a.name + " " +
               coexist::orderName(a.order) + " #" + std::to_string(a.runPosition) + " " + a.warning + "\n";
    for (const std::string& p : report.problems)
        out += "problem: " + p + "\n";
    return out;
}

}  // namespace

class TestCoexistence : public QObject {
    Q_OBJECT

private slots:
    void foreignProgramsAroundOurs();
    void missingScopeIsReported();
};

void TestCoexistence::foreignProgramsAroundOurs()
{
    const std::string scope = sandbox().makeChildCgroup("coexist-scope");
    const std::string parent = sandbox().cgroup();
    // Attached to the scope before our callout: earlier in the scope's list, so it runs first.
    ForeignProgram early("vendor_early", BPF_CGROUP_INET4_CONNECT, scope);
    Callout callout(CalloutOptions{scope, instanceName()});
    const std::set<uint32_t> ours(callout.programIds().begin(), callout.programIds().end());
    QCOMPARE(ours.size(), size_t(10));
    auto late = std::make_unique<ForeignProgram>("vendor_parent", BPF_CGROUP_INET4_CONNECT, parent);
    // BPF_F_PREORDER (kernel 6.15+): the parent's program runs before the scope's.
    ForeignProgram preorder("vendor_pre", BPF_CGROUP_INET4_CONNECT, parent, ForeignProgram::Attach::Link, kPreorder);
    // A single-program attachment in the parent yields to the programs of the scope.
    ForeignProgram exclusive("vendor_excl", BPF_CGROUP_INET6_CONNECT, parent, ForeignProgram::Attach::Legacy,
                             BPF_F_ALLOW_OVERRIDE);

    // A pin keeps a program alive with no process: it is named as the owner.
    struct Pin {
        std::string path = std::string(CALLOUT_BPFFS_ROOT "/") + instanceName() + "-coexist";
        ~Pin() { ::unlink(path.c_str()); }
    } pin;
    QVERIFY2(bpf_obj_pin(exclusive.programFd(), pin.path.c_str()) == 0, std::strerror(errno));

    QElapsedTimer took;
    took.start();
    coexist::Report report = coexist::inventory(scope, ours);
    qInfo("inventory of %zu cgroups took %lld ms", report.cgroups.size(), static_cast<long long>(took.elapsed()));
    const std::string text = describe(report);
    QVERIFY2(report.cgroups.size() >= 2 && report.cgroups[0] == scope && report.cgroups[1] == parent, text.c_str());

    // Ours: on each of the ten hooks, in the scope, held by this process's links.
    for (const std::string hook : {"connect4", "connect6", "sock_ops", "getpeername4", "getpeername6", "sendmsg4",
                                   "sendmsg6", "recvmsg4", "recvmsg6", "sock_release"}) {
        size_t mine = 0;
        for (const coexist::Attachment& a : report.attachments)
            if (a.hook == hook && a.ours) {
                ++mine;
                QCOMPARE(a.cgroup, scope);
                QCOMPARE(a.order, Order::Ours);
                QVERIFY2(ownedBy(a, ::getpid(), "link"), text.c_str());
                QCOMPARE(a.linkIds.size(), size_t(1));
                QVERIFY2(a.warning.empty(), a.warning.c_str());
            }
        QVERIFY2(mine == 1, (hook + " has " + std::to_string(mine) + " programs of ours\n" + text).c_str());
    }

    const coexist::Attachment* a = find(report, "connect4", early.id());
    QVERIFY2(a, text.c_str());
    QVERIFY(!a->ours);
    QCOMPARE(a->cgroup, scope);
    QCOMPARE(a->depth, 0);
    QCOMPARE(a->name, std::string("vendor_early"));
    QCOMPARE(a->type, std::string("cgroup_sock_addr"));
    QCOMPARE(a->tag.size(), size_t(16));
    QVERIFY(a->loadedUnixNs > 0);
    QCOMPARE(a->order, Order::Before);
    QVERIFY2(a->warning.find("runs before ours: may change the destination our rules see") != std::string::npos,
             a->warning.c_str());
    QVERIFY2(ownedBy(*a, ::getpid(), "link"), text.c_str());
    QCOMPARE(coexist::attachFlagsText(a->attachFlags), std::string("multi"));

    a = find(report, "connect4", late->id());
    QVERIFY2(a, text.c_str());
    QCOMPARE(a->cgroup, parent);
    QCOMPARE(a->depth, 1);
    QCOMPARE(a->order, Order::After);
    QVERIFY2(a->warning.find("runs after ours: may send redirected connections elsewhere") != std::string::npos,
             a->warning.c_str());
    QVERIFY2(ownedBy(*a, ::getpid(), "link"), text.c_str());

    a = find(report, "connect4", preorder.id());
    QVERIFY2(a, text.c_str());
    QCOMPARE(a->depth, 1);
    QCOMPARE(a->order, Order::Before);
    QVERIFY2(a->runPosition < find(report, "connect4", early.id())->runPosition, text.c_str());

    a = find(report, "connect6", exclusive.id());
    QVERIFY2(a, text.c_str());
    QCOMPARE(a->cgroup, parent);
    QCOMPARE(a->order, Order::NotRun);
    QCOMPARE(a->runPosition, -1);
    QVERIFY(a->linkIds.empty());
    QCOMPARE(coexist::attachFlagsText(a->attachFlags), std::string("override"));
    QVERIFY2(a->warning.find("single-program (override) attachment in an ancestor") != std::string::npos,
             a->warning.c_str());
    QVERIFY2(ownedBy(*a, ::getpid(), "program"), text.c_str());
    QVERIFY2(std::any_of(a->owners.begin(), a->owners.end(),
                         [&](const coexist::Owner& o) { return o.pid == 0 && o.comm == pin.path && o.holds == "pinned program"; }),
             text.c_str());

    QVERIFY2(report.foreignCount() >= 4, text.c_str());
    QVERIFY2(report.summary().find("warning") != std::string::npos, text.c_str());

    // Detached: gone from the next inventory; the others stay.
    const uint32_t lateId = late->id();
    late.reset();
    report = coexist::inventory(scope, ours);
    QVERIFY2(!find(report, "connect4", lateId), describe(report).c_str());
    QVERIFY2(find(report, "connect4", early.id()), describe(report).c_str());
}

// A scope that is not there: said once with the reason, nothing else made up about it.
void TestCoexistence::missingScopeIsReported()
{
    const std::string scope = sandbox().cgroup() + "/no-such-scope";
    const coexist::Report report = coexist::inventory(scope, {});
    const std::string expected = "cannot open cgroup " + scope + ": " + std::strerror(ENOENT);
    size_t aboutScope = 0;
    for (const std::string& p : report.problems)
        aboutScope += p.find(scope) != std::string::npos;
    QVERIFY2(aboutScope == 1 && std::count(report.problems.begin(), report.problems.end(), expected) == 1,
             describe(report).c_str());
    for (const coexist::Attachment& a : report.attachments)
        QVERIFY2(a.cgroup != scope, describe(report).c_str());
    QVERIFY2(report.summary().find(" unreadable") != std::string::npos, report.summary().c_str());
}

REDIRECT_KERNEL_TEST_MAIN(TestCoexistence)
#include "tst_coexistence.moc"
