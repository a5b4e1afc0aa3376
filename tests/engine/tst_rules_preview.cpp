// The dry run of a rule change against reality: connections of three "processes" (threads named
// curl, wget and the test itself) to three ports go through the engine under one rule set; the
// dry run predicts, for each, its route under the running set and under a proposed one; the
// proposed set is applied and the same connections are made again. Every prediction must be what
// the callout then did, connection by connection.
#include <sys/prctl.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "engine.h"
#include "kernel_test.h"
#include "rules_preview.h"

using namespace redirect;
using namespace redirect::test;

namespace {

engine::RuleSet rulesFor(const std::string& text)
{
    engine::RulesResult r = engine::parseRules(text);
    if (!r.ok())
        qFatal("rules: %s", r.error.str().c_str());
    return r.rules;
}

// Accepts and closes: the route is decided at connect(); no bytes are needed.
class Sink {
public:
    Sink() : fd_(listenLoopback(AF_INET, &port_))
    {
        thread_ = std::thread([this] {
            for (int c; (c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;)
                ::close(c);
        });
    }
    ~Sink()
    {
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
    }
    uint16_t port() const { return port_; }

private:
    uint16_t port_ = 0;
    int fd_;
    std::thread thread_;
};

// One connection from a thread that carries `comm` (the callout reads the thread's name).
void connectAs(const std::string& comm, uint16_t port)
{
    std::thread([&] {
        if (!comm.empty())
            ::prctl(PR_SET_NAME, comm.c_str());
        int fd = connectLoopback(AF_INET, port);
        if (fd >= 0) {
            char byte;
            while (::read(fd, &byte, 1) > 0) {
            }
            ::close(fd);
        }
    }).join();
}

engine::PredictedRoute observed(const engine::Flow& f)
{
    engine::PredictedRoute r;
    r.verdict = f.verdict;
    r.rule = f.rule;
    for (const engine::Hop& hop : f.hops)
        if (hop.redirectorId != 0)
            r.chain.push_back(hop.redirector);
    return r;
}

std::string portOf(const std::string& destination) { return destination.substr(destination.rfind(':') + 1); }

}  // namespace

class TestRulesPreview : public QObject {
    Q_OBJECT
private slots:
    void predictionsAreWhatTheCalloutDoes();
};

void TestRulesPreview::predictionsAreWhatTheCalloutDoes()
{
    Sink s1, s2, s3;
    const std::string p1 = std::to_string(s1.port()), p2 = std::to_string(s2.port()), p3 = std::to_string(s3.port());
    engine::EngineOptions o;
    o.cgroup = sandbox().cgroup();
    o.instance = instanceName();
    o.workers = 1;
    o.repairOwnRecords = false;  // the test process is also the application
    engine::Engine eng(o);
    const std::string redirectors = R"("redirectors":[{"id":"a","name":"A"},{"id":"b","name":"B"}])";
    QVERIFY(eng.applyRules(rulesFor(R"({"version":1,)" + redirectors + R"(,"rules":[
      {"id":"ra","action":"redirect","redirector":"a","ports":")" + p1 + R"("},
      {"id":"rb","action":"redirect","redirector":"b","ports":")" + p1 + "," + p2 + R"("}]})"))
                .message.empty());
    // The proposal: a bypass for curl, A moves from p1 to p2, a process rule for wget on p3.
    const engine::RuleSet proposed = rulesFor(R"({"version":1,)" + redirectors + R"(,"rules":[
      {"id":"by","action":"bypass","process":"curl"},
      {"id":"ra","action":"redirect","redirector":"a","ports":")" + p2 + R"("},
      {"id":"rb","action":"redirect","redirector":"b","ports":")" + p1 + "," + p2 + R"("},
      {"id":"rw","action":"redirect","redirector":"a","process":"wget","ports":")" + p3 + R"("}]})");

    const std::vector<std::string> comms = {"curl", "wget", ""};  // "": the test's own name
    const std::vector<uint16_t> ports = {s1.port(), s2.port(), s3.port()};
    auto run = [&] {
        for (const std::string& comm : comms)
            for (uint16_t port : ports)
                connectAs(comm, port);
    };
    auto collect = [&](size_t count) {
        std::map<std::pair<std::string, std::string>, engine::Flow> byCase;  // (comm, port) -> flow
        std::vector<engine::Flow> batch;
        for (int i = 0; i < 500 && byCase.size() < count; ++i) {
            batch.clear();
            eng.drainFlows(batch);
            for (engine::Flow& f : batch)
                if (f.endNs)
                    byCase[{f.comm, portOf(f.destination)}] = f;
            if (byCase.size() < count)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return byCase;
    };

    run();
    const auto before = collect(comms.size() * ports.size());
    QCOMPARE(before.size(), comms.size() * ports.size());
    std::vector<engine::Flow> seen;
    for (auto& [key, f] : before)
        seen.push_back(f);

    std::string error;
    const engine::ConnectIdentity self = engine::ownIdentity();
    auto now = engine::RoutePredictor::make(eng.rules(), self, &error);
    auto next = engine::RoutePredictor::make(proposed, self, &error);
    QVERIFY2(now && next, error.c_str());
    std::optional<engine::RulesPreview> preview = engine::previewRules(eng.rules(), proposed, seen, 0, 100, self, &error);
    QVERIFY2(preview, error.c_str());
    QCOMPARE(preview->considered, seen.size());

    // What the running rules did is what the predictor says they do.
    size_t changes = 0;
    for (const engine::Flow& f : seen) {
        QCOMPARE(now->predict(f), observed(f));
        changes += next->predict(f) == observed(f) ? 0 : 1;
    }
    QCOMPARE(preview->changed, changes);
    QVERIFY(changes >= 4);  // the proposal is not a no-op: the comparison below means something

    QVERIFY(eng.applyRules(proposed).message.empty());
    run();
    const auto after = collect(comms.size() * ports.size() * 2);  // the replays replace the first flows
    QCOMPARE(after.size(), comms.size() * ports.size());
    for (auto& [key, f] : after) {
        auto was = before.find(key);
        QVERIFY(was != before.end());
        QVERIFY2(f.flowId != was->second.flowId, "a replay is a new connection");
        const engine::PredictedRoute predicted = next->predict(was->second), real = observed(f);
        QVERIFY2(predicted == real, qPrintable(QStringLiteral("%1 to %2: predicted %3 (%4), real %5 (%6)")
                                                   .arg(QString::fromStdString(key.first), QString::fromStdString(key.second),
                                                        QString::fromStdString(predicted.text()),
                                                        QString::fromStdString(predicted.rule),
                                                        QString::fromStdString(real.text()),
                                                        QString::fromStdString(real.rule))));
    }
}

REDIRECT_KERNEL_TEST_MAIN(TestRulesPreview)
#include "tst_rules_preview.moc"
