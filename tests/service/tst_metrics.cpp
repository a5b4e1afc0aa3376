// The service's Prometheus metrics as a scraper reads them: GET /metrics over a real socket,
// HELP and TYPE lines, each flow, hop and end counted once however many updates show it,
// absolute counters turned into increments, bounded labels, and clear errors for bad listen
// addresses. Prints the cost of observe() and the RSS the exposer adds.
#include <chrono>
#include <fstream>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QtTest>

#include "metrics.h"
#include "metrics_scrape.h"

using namespace redirect;
using redirect::service::Metrics;
using redirect::test::httpGet;
using redirect::test::parseExposition;

namespace {

engine::Hop hop(const std::string& redirector, uint64_t up, uint64_t down, double connectMs,
                engine::EndReason reason = engine::EndReason::Open)
{
    engine::Hop h;
    h.redirectorId = static_cast<uint32_t>(std::hash<std::string>()(redirector));
    h.redirector = redirector;
    h.connectMs = connectMs;
    h.bytesUp = up;
    h.bytesDown = down;
    h.startNs = 1;
    h.endNs = reason == engine::EndReason::Open ? 0 : 2;
    h.reason = reason;
    return h;
}

engine::Flow flow(uint64_t id, std::vector<engine::Hop> hops, engine::EndReason reason = engine::EndReason::Open)
{
    engine::Flow f;
    f.flowId = id;
    f.startNs = 1;
    f.endNs = reason == engine::EndReason::Open ? 0 : 3;
    f.reason = reason;
    f.verdict = "redirect";
    f.destination = "127.0.0.1:80";
    f.hops = std::move(hops);
    if (!f.hops.empty() && f.endNs) {
        f.bytesUp = f.hops[0].bytesUp;
        f.bytesDown = f.hops[0].bytesDown;
    }
    return f;
}

const std::string kFlowsA = R"(redirect_flows_total{redirector="A",verdict="redirect"})";
const std::string kUpA = R"(redirect_redirector_bytes_total{direction="up",redirector="A"})";
const std::string kDownA = R"(redirect_redirector_bytes_total{direction="down",redirector="A"})";
const std::string kUpB = R"(redirect_redirector_bytes_total{direction="up",redirector="B"})";
const std::string kDownB = R"(redirect_redirector_bytes_total{direction="down",redirector="B"})";

std::string scrapeText(const Metrics& m)
{
    auto reply = httpGet(m.port(), "/metrics");
    if (reply.status != 200)
        qWarning("GET /metrics: status %d %s", reply.status, reply.error.c_str());
    return reply.status == 200 ? reply.body : std::string();
}

std::map<std::string, double> scrape(const Metrics& m) { return parseExposition(scrapeText(m)); }

size_t seriesOf(const std::map<std::string, double>& samples, const std::string& name)
{
    size_t n = 0;
    for (auto& [series, value] : samples)
        n += series.rfind(name + "{", 0) == 0;
    return n;
}

long rssKiB()
{
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0)
            return std::stol(line.substr(6));
    return -1;
}

/// Resident KiB of the mappings of shared libraries whose path holds `part`.
long libraryRssKiB(const std::string& part)
{
    std::ifstream smaps("/proc/self/smaps");
    long total = 0;
    bool inside = false;
    for (std::string line; std::getline(smaps, line);) {
        if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' '))
            inside = line.find(part) != std::string::npos;
        else if (inside && line.rfind("Rss:", 0) == 0)
            total += std::stol(line.substr(4));
    }
    return total;
}

}  // namespace

class TestMetrics : public QObject {
    Q_OBJECT

private slots:
    void servesHelpAndTypeLines();
    void countsEachFlowHopAndEndOnce();
    void countersFromAbsoluteValues();
    void forgetsOldestOpenFlowsWithoutRecounting();
    void labelsStayBounded();
    void badListenAddresses_data();
    void badListenAddresses();
    void observeCostAndExposerRss();
};

