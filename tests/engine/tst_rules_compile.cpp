// Compilation of a rules file to the callout's callout_rule table (engine/rules_compile.cpp):
// the DESIGN.md example, addresses, expiry against the boot clock, cgroups, redirector slots and
// the table's limits.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <QtTest>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "callout_abi.h"
#include "rules.h"
#include "rules_fixtures.h"

using namespace redirect::engine;
using namespace rules_test;

namespace {

// Mount point of cgroup2 as /proc/self/mountinfo lists it (fs type after the " - " separator).
std::string cgroup2Mount()
{
    std::ifstream in("/proc/self/mountinfo");
    for (std::string line; std::getline(in, line);) {
        size_t dash = line.find(" - cgroup2 ");
        if (dash == std::string::npos)
            continue;
        std::istringstream fields(line);
        std::string skip, mountPoint;
        fields >> skip >> skip >> skip >> skip >> mountPoint;
        return mountPoint;
    }
    return {};
}

int designSlot(const std::string& id)
{
    if (id == "inspector") return 0;
    if (id == "dlp") return 1;
    if (id == "vendor-x") return 2;
    return -1;
}

}  // namespace

class TestRulesCompile : public QObject {
    Q_OBJECT

private slots:
    void compileDesignExample();
    void compileAddresses();
    void compileExpiry_data();
    void compileExpiry();
    void compileMissingCgroup();
    void compileCgroup();
    void compileUnknownSlot();
    void compileLimits();
    void compileProtocolBlockIdle();
};

void TestRulesCompile::compileDesignExample()
{
    RuleSet set = parseOk(kDesignExample);
    const int64_t now = 1767225600 * kSecond;  // 2026-01-01T00:00:00Z
    const int64_t boot = 1000 * kSecond;
    CompileResult c = compileRules(set, designSlot, now, boot);
    QVERIFY2(c.ok(), c.error.str().c_str());
    QCOMPARE(c.rules.size(), size_t(3));

    const callout_rule& noSsh = c.rules[0];
    QCOMPARE(noSsh.id, 0xaef83421u);
    QCOMPARE(int(noSsh.enabled), 1);
    QCOMPARE(int(noSsh.action), int(CALLOUT_ACTION_BYPASS));
    QCOMPARE(int(noSsh.protocol), IPPROTO_TCP);
    QCOMPARE(int(noSsh.match), 0);
    QCOMPARE(int(noSsh.cidr_count), 0);
    QCOMPARE(int(noSsh.port_count), 1);
    QCOMPARE(noSsh.ports[0].first, uint16_t(22));
    QCOMPARE(noSsh.ports[0].last, uint16_t(22));
    QCOMPARE(noSsh.expires_boot_ns, uint64_t(0));

    const callout_rule& web = c.rules[1];
    QCOMPARE(web.id, 0x0fd9bc91u);
    QCOMPARE(int(web.action), int(CALLOUT_ACTION_REDIRECT));
    QCOMPARE(int(web.redirector_slot), 0);
    QCOMPARE(int(web.cidr_count), 2);
    QCOMPARE(int(web.cidrs[0].family), AF_INET);
    QCOMPARE(int(web.cidrs[0].prefix_len), 0);
    QCOMPARE(web.cidrs[0].addr[0], 0u);
    QCOMPARE(int(web.cidrs[1].family), AF_INET6);
    QCOMPARE(int(web.cidrs[1].prefix_len), 0);
    QCOMPARE(int(web.port_count), 3);
    // Host order: 8000 is 0x1f40 here, not 0x401f.
    QCOMPARE(web.ports[1].first, uint16_t(443));
    QCOMPARE(web.ports[2].first, uint16_t(8000));
    QCOMPARE(web.ports[2].last, uint16_t(8999));
    QCOMPARE(web.ports[3].first, uint16_t(0));

    const callout_rule& curl = c.rules[2];
    QCOMPARE(curl.id, 0x6fe8e09eu);
    QCOMPARE(int(curl.redirector_slot), 1);
    QCOMPARE(int(curl.match), CALLOUT_MATCH_COMM);
    QCOMPARE(QByteArray(reinterpret_cast<const char*>(curl.comm), CALLOUT_COMM_LEN),
             QByteArray("curl\0\0\0\0\0\0\0\0\0\0\0\0", CALLOUT_COMM_LEN));
    QCOMPARE(int(curl.port_count), 0);
    // Expires 364 days after "now": boot time now plus the same distance.
    QCOMPARE(curl.expires_boot_ns, uint64_t(boot + 364 * 86400 * kSecond));
}

