// Chains of cooperating redirectors in the sandbox: the chain is exactly the
// rule order, records grow hop by hop, the last proxy's outbound goes direct
// (earlier redirectors see PREVIOUSLY_REDIRECTED_BY_SELF, the last one
// REDIRECTED_BY_SELF), the hop cap stops a ninth redirect, and proxies that
// skip SET reach the destination without a loop, reported as records_missing.
#include <memory>

#include <arpa/inet.h>
#include <unistd.h>

#include "hop_log.h"
#include "kernel_test.h"
#include "redirect/sio.h"

using namespace redirect;
using namespace redirect::test;

namespace {

constexpr uint32_t kBaseId = 1000;

std::string exchange(uint16_t port)
{
    int fd = connectLoopback(AF_INET, port);
    if (fd < 0)
        return "connect failed: " + std::string(strerror(-fd));
    std::string out;
    char buf[256];
    [[maybe_unused]] ssize_t w = ::write(fd, "ping", 4);
    for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
        out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
}

// Redirectors 1..n in slots 0..n-1, one rule each, in that order, all matching `port`.
void installChain(LoadedCallout& callout, const std::vector<std::pair<uint32_t, std::pair<uint16_t, uint32_t>>>& chain,
                  uint16_t port)
{
    std::vector<callout_rule> rules;
    for (uint16_t slot = 0; slot < chain.size(); ++slot) {
        auto [id, endpoint] = chain[slot];
        auto [port4, owner] = endpoint;
        callout->setRedirector(slot, makeRedirector(id, port4, 0, owner, sandbox().netnsCookie()));
        rules.push_back(makeRedirectRule(100 + slot, slot, port, port));
    }
    callout->setRules(rules);
}

std::vector<uint32_t> hopIds(const std::vector<uint8_t>& blob)
{
    redirect_records_info info{};
    if (redirect_records_decode(blob.data(), blob.size(), &info) != 0)
        return {};
    std::vector<uint32_t> ids;
    for (unsigned i = 0; i < info.hop_count; ++i)
        ids.push_back(info.hops[i].redirector_id);
    return ids;
}

uint64_t flowOf(const std::vector<uint8_t>& blob)
{
    redirect_records_info info{};
    return redirect_records_decode(blob.data(), blob.size(), &info) == 0 ? info.flow_id : 0;
}

// A redirector in its own process (test_proxy), for records repair keyed by process.
struct ProxyProcess {
    std::unique_ptr<Child> child;
    uint16_t port4 = 0;
    ProxyProcess(uint32_t id, bool skipSet)
    {
        std::vector<std::string> argv{binaryPath("test_proxy"), "--id", std::to_string(id)};
        if (skipSet)
            argv.push_back("--skip-set");
        child = std::make_unique<Child>(argv);
        std::string line = child->readLine();
        if (line.rfind("PORTS ", 0) == 0)
            port4 = static_cast<uint16_t>(std::stoul(line.substr(6)));
    }
};

}  // namespace

class TestChain : public QObject {
    Q_OBJECT

private slots:
    void chainOfRedirectors_data();
    void chainOfRedirectors();
    void hopCapStopsTheNinth();
    void proxySkippingSetAlone();
    void pairWithSecondSkippingSet();
    void pairBothSkippingSet();
};

void TestChain::chainOfRedirectors_data()
{
    QTest::addColumn<int>("length");
    QTest::newRow("2 redirectors") << 2;
    QTest::newRow("3 redirectors") << 3;
    QTest::newRow("8 redirectors") << 8;
}