void TestMetrics::servesHelpAndTypeLines()
{
    Metrics m("127.0.0.1:0");
    QVERIFY(m.port() != 0);
    m.observe({flow(1, {hop("A", 0, 0, -1)})});
    engine::RedirectorStatus a;
    a.id = "a";
    a.name = "A";
    m.refresh({}, {a}, {{"ra", {1, 0}}}, 0);
    std::string text = scrapeText(m);
    for (auto [name, type] : std::vector<std::pair<std::string, std::string>>{
             {"redirect_flows_total", "counter"},
             {"redirect_flows_active", "gauge"},
             {"redirect_flows_ended_total", "counter"},
             {"redirect_redirector_bytes_total", "counter"},
             {"redirect_hop_connect_duration_seconds", "histogram"},
             {"redirect_redirector_available", "gauge"},
             {"redirect_rule_hits_total", "counter"},
             {"redirect_callout_event_drops_total", "counter"},
             {"redirect_engine_queue_drops_total", "counter"},
             {"redirect_journal_drops_total", "counter"},
             {"redirect_flows_evicted_total", "counter"},
             {"redirect_udp_datagrams_dropped_total", "counter"}}) {
        QVERIFY2(text.find("\n# HELP " + name + " ") != std::string::npos, name.c_str());
        QVERIFY2(text.find("\n# TYPE " + name + " " + type + "\n") != std::string::npos, name.c_str());
    }
    QCOMPARE(parseExposition(text)[kFlowsA], 1.0);
    QCOMPARE(httpGet(m.port(), "/other").status, 404);
}

void TestMetrics::countsEachFlowHopAndEndOnce()
{
    using engine::EndReason;
    Metrics m("127.0.0.1:0");
    // Flow 1 is seen open, then with B's hop ended, then ended, then once more.
    m.observe({flow(1, {hop("A", 0, 0, -1), hop("B", 0, 0, -1)}), flow(1, {hop("A", 0, 0, -1), hop("B", 0, 0, -1)})});
    m.observe({flow(1, {hop("A", 0, 0, -1), hop("B", 100, 200, 0.5, EndReason::Closed)})});
    auto s = scrape(m);
    QCOMPARE(s[kFlowsA], 1.0);
    QCOMPARE(s[kUpB], 100.0);
    QCOMPARE(s[kUpA], 0.0);
    QCOMPARE(s[R"(redirect_flows_ended_total{reason="closed"})"], 0.0);
    auto ended1 = flow(1, {hop("A", 100, 200, 0.3, EndReason::Closed), hop("B", 100, 200, 0.5, EndReason::Closed)},
                       EndReason::Closed);
    m.observe({ended1, ended1});
    m.observe({ended1});
    // Flow 2's open updates were dropped: first seen ended. Flow 3's end never comes.
    m.observe({flow(2, {hop("A", 7, 0, 1.0, EndReason::Reset)}, EndReason::Reset), flow(3, {hop("A", 0, 0, -1)})});
    // An external proxy's hop has no byte counts or latency; a refused connect's time is no latency.
    auto external = hop("X", 0, 0, -1, EndReason::Closed);
    external.external = true;
    m.observe({flow(4, {external}, EndReason::Closed),
               flow(5, {hop("A", 0, 0, 5000, EndReason::Refused)}, EndReason::Refused)});

    s = scrape(m);
    QCOMPARE(s[kFlowsA], 4.0);  // 1, 2, 3, 5
    QCOMPARE(s[R"(redirect_flows_total{redirector="X",verdict="redirect"})"], 1.0);
    QCOMPARE(s[R"(redirect_flows_ended_total{reason="closed"})"], 2.0);
    QCOMPARE(s[R"(redirect_flows_ended_total{reason="reset"})"], 1.0);
    QCOMPARE(s[R"(redirect_flows_ended_total{reason="refused"})"], 1.0);
    QCOMPARE(s[kUpA], 107.0);
    QCOMPARE(s[kDownA], 200.0);
    QCOMPARE(s[kUpB], 100.0);
    QCOMPARE(s[kDownB], 200.0);
    QCOMPARE(s.count(R"(redirect_redirector_bytes_total{direction="up",redirector="X"})"), size_t(0));
    QCOMPARE(s[R"(redirect_hop_connect_duration_seconds_count{redirector="A"})"], 2.0);
    QCOMPARE(s[R"(redirect_hop_connect_duration_seconds_count{redirector="B"})"], 1.0);
    QVERIFY(std::abs(s[R"(redirect_hop_connect_duration_seconds_sum{redirector="A"})"] - 0.0013) < 1e-9);
    QCOMPARE(s[R"(redirect_hop_connect_duration_seconds_bucket{redirector="A",le="0.0005"})"], 1.0);
    QCOMPARE(s[R"(redirect_hop_connect_duration_seconds_bucket{redirector="A",le="0.001"})"], 2.0);
}

