// Debian's real Prometheus server scrapes the service's metrics in the sandbox: real flows
// through a chain of two of our redirectors, drained from a real engine into Metrics, and
// Prometheus' query API returns exactly the flows made and the bytes sent through the chain.
#include <fstream>
#include <functional>
#include <optional>
#include <set>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>

#include "engine.h"
#include "fd_handle.h"
#include "kernel_test.h"
#include "metrics.h"
#include "metrics_scrape.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;
using engine::FdHandle;

namespace {

/// A prometheus server of its own (config and storage in `dir`), stopped by pid when it goes
/// out of scope, however the test ended: SIGTERM, then SIGKILL if it has not exited in 10 s.
class PrometheusServer {
public:
    PrometheusServer(const QTemporaryDir& dir, uint16_t target) : dir_(dir.path().toStdString())
    {
        std::ofstream(dir_ + "/prometheus.yml") << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                                                   "scrape_configs:\n  - job_name: redirect\n    static_configs:\n"
                                                   "      - targets: ['127.0.0.1:" +
                                                       std::to_string(target) + "']\n";
        // Prometheus cannot listen on port 0: take a free port and let it go just before. Only
        // this test's namespace could take it in between; if something did, try another one.
        for (int attempt = 0; attempt < 3 && !ready_; ++attempt) {
            port_ = freePort();
            std::string command = "exec prometheus --config.file='" + dir_ + "/prometheus.yml' --storage.tsdb.path='" +
                                  dir_ + "/data' --web.listen-address=127.0.0.1:" + std::to_string(port_) +
                                  " --log.level=warn 2>>'" + dir_ + "/prometheus.log'";
            child_ = std::make_unique<Child>(std::vector<std::string>{"/bin/sh", "-c", command});
            auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
            while (!ready_ && std::chrono::steady_clock::now() < deadline && child_->wait(0) == -1) {
                ready_ = httpGet(port_, "/-/ready", 1000).status == 200;
                if (!ready_)
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            if (!ready_)
                stop();
        }
    }
    ~PrometheusServer() { stop(); }

    bool ready() const { return ready_; }
    uint16_t port() const { return port_; }
    std::string log() const
    {
        std::ifstream in(dir_ + "/prometheus.log");
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    /// The value of an instant query with one result; nothing while there is none.
    std::optional<double> query(const std::string& expr, std::string* error = nullptr) const
    {
        HttpReply reply = httpGet(port_, "/api/v1/query?query=" + urlEncoded(expr));
        QJsonObject root = QJsonDocument::fromJson(QByteArray::fromStdString(reply.body)).object();
        QJsonArray result = root["data"].toObject()["result"].toArray();
        if (reply.status != 200 || root["status"].toString() != "success" || result.size() != 1) {
            if (error)
                *error = "status " + std::to_string(reply.status) + " " + reply.error + " " + reply.body;
            return std::nullopt;
        }
        return result[0].toObject()["value"].toArray()[1].toString().toDouble();
    }

    /// Queries until `expr` has the value `expected` (Prometheus scrapes every second), bounded by
    /// 30 s; the last value seen, nothing when there was none.
    std::optional<double> waitFor(const std::string& expr, double expected, std::string* error) const
    {
        std::optional<double> v;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (v != expected && std::chrono::steady_clock::now() < deadline) {
            v = query(expr, error);
            if (v != expected)
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        return v;
    }

private:
    static uint16_t freePort()
    {
        uint16_t port = 0;
        int fd = listenLoopback(AF_INET, &port);
        if (fd >= 0)
            ::close(fd);
        return port;
    }
    void stop()
    {
        if (!child_)
            return;
        child_->kill(SIGTERM);
        if (child_->wait(10000) == -1) {
            child_->kill(SIGKILL);
            child_->wait(5000);
        }
        child_.reset();
    }

    std::string dir_;
    uint16_t port_ = 0;
    bool ready_ = false;
    std::unique_ptr<Child> child_;
};

engine::RuleSet chainRules(uint16_t port)
{
    std::string p = std::to_string(port);
    engine::RulesResult r = engine::parseRules(
        R"({"version":1,"redirectors":[{"id":"a","name":"A"},{"id":"b","name":"B"}],"rules":[
        {"id":"ra","action":"redirect","redirector":"a","ports":")" +
        p + R"("},{"id":"rb","action":"redirect","redirector":"b","ports":")" + p + R"("}]})");
    if (!r.ok())
        qFatal("rules: %s", r.error.str().c_str());
    return r.rules;
}

bool sendAll(int fd, size_t bytes)
{
    std::string data(bytes, 'u');
    size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        sent += static_cast<size_t>(n);
    }
    return true;
}

size_t readToEnd(int fd)
{
    size_t got = 0;
    char buf[8192];
    for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
        got += static_cast<size_t>(n);
    return got;
}

}  // namespace

class TestMetricsPrometheus : public QObject {
    Q_OBJECT

private slots:
    void prometheusScrapesFlowsAndBytes();
    void prometheusScrapesTheService();
};