void TestChain::chainOfRedirectors()
{
    QFETCH(int, length);
    LoadedCallout callout;
    HopLog log;
    std::vector<std::unique_ptr<test::ThreadRedirector>> redirectors;
    std::vector<std::pair<uint32_t, std::pair<uint16_t, uint32_t>>> chain;
    for (int i = 0; i < length; ++i) {
        uint32_t id = kBaseId + static_cast<uint32_t>(i) + 1;
        redirectors.push_back(std::make_unique<test::ThreadRedirector>(engine::RedirectorConfig{.id = id}, log.handler()));
        chain.push_back({id, {redirectors.back()->port4(), 0}});
    }
    TcpServer server(AF_INET, "pong", 4);
    installChain(callout, chain, server.port());

    QCOMPARE(exchange(server.port()), std::string("pong"));

    auto hops = log.waitFor(static_cast<size_t>(length));
    QCOMPARE(hops.size(), size_t(length));
    // Each redirector saw the chain up to itself: records grow by 8 bytes a hop.
    std::vector<uint32_t> expected;
    uint64_t flow = flowOf(hops[0].records);
    QVERIFY(flow != 0);
    for (int i = 0; i < length; ++i) {
        expected.push_back(kBaseId + static_cast<uint32_t>(i) + 1);
        auto it = std::find_if(hops.begin(), hops.end(), [&](auto& h) { return h.redirectorId == expected.back(); });
        QVERIFY(it != hops.end());
        QCOMPARE(it->records.size(), size_t(REDIRECT_RECORDS_SIZE(i + 1)));
        QCOMPARE(hopIds(it->records), expected);
        QCOMPARE(flowOf(it->records), flow);
        QCOMPARE(it->context.size(), size_t(REDIRECT_CONTEXT_HEADER_SIZE));
        QCOMPARE(addressText(it->destination), "127.0.0.1:" + std::to_string(server.port()));
        qInfo("hop %d: records %zu bytes, context %zu bytes", i + 1, it->records.size(), it->context.size());
    }
    // Exactly `length` redirects, then the last proxy's outbound goes direct.
    auto events = callout.events();
    int redirects = 0;
    const callout_event* end = nullptr;
    for (auto& e : events) {
        if (ntohs(e.orig_port) != server.port())
            continue;
        redirects += e.verdict == CALLOUT_VERDICT_REDIRECT;
        if (e.verdict == CALLOUT_VERDICT_CHAIN_END)
            end = &e;
    }
    QCOMPARE(redirects, length);
    QVERIFY(end != nullptr);
    QCOMPARE(int(end->hop_count), length);
    QCOMPARE(end->flow_id, flow);
    for (int i = 0; i + 1 < length; ++i)
        QCOMPARE(int(end->chain_states[i]), int(CALLOUT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF));
    QCOMPARE(int(end->chain_states[length - 1]), int(CALLOUT_STATE_REDIRECTED_BY_SELF));
    // The destination saw one connection: from the last redirector.
    QCOMPARE(server.peers().size(), size_t(1));
}

void TestChain::hopCapStopsTheNinth()
{
    LoadedCallout callout;
    HopLog log;
    std::vector<std::unique_ptr<test::ThreadRedirector>> redirectors;
    std::vector<std::pair<uint32_t, std::pair<uint16_t, uint32_t>>> chain;
    for (int i = 0; i < 9; ++i) {
        uint32_t id = kBaseId + static_cast<uint32_t>(i) + 1;
        redirectors.push_back(std::make_unique<test::ThreadRedirector>(engine::RedirectorConfig{.id = id}, log.handler()));
        chain.push_back({id, {redirectors.back()->port4(), 0}});
    }
    TcpServer server(AF_INET, "pong", 4);
    installChain(callout, chain, server.port());

    QCOMPARE(exchange(server.port()), std::string("pong"));
    auto hops = log.waitFor(8);
    QCOMPARE(hops.size(), size_t(8));
    for (auto& h : hops)
        QVERIFY(h.redirectorId != kBaseId + 9);  // the ninth never got the flow
    QVERIFY(callout.waitForEvent([&](const callout_event& e) {
        return e.verdict == CALLOUT_VERDICT_HOP_CAP && e.hop_count == CALLOUT_MAX_HOPS && e.redirector_id == kBaseId + 9;
    }));
    QCOMPARE(callout->stats()[CALLOUT_STAT_HOP_CAP], uint64_t(1));
    QCOMPARE(server.peers().size(), size_t(1));
}