void TestMetrics::countersFromAbsoluteValues()
{
    Metrics m("127.0.0.1:0");
    auto redirector = [](const std::string& name, bool available) {
        engine::RedirectorStatus r;
        r.id = name;
        r.name = name;
        r.available = available;
        return r;
    };
    engine::EngineStats stats;
    stats.openFlows = 3;
    auto forgetful = redirector("C", true);  // a proxy that does not call SET
    forgetful.recordsMissing = 4;
    stats.queueDrops = 5;
    stats.evicted = 10;
    stats.udpDropped = 7;
    stats.callout.values[CALLOUT_STAT_EVENT_DROPS] = 2;
    m.refresh(stats, {redirector("A", true), redirector("B", false), forgetful}, {{"ra", {3, 1}}}, 1);
    auto s = scrape(m);
    QCOMPARE(s[R"(redirect_redirector_records_missing_total{redirector="C"})"], 4.0);
    QCOMPARE(s[R"(redirect_redirector_records_missing_total{redirector="A"})"], 0.0);
    QCOMPARE(s["redirect_flows_active"], 3.0);
    QCOMPARE(s["redirect_engine_queue_drops_total"], 5.0);
    QCOMPARE(s["redirect_flows_evicted_total"], 10.0);
    QCOMPARE(s["redirect_udp_datagrams_dropped_total"], 7.0);
    QCOMPARE(s["redirect_callout_event_drops_total"], 2.0);
    QCOMPARE(s["redirect_journal_drops_total"], 1.0);
    QCOMPARE(s[R"(redirect_rule_hits_total{action="redirected",rule="ra"})"], 3.0);
    QCOMPARE(s[R"(redirect_rule_hits_total{action="bypassed",rule="ra"})"], 1.0);
    QCOMPARE(s[R"(redirect_redirector_available{redirector="A"})"], 1.0);
    QCOMPARE(s[R"(redirect_redirector_available{redirector="B"})"], 0.0);
    QCOMPARE(s.count(kUpB), size_t(1));  // known redirectors' series exist before their first byte
    QCOMPARE(s.count(R"(redirect_flows_total{redirector="B",verdict="redirect"})"), size_t(1));

    // Later values add their growth; a value that went back (the engine restarted) adds itself.
    stats.openFlows = 0;
    stats.queueDrops = 7;
    stats.evicted = 4;
    stats.udpDropped = 9;
    forgetful.recordsMissing = 6;
    m.refresh(stats, {redirector("A", true), forgetful}, {{"ra", {5, 1}}}, 1);
    m.refresh(stats, {redirector("A", true), forgetful}, {{"ra", {5, 1}}}, 1);
    s = scrape(m);
    QCOMPARE(s[R"(redirect_redirector_records_missing_total{redirector="C"})"], 6.0);
    QCOMPARE(s["redirect_flows_active"], 0.0);
    QCOMPARE(s["redirect_engine_queue_drops_total"], 7.0);
    QCOMPARE(s["redirect_flows_evicted_total"], 14.0);
    QCOMPARE(s["redirect_udp_datagrams_dropped_total"], 9.0);
    QCOMPARE(s["redirect_journal_drops_total"], 1.0);
    QCOMPARE(s[R"(redirect_rule_hits_total{action="redirected",rule="ra"})"], 5.0);
    QCOMPARE(s.count(R"(redirect_redirector_available{redirector="B"})"), size_t(0));  // gone from the rules
    QCOMPARE(s.count(kUpB), size_t(1));  // its counters stay
}

void TestMetrics::forgetsOldestOpenFlowsWithoutRecounting()
{
    // Flows whose end update was lost stay "open" here: beyond the cap the oldest are forgotten,
    // and when their ends do come they are neither counted again nor counted as ended.
    constexpr uint64_t kFlows = 70000, kRemembered = 1 << 16;
    Metrics m("127.0.0.1:0");
    std::vector<engine::Flow> batch;
    for (uint64_t id = 1; id <= kFlows; ++id)
        batch.push_back(flow(id, {hop("A", 0, 0, -1)}));
    m.observe(batch);
    batch.clear();
    for (uint64_t id = 1; id <= kFlows; ++id)
        batch.push_back(flow(id, {hop("A", 1, 1, 0.1, engine::EndReason::Closed)}, engine::EndReason::Closed));
    m.observe(batch);
    auto s = scrape(m);
    QCOMPARE(s[kFlowsA], double(kFlows));
    QCOMPARE(s[R"(redirect_flows_ended_total{reason="closed"})"], double(kRemembered));
    QCOMPARE(s[kUpA], double(kRemembered));
}