void TestRulesCompile::compileAddresses()
{
    RuleSet set = parseOk(inRule(R"("id": "r", "action": "redirect", "redirector": "a", "uid": 1234,
        "destination": ["10.1.2.0/24", "2001:db8:aa::/48"], "process": "fifteen-chars-x")"));
    CompileResult c = compileRules(set, [](const std::string&) { return 31; }, 0, 0);
    QVERIFY2(c.ok(), c.error.str().c_str());
    QCOMPARE(c.rules.size(), size_t(1));
    const callout_rule& r = c.rules[0];
    QCOMPARE(int(r.redirector_slot), 31);
    QCOMPARE(int(r.match), CALLOUT_MATCH_UID | CALLOUT_MATCH_COMM);
    QCOMPARE(r.uid, 1234u);
    QCOMPARE(r.cgroup_id, uint64_t(0));
    // Network order: the bytes in memory read as written, v4 in addr[0].
    QCOMPARE(r.cidrs[0].addr[0], htonl(0x0a010200));
    const auto* v4 = reinterpret_cast<const uint8_t*>(r.cidrs[0].addr);
    QCOMPARE(QByteArray(reinterpret_cast<const char*>(v4), 4), QByteArray("\x0a\x01\x02\x00", 4));
    QCOMPARE(r.cidrs[0].addr[1], 0u);
    QCOMPARE(int(r.cidrs[0].prefix_len), 24);
    QCOMPARE(int(r.cidrs[1].family), AF_INET6);
    QCOMPARE(int(r.cidrs[1].prefix_len), 48);
    QCOMPARE(r.cidrs[1].addr[0], htonl(0x20010db8));
    QCOMPARE(r.cidrs[1].addr[1], htonl(0x00aa0000));
    QCOMPARE(r.cidrs[1].addr[3], 0u);
    // 15 bytes fill the comm; the 16th stays NUL.
    QCOMPARE(QByteArray(reinterpret_cast<const char*>(r.comm), CALLOUT_COMM_LEN),
             QByteArray("fifteen-chars-x\0", CALLOUT_COMM_LEN));
    QCOMPARE(int(r.enabled), 1);
}

void TestRulesCompile::compileExpiry_data()
{
    QTest::addColumn<qint64>("nowRealtime");
    QTest::addColumn<qint64>("nowBoottime");
    QTest::addColumn<quint64>("expected");
    const qint64 expires = 1798675200 * kSecond;
    const qint64 boot = 5 * kSecond;
    QTest::newRow("future") << qint64(expires - 90 * kSecond) << boot << quint64(95 * kSecond);
    QTest::newRow("one ns left") << qint64(expires - 1) << qint64(7) << quint64(8);
    QTest::newRow("expires now") << expires << boot << quint64(1);
    QTest::newRow("already expired") << qint64(expires + 3600 * kSecond) << boot << quint64(1);
}

void TestRulesCompile::compileExpiry()
{
    QFETCH(qint64, nowRealtime);
    QFETCH(qint64, nowBoottime);
    QFETCH(quint64, expected);
    RuleSet set = parseOk(inRule(R"("id": "r", "action": "bypass", "expires": "2026-12-31T00:00:00Z")"));
    CompileResult c = compileRules(set, designSlot, nowRealtime, nowBoottime);
    QVERIFY2(c.ok(), c.error.str().c_str());
    QCOMPARE(c.rules.size(), size_t(1));
    QCOMPARE(quint64(c.rules[0].expires_boot_ns), expected);
}

void TestRulesCompile::compileMissingCgroup()
{
    RuleSet set = parseOk(R"({"version": 1, "rules": [
        {"id": "ok", "action": "bypass"},
        {"id": "r", "action": "bypass",
         "cgroup": "/no-such-cgroup.rules-test"}]})");
    QCOMPARE(set.rules.size(), size_t(2));
    CompileResult c = compileRules(set, designSlot, 0, 0);
    QVERIFY(!c.ok());
    QCOMPARE(c.error.line, 4);
    QCOMPARE(c.error.column, 20);
    QVERIFY2(c.error.message.find("no-such-cgroup.rules-test") != std::string::npos, c.error.message.c_str());
}

void TestRulesCompile::compileCgroup()
{
    const std::string mount = cgroup2Mount();
    if (mount.empty())
        QSKIP("no cgroup2 file system is mounted in this mount namespace");
    struct stat root{};
    QVERIFY(::stat(mount.c_str(), &root) == 0);
    // The same cgroup named relative to the cgroup2 root, from it, and by its mount path.
    std::string text = R"({"version": 1, "rules": [
        {"id": "rel", "action": "bypass", "cgroup": "/"},
        {"id": "abs", "action": "bypass", "cgroup": ")" + mount + R"("}]})";
    RuleSet set = parseOk(QByteArray::fromStdString(text));
    QCOMPARE(set.rules.size(), size_t(2));
    CompileResult c = compileRules(set, designSlot, 0, 0);
    QVERIFY2(c.ok(), c.error.str().c_str());
    for (const callout_rule& r : c.rules) {
        QCOMPARE(int(r.match), CALLOUT_MATCH_CGROUP);
        QCOMPARE(r.cgroup_id, uint64_t(root.st_ino));
    }
    // A path off cgroup2 is looked up under the cgroup2 root, where /proc does not exist.
    set = parseOk(inRule(R"("id": "r", "action": "bypass", "cgroup": "/proc")"));
    c = compileRules(set, designSlot, 0, 0);
    QVERIFY(!c.ok());
    QCOMPARE(c.error.line, 3);
    QCOMPARE(c.error.column, 54);
    QVERIFY2(c.error.message.find("not found") != std::string::npos, c.error.message.c_str());
    // What exists there but is no directory is not a cgroup.
    set = parseOk(inRule(R"("id": "r", "action": "bypass", "cgroup": "cgroup.procs")"));
    c = compileRules(set, designSlot, 0, 0);
    QVERIFY(!c.ok());
    QCOMPARE(c.error.column, 54);
    QVERIFY2(c.error.message.find("is not a cgroup v2 directory") != std::string::npos, c.error.message.c_str());
}