void TestChain::proxySkippingSetAlone()
{
    LoadedCallout callout;
    ProxyProcess a(2001, true);
    QVERIFY(a.port4 != 0);
    TcpServer server(AF_INET, "pong", 4);
    installChain(callout, {{2001, {a.port4, uint32_t(a.child->pid())}}}, server.port());

    QCOMPARE(exchange(server.port()), std::string("pong"));
    // A's own connect carried no records: repaired to [A], A sees BY_SELF, it goes direct.
    QVERIFY(callout.waitForEvent([&](const callout_event& e) {
        return (e.flags & CALLOUT_FLAG_RECORDS_MISSING) && e.pid == uint32_t(a.child->pid()) &&
               e.verdict == CALLOUT_VERDICT_CHAIN_END && e.hop_count == 1 && e.hops[0].redirector_id == 2001;
    }));
    int redirects = 0;
    for (auto& e : callout.events())
        redirects += e.verdict == CALLOUT_VERDICT_REDIRECT;
    QCOMPARE(redirects, 1);
    QCOMPARE(server.peers().size(), size_t(1));
    QCOMPARE(a.child->readLine().substr(0, 4), std::string("HOP "));
}

void TestChain::pairWithSecondSkippingSet()
{
    LoadedCallout callout;
    ProxyProcess a(2001, false), b(2002, true);
    QVERIFY(a.port4 && b.port4);
    TcpServer server(AF_INET, "pong", 4);
    installChain(callout, {{2001, {a.port4, uint32_t(a.child->pid())}}, {2002, {b.port4, uint32_t(b.child->pid())}}},
                 server.port());

    QCOMPARE(exchange(server.port()), std::string("pong"));
    // B forgot SET: repaired from B's inbound records [A, B]; A is PREVIOUSLY_BY_SELF, so no A -> B -> A loop.
    QVERIFY(callout.waitForEvent([&](const callout_event& e) {
        return (e.flags & CALLOUT_FLAG_RECORDS_MISSING) && e.pid == uint32_t(b.child->pid()) &&
               e.verdict == CALLOUT_VERDICT_CHAIN_END && e.hop_count == 2 && e.hops[0].redirector_id == 2001 &&
               e.hops[1].redirector_id == 2002 &&
               e.chain_states[0] == CALLOUT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF &&
               e.chain_states[1] == CALLOUT_STATE_REDIRECTED_BY_SELF;
    }));
    std::vector<uint32_t> chain;
    for (auto& e : callout.events())
        if (e.verdict == CALLOUT_VERDICT_REDIRECT)
            chain.push_back(e.redirector_id);
    QCOMPARE(chain, (std::vector<uint32_t>{2001, 2002}));
    QCOMPARE(server.peers().size(), size_t(1));
}

void TestChain::pairBothSkippingSet()
{
    LoadedCallout callout;
    ProxyProcess a(2001, true), b(2002, true);
    QVERIFY(a.port4 && b.port4);
    TcpServer server(AF_INET, "pong", 4);
    installChain(callout, {{2001, {a.port4, uint32_t(a.child->pid())}}, {2002, {b.port4, uint32_t(b.child->pid())}}},
                 server.port());

    QCOMPARE(exchange(server.port()), std::string("pong"));
    QVERIFY(callout.waitForEvent([&](const callout_event& e) {
        return (e.flags & CALLOUT_FLAG_RECORDS_MISSING) && e.pid == uint32_t(b.child->pid()) &&
               e.verdict == CALLOUT_VERDICT_CHAIN_END;
    }));
    std::vector<uint32_t> chain, missing;
    for (auto& e : callout.events()) {
        if (e.verdict == CALLOUT_VERDICT_REDIRECT)
            chain.push_back(e.redirector_id);
        if (e.flags & CALLOUT_FLAG_RECORDS_MISSING)
            missing.push_back(e.pid);
    }
    QCOMPARE(chain, (std::vector<uint32_t>{2001, 2002}));
    QCOMPARE(missing, (std::vector<uint32_t>{uint32_t(a.child->pid()), uint32_t(b.child->pid())}));
    QCOMPARE(callout->stats()[CALLOUT_STAT_RECORDS_MISSING], uint64_t(2));
}

REDIRECT_KERNEL_TEST_MAIN(TestChain)
#include "tst_chain.moc"