void TestMetricsPrometheus::prometheusScrapesFlowsAndBytes()
{
    constexpr int kFlows = 20;
    constexpr size_t kRequest = 3000, kReply = 5000;
    TcpServer server(AF_INET, std::string(kReply, 'd'), kRequest);
    engine::EngineOptions o;
    o.cgroup = sandbox().cgroup();
    o.instance = instanceName();
    o.workers = 2;
    o.repairOwnRecords = false;  // the test process is also the application
    engine::Engine eng(o);
    QVERIFY(eng.applyRules(chainRules(server.port())).message.empty());
    service::Metrics metrics("127.0.0.1:0");

    // What the service does: drain flow updates, and refresh the engine's state now and then.
    std::set<uint64_t> seen, ended;
    auto drainUntil = [&](const std::function<bool()>& done) {
        std::vector<engine::Flow> batch;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            batch.clear();
            eng.drainFlows(batch);
            metrics.observe(batch);
            for (const auto& f : batch) {
                seen.insert(f.flowId);
                if (f.endNs)
                    ended.insert(f.flowId);
            }
            metrics.refresh(eng.stats(), eng.redirectors(), eng.ruleHits(), 0);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    };
    // Every flow is seen open before it ends, so each appears in several updates.
    std::vector<FdHandle> clients;
    for (int i = 0; i < kFlows; ++i) {
        clients.emplace_back(connectLoopback(AF_INET, server.port()));
        QVERIFY(clients.back().valid());
        QVERIFY(sendAll(clients.back().fd(), kRequest / 2));
    }
    drainUntil([&] { return seen.size() == size_t(kFlows); });
    QCOMPARE(seen.size(), size_t(kFlows));
    QVERIFY(ended.empty());
    uint64_t sent = kFlows * (kRequest / 2);
    for (auto& client : clients) {
        QVERIFY(sendAll(client.fd(), kRequest - kRequest / 2));
        sent += kRequest - kRequest / 2;
        QCOMPARE(readToEnd(client.fd()), kReply);
        client = FdHandle();
    }
    drainUntil([&] { return ended.size() == size_t(kFlows); });
    QCOMPARE(ended.size(), size_t(kFlows));
    QCOMPARE(seen.size(), size_t(kFlows));
    QCOMPARE(eng.stats().queueDrops, uint64_t(0));  // else the exact counts below could not hold
    metrics.refresh(eng.stats(), eng.redirectors(), eng.ruleHits(), 0);

    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    PrometheusServer prometheus(dir, metrics.port());
    QVERIFY2(prometheus.ready(), prometheus.log().c_str());
    // Prometheus scrapes every second: wait (bounded) for a scrape that has our flows.
    std::string error;
    std::optional<double> flows =
        prometheus.waitFor(R"(redirect_flows_total{verdict="redirect",redirector="A"})", kFlows, &error);
    QVERIFY2(flows.has_value(), (error + "\n" + prometheus.log()).c_str());
    QCOMPARE(*flows, double(kFlows));
    // The same scrape holds everything else; each query must return exactly one series.
    auto value = [&](const std::string& expr) { return prometheus.query(expr, &error).value_or(-1); };
    QCOMPARE(value("sum(redirect_flows_total)"), double(kFlows));
    QCOMPARE(value(R"(redirect_flows_ended_total{reason="closed"})"), double(kFlows));
    QCOMPARE(value("redirect_flows_active"), 0.0);
    for (std::string r : {"A", "B"}) {
        std::string labels = "redirector=\"" + r + "\"";
        QCOMPARE(value("redirect_redirector_bytes_total{direction=\"up\"," + labels + "}"), double(sent));
        QCOMPARE(value("redirect_redirector_bytes_total{direction=\"down\"," + labels + "}"), double(kFlows * kReply));
        QCOMPARE(value("redirect_hop_connect_duration_seconds_count{" + labels + "}"), double(kFlows));
        QCOMPARE(value("redirect_redirector_available{" + labels + "}"), 1.0);
    }
    QCOMPARE(value(R"(redirect_rule_hits_total{rule="ra",action="redirected"})"), double(kFlows));
    QCOMPARE(value("redirect_engine_queue_drops_total"), 0.0);
    QCOMPARE(sent, uint64_t(kFlows * kRequest));
}

// The same through the service's own flag: redirect-consoled --metrics, scraped by a real Prometheus.
void TestMetricsPrometheus::prometheusScrapesTheService()
{
    constexpr int kFlows = 5;
    TcpServer server(AF_INET, "pong\n", 1);
    uint16_t metricsPort = 0;
    {
        FdHandle reserved(reservePort(AF_INET, &metricsPort));  // a free port, let go just before
        QVERIFY(reserved.valid());
    }
    ServiceUnderTest service(server.port(), {"--metrics", "127.0.0.1:" + std::to_string(metricsPort)});
    QVERIFY2(service.ready(), "the service's API never answered");
    for (int i = 0; i < kFlows; ++i) {
        Exchange x = exchange(server, server.port());
        QVERIFY(x.answered && !x.direct);
    }
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    PrometheusServer prometheus(dir, metricsPort);
    QVERIFY2(prometheus.ready(), prometheus.log().c_str());
    std::string error;
    std::optional<double> flows =
        prometheus.waitFor(R"(redirect_flows_total{verdict="redirect",redirector="Inspector"})", kFlows, &error);
    QVERIFY2(flows.has_value(), (error + "\n" + prometheus.log()).c_str());
    QCOMPARE(*flows, double(kFlows));
}

REDIRECT_KERNEL_TEST_MAIN(TestMetricsPrometheus)
#include "tst_metrics_prometheus.moc"