void TestRulesCompile::compileUnknownSlot()
{
    RuleSet set = parseOk(kDesignExample);
    auto noDlp = [](const std::string& id) { return id == "dlp" ? -1 : designSlot(id); };
    CompileResult c = compileRules(set, noDlp, 0, 0);
    QVERIFY(!c.ok());
    QCOMPARE(QString::fromStdString(c.error.str()), QString("12:61: redirector \"dlp\" is not running"));
    QVERIFY(c.rules.empty());

    // Bypass rules never ask for a slot.
    set = parseOk(inRule(R"("id": "r", "action": "bypass")"));
    c = compileRules(set, [](const std::string&) { return -1; }, 0, 0);
    QVERIFY2(c.ok(), c.error.str().c_str());
    QCOMPARE(c.rules.size(), size_t(1));
}

void TestRulesCompile::compileLimits()
{
    // A RuleSet built in code, not parsed, must still fit the callout's fixed arrays.
    RuleSet set = parseOk(inRule(R"("id": "r", "action": "bypass", "destination": "10.0.0.0/8")"));
    QCOMPARE(set.rules.size(), size_t(1));
    QVERIFY(compileRules(set, designSlot, 0, 0).ok());
    set.rules[0].destination.resize(CALLOUT_MAX_CIDRS + 1, set.rules[0].destination[0]);
    CompileResult c = compileRules(set, designSlot, 0, 0);
    QVERIFY(!c.ok());
    QCOMPARE(c.error.line, 3);
    QCOMPARE(c.error.column, 12);

    set.rules[0].destination.resize(1);
    set.rules.resize(CALLOUT_MAX_RULES, set.rules[0]);
    QCOMPARE(compileRules(set, designSlot, 0, 0).rules.size(), size_t(CALLOUT_MAX_RULES));
    set.rules.push_back(set.rules[0]);
    c = compileRules(set, designSlot, 0, 0);
    QVERIFY(!c.ok());
    QVERIFY(c.rules.empty());
    QVERIFY2(c.error.message.find("more than 256 rules") != std::string::npos, c.error.message.c_str());
}

void TestRulesCompile::compileProtocolBlockIdle()
{
    // Absent protocol stays TCP (files from before UDP keep their meaning); udp and any reach the
    // callout as IPPROTO_UDP and 0; block as CALLOUT_ACTION_BLOCK; every rule carries the idle
    // timeout its UDP flows get, the default when it sets none.
    RuleSet set = parseOk(R"({"version": 1, "redirectors": [{"id": "dns"}], "rules": [
        {"id": "old", "action": "bypass", "ports": 22},
        {"id": "dns", "action": "redirect", "redirector": "dns", "protocol": "udp", "ports": 53, "idle_timeout": 15},
        {"id": "quic", "action": "block", "protocol": "any", "ports": 443}]})");
    CompileResult c = compileRules(set, [](const std::string&) { return 0; }, 0, 0);
    QVERIFY2(c.ok(), c.error.str().c_str());
    QCOMPARE(c.rules.size(), size_t(3));
    QCOMPARE(int(c.rules[0].protocol), IPPROTO_TCP);
    QCOMPARE(c.rules[0].idle_timeout_s, uint32_t(CALLOUT_UDP_IDLE_DEFAULT_S));
    QCOMPARE(int(c.rules[1].protocol), IPPROTO_UDP);
    QCOMPARE(int(c.rules[1].action), int(CALLOUT_ACTION_REDIRECT));
    QCOMPARE(c.rules[1].idle_timeout_s, 15u);
    QCOMPARE(int(c.rules[2].protocol), 0);
    QCOMPARE(int(c.rules[2].action), int(CALLOUT_ACTION_BLOCK));
    QCOMPARE(ruleIdleTimeoutS(set.rules[2]), 60u);
}

QTEST_APPLESS_MAIN(TestRulesCompile)
#include "tst_rules_compile.moc"