void TestMetrics::labelsStayBounded()
{
    Metrics m("127.0.0.1:0");
    std::vector<engine::Flow> flows;
    std::map<std::string, engine::RuleHits> hits;
    for (int i = 0; i < 300; ++i) {
        std::string name = "r" + std::to_string(i);
        flows.push_back(flow(uint64_t(i + 1), {hop(name, 1, 1, 0.1, engine::EndReason::Closed)}, engine::EndReason::Closed));
        hits[name] = {1, 0};
    }
    m.observe(flows);
    m.refresh({}, {}, hits, 0);
    auto s = scrape(m);
    QCOMPARE(seriesOf(s, "redirect_redirector_bytes_total"), size_t(2 * 257));  // 256 names and "other"
    QCOMPARE(s[R"(redirect_flows_total{redirector="other",verdict="redirect"})"], 300.0 - 256);
    QCOMPARE(s[R"(redirect_redirector_bytes_total{direction="up",redirector="other"})"], 300.0 - 256);
    QCOMPARE(seriesOf(s, "redirect_rule_hits_total"), size_t(2 * 256));
}

void TestMetrics::badListenAddresses_data()
{
    QTest::addColumn<QString>("address");
    QTest::addColumn<QString>("reason");
    QTest::newRow("no port") << "127.0.0.1" << "expected IPv4-address:port";
    QTest::newRow("not an address") << "bogus:80" << "is not an IPv4 address";
    QTest::newRow("port too big") << "127.0.0.1:65536" << "is not a port";
    QTest::newRow("port not a number") << "127.0.0.1:80x" << "is not a port";
    QTest::newRow("empty") << "" << "expected IPv4-address:port";
    QTest::newRow("ipv6") << "[::1]:0" << "IPv6 is not supported";
    QTest::newRow("not local") << "192.0.2.1:9464" << "Cannot assign requested address";
    QTest::newRow("in use") << "in use" << "Address already in use";
}

void TestMetrics::badListenAddresses()
{
    QFETCH(QString, address);
    QFETCH(QString, reason);
    int holder = -1;
    std::string listen = address.toStdString();
    if (address == "in use") {
        holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sin);
        QCOMPARE(::bind(holder, reinterpret_cast<sockaddr*>(&sin), len), 0);
        QCOMPARE(::listen(holder, 1), 0);
        ::getsockname(holder, reinterpret_cast<sockaddr*>(&sin), &len);
        listen = "127.0.0.1:" + std::to_string(ntohs(sin.sin_port));
    }
    std::string error;
    try {
        Metrics m(listen);
        error = "no error; serving on port " + std::to_string(m.port());
    } catch (const std::runtime_error& e) {
        error = e.what();
    }
    if (holder >= 0)
        ::close(holder);
    QVERIFY2(error.find("'" + listen + "'") != std::string::npos, error.c_str());
    QVERIFY2(error.find(reason.toStdString()) != std::string::npos, error.c_str());
}

void TestMetrics::observeCostAndExposerRss()
{
    long before = rssKiB();
    Metrics m("127.0.0.1:0");
    QVERIFY(!scrapeText(m).empty());
    long withExposer = rssKiB();

    // Each flow as the engine publishes it: opened, its second hop ended, ended.
    constexpr uint64_t kFlows = 100000;
    std::vector<std::vector<engine::Flow>> batches(1);
    for (uint64_t id = 1; id <= kFlows; ++id) {
        auto b = hop("B", 0, 0, -1);
        batches.back().push_back(flow(id, {hop("A", 0, 0, -1), b}));
        b = hop("B", 1000, 2000, 0.05, engine::EndReason::Closed);
        batches.back().push_back(flow(id, {hop("A", 0, 0, -1), b}));
        batches.back().push_back(flow(id, {hop("A", 1000, 2000, 0.04, engine::EndReason::Closed), b},
                                      engine::EndReason::Closed));
        if (batches.back().size() >= 999)
            batches.emplace_back();
    }
    size_t updates = 0;
    long beforeFlows = rssKiB();
    auto start = std::chrono::steady_clock::now();
    for (auto& batch : batches) {
        m.observe(batch);
        updates += batch.size();
    }
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    long afterFlows = rssKiB();
    auto s = scrape(m);
    QCOMPARE(s[kFlowsA], double(kFlows));
    QCOMPARE(s[kDownB], 2000.0 * kFlows);
    qInfo("observe(): %.1f us per 1,000 updates (%zu updates, 3 per flow, 2 hops each)", ns / 1000.0 / (updates / 1000.0),
          updates);
    // Run this function alone for the exposer's share (earlier functions leave freed memory behind).
    qInfo("RSS: exposer + registry + first scrape %ld KiB, civetweb and prometheus-cpp libraries resident %ld KiB; "
          "%llu flows observed (65,536 ended ids remembered) %ld KiB more",
          withExposer - before, libraryRssKiB("civetweb") + libraryRssKiB("prometheus-cpp"),
          static_cast<unsigned long long>(kFlows), afterFlows - beforeFlows);
}

QTEST_APPLESS_MAIN(TestMetrics)
#include "tst_metrics.moc"
