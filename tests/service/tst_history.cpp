// The service's flow history (app/service/flow_history.h) with a real service in the test's sandbox
// and real connections through it: flows outlive a restart and come back through QueryHistory and
// in a report made from them; retention removes the oldest first, by age and by size; a SIGKILL in
// the middle of a stream of flows leaves a sound database with everything committed before; and a
// database that cannot be used is said clearly, changes nothing, and the service redirects on.
// The file is inspected with the real SQLite library.
#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include <sqlite3.h>
#include <sys/stat.h>

#include <QAbstractItemModelTester>
#include <QtTest>

#include "engine_bridge.h"
#include "flow_history.h"
#include "flow_model.h"
#include "node_client.h"
#include "output_file.h"
#include "redirector.h"
#include "report_read.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;
using client::NodeClient;

namespace {

constexpr int64_t kDayNs = 86400LL * 1'000'000'000;

// The test's own view of a history file, through SQLite itself.
class Db {
public:
    explicit Db(const std::string& path)
    {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
            error_ = db_ ? sqlite3_errmsg(db_) : "no memory";
    }
    ~Db() { sqlite3_close_v2(db_); }
    const std::string& error() const { return error_; }
    std::string text(const char* sql) const
    {
        sqlite3_stmt* s = nullptr;
        std::string out = "(failed)";
        if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
            out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        return out;
    }
    int64_t number(const char* sql) const { return std::stoll(text(sql)); }
    /// flow_id of every row, in end-time order.
    std::vector<uint64_t> flowIds() const
    {
        std::vector<uint64_t> ids;
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(db_, "SELECT flow_id FROM flows ORDER BY end_ns, id", -1, &s, nullptr) == SQLITE_OK)
            while (sqlite3_step(s) == SQLITE_ROW)
                ids.push_back(uint64_t(sqlite3_column_int64(s, 0)));
        sqlite3_finalize(s);
        return ids;
    }
    /// The database's size as SQLite counts it (the pages, committed WAL frames included).
    int64_t bytes() const { return number("PRAGMA page_count") * number("PRAGMA page_size"); }

private:
    sqlite3* db_ = nullptr;
    std::string error_;
};

// Flows the test puts into a history before a service opens it: ends where the test wants them.
engine::Flow syntheticFlow(uint64_t id, int64_t endNs)
{
    engine::Flow f;
    f.flowId = id;
    f.startNs = endNs - 1'000'000;
    f.endNs = endNs;
    f.comm = "prefill";
    f.destination = "192.0.2.1:443";
    f.verdict = "redirect";
    f.reason = engine::EndReason::Closed;
    engine::Hop hop;
    hop.redirectorId = 1;
    hop.redirector = "Inspector";
    hop.records.assign(64, uint8_t(id));
    hop.context.assign(256, uint8_t(id >> 8));
    hop.recordsSize = 64;
    hop.contextSize = 256;
    f.hops.push_back(hop);
    return f;
}

bool prefill(const std::string& path, const std::vector<engine::Flow>& flows, std::string* error)
{
    auto history = service::FlowHistory::open({path, 36500, 1 << 20}, error);
    if (!history)
        return false;
    history->add(flows);
    history->flush();
    if (history->written() == flows.size())
        return true;
    *error = "prefill: " + std::to_string(history->written()) + " of " + std::to_string(flows.size()) + " written, " +
             std::to_string(history->dropped()) + " dropped";
    return false;
}

std::vector<engine::Flow> toDestination(const std::vector<engine::Flow>& flows, const std::string& destination)
{
    std::vector<engine::Flow> out;
    std::copy_if(flows.begin(), flows.end(), std::back_inserter(out),
                 [&](const engine::Flow& f) { return f.destination == destination; });
    return out;
}

std::set<uint64_t> idsOf(const std::vector<engine::Flow>& flows)
{
    std::set<uint64_t> ids;
    for (const engine::Flow& f : flows)
        ids.insert(f.flowId);
    return ids;
}

bool includes(const std::set<uint64_t>& all, const std::set<uint64_t>& part)
{
    return std::includes(all.begin(), all.end(), part.begin(), part.end());
}

NodeClient::History everything(NodeClient& node) { return node.queryHistory(0, 0); }

}  // namespace

class TestHistory : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { QVERIFY(dir_.isValid()); }
    void flowsOutliveARestartAndMakeAReport();
    void bridgeQueryBecomesRows();
    void ageRetentionRemovesTheOldest();
    void sizeRetentionRemovesTheOldest();
    void sigkillWhileWritingKeepsWhatWasCommitted();
    void unusableDatabaseIsSaidAndLeftAlone_data();
    void unusableDatabaseIsSaidAndLeftAlone();

private:
    std::string file(const std::string& name) const { return dir_.filePath(QString::fromStdString(name)).toStdString(); }
    QTemporaryDir dir_;
};

void TestHistory::flowsOutliveARestartAndMakeAReport()
{
    TcpServer server(AF_INET, "pong\n", 1);
    const std::string destination = "127.0.0.1:" + std::to_string(server.port());
    const std::string path = file("restart.sqlite");
    std::set<uint64_t> before;
    {
        ServiceUnderTest service(server.port(), {"--history", path});
        QVERIFY2(service.ready(), "the service's API never answered");
        QVERIFY(eventually(server, false));
        for (int i = 0; i < 3; ++i)
            QVERIFY(exchange(server, server.port()).answered);
        NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
        QTRY_VERIFY_WITH_TIMEOUT(toDestination(everything(node).flows, destination).size() >= 4, 20000);
        before = idsOf(toDestination(everything(node).flows, destination));
    }  // SIGTERM: the service stops as it does under systemd
    ServiceUnderTest service(server.port(), {"--history", path});
    QVERIFY2(service.ready(), "the restarted service's API never answered");
    NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
    const NodeClient::History all = everything(node);
    QVERIFY2(all.ok, all.error.c_str());
    const std::vector<engine::Flow> flows = toDestination(all.flows, destination);
    QVERIFY2(includes(idsOf(flows), before), "flows of the first run are missing after the restart");
    for (const engine::Flow& f : flows) {
        QVERIFY(f.endNs >= f.startNs && f.startNs > 0);
        QCOMPARE(f.chainText(), "app -> Inspector -> " + destination);  // hops are kept
    }
    struct stat st {};
    QVERIFY(::stat(path.c_str(), &st) == 0);
    QCOMPARE(st.st_mode & 0777, mode_t(0600));  // process names and destinations: root's only
    QVERIFY(std::is_sorted(all.flows.begin(), all.flows.end(),
                           [](const engine::Flow& a, const engine::Flow& b) { return a.endNs < b.endNs; }));

    // Pages: one flow, then the rest after its cursor; together the whole answer, in order.
    const NodeClient::History first = node.queryHistory(0, 0, 1);
    QVERIFY2(first.ok && first.flows.size() == 1 && !first.cursor.empty(), first.error.c_str());
    const NodeClient::History rest = node.queryHistory(0, 0, 0, first.cursor);
    QVERIFY2(rest.ok, rest.error.c_str());
    QCOMPARE(rest.flows.size() + 1, all.flows.size());
    QCOMPARE(first.flows[0].flowId, all.flows[0].flowId);
    QCOMPARE(rest.flows.back().flowId, all.flows.back().flowId);
    // A range that ends before the first flow started holds none of them; a range around them all.
    const int64_t firstStart = std::min_element(flows.begin(), flows.end(), [](auto& a, auto& b) {
                                   return a.startNs < b.startNs;
                               })->startNs;
    QVERIFY(toDestination(node.queryHistory(1, firstStart - 1).flows, destination).empty());
    QVERIFY(includes(idsOf(node.queryHistory(firstStart, engine::wallNowNs()).flows), before));
    // Bad input: a clear refusal.
    NodeClient::History bad = node.queryHistory(2000, 1000);
    QVERIFY(!bad.ok);
    QVERIFY2(bad.error.find("the time range ends before it starts") != std::string::npos, bad.error.c_str());
    bad = node.queryHistory(0, 0, 0, "not-a-cursor");
    QVERIFY2(!bad.ok && bad.error.find("is not a cursor this node gave") != std::string::npos, bad.error.c_str());

    // A report made from the history holds them, read back by the console's reader.
    const std::string report = file("from-history.json");
    std::string error;
    QVERIFY2(engine::writeWholeFile(
                 report, [&](std::ostream& out) { return engine::writeReport(out, engine::ReportFormat::Json, all.flows, {}, {}); },
                 &error),
             error.c_str());
    const engine::ReportReadResult read = engine::readReportFile(report);
    QVERIFY2(read.ok(), read.error.c_str());
    QVERIFY(includes(idsOf(read.report.flows), before));
}

// The console's bridge: the selected node's history as rows of a model of the caller's, the same rows
// the live table makes of the flow stream (node column included); a node without history says why.
void TestHistory::bridgeQueryBecomesRows()
{
    TcpServer server(AF_INET, "pong\n", 1);
    const std::string destination = "127.0.0.1:" + std::to_string(server.port());
    ServiceUnderTest service(server.port(), {"--history", file("bridge.sqlite")});
    QVERIFY2(service.ready(), "the service's API never answered");
    QVERIFY(eventually(server, false));
    QVERIFY(exchange(server, server.port()).answered);
    NodeClient direct({"local", "unix:" + service.socket(), {}, {}, {}});
    QTRY_VERIFY_WITH_TIMEOUT(toDestination(everything(direct).flows, destination).size() >= 2, 20000);
    const NodeClient::History expected = everything(direct);

    gui::FlowModel live;
    gui::EngineBridge bridge(&live, nullptr, {});
    QString error;
    QVERIFY2(bridge.addNode({"local", "unix:" + service.socket(), {}, {}, {}}, &error), qPrintable(error));
    gui::FlowModel history;
    QAbstractItemModelTester tester(&history, QAbstractItemModelTester::FailureReportingMode::QtTest);
    int answers = 0;
    bool ok = false;
    bridge.queryHistory(0, 0, 0, &history, [&](bool success, const QString& why) {
        ++answers;
        ok = success;
        error = why;
    });
    QTRY_COMPARE_WITH_TIMEOUT(answers, 1, 20000);
    QVERIFY2(ok, qPrintable(error));
    QVERIFY(history.rowCount() >= int(expected.flows.size()));
    int ours = 0;
    for (int row = 0; row < history.rowCount(); ++row) {
        const auto flow = history.flowSummary(row);
        QVERIFY(flow && flow->endNs != 0);
        if (flow->destination != destination)
            continue;
        ++ours;
        QCOMPARE(history.data(history.index(row, gui::FlowModel::Chain)).toString(),
                 QString::fromStdString("Inspector → " + destination));
        QCOMPARE(history.data(history.index(row, gui::FlowModel::Node)).toString(), QStringLiteral("local"));
    }
    QVERIFY(ours >= int(toDestination(expected.flows, destination).size()));

    // A range the node refuses: the reason comes back, the model is left as it was.
    const int rows = history.rowCount();
    bridge.queryHistory(2000, 1000, 0, &history, [&](bool success, const QString& why) {
        ++answers;
        ok = success;
        error = why;
    });
    QTRY_COMPARE_WITH_TIMEOUT(answers, 2, 20000);
    QVERIFY(!ok);
    QVERIFY2(error.contains(QStringLiteral("the time range ends before it starts")), qPrintable(error));
    QCOMPARE(history.rowCount(), rows);
}

void TestHistory::ageRetentionRemovesTheOldest()
{
    const std::string path = file("age.sqlite");
    const int64_t now = engine::wallNowNs();
    std::vector<engine::Flow> flows;
    for (uint64_t i = 0; i < 3; ++i) {
        flows.push_back(syntheticFlow(1001 + i, now - 8 * kDayNs + int64_t(i)));  // older than 7 days
        flows.push_back(syntheticFlow(2001 + i, now - 6 * kDayNs + int64_t(i)));
    }
    std::string error;
    QVERIFY2(prefill(path, flows, &error), error.c_str());
    QCOMPARE(Db(path).flowIds().size(), size_t(6));
    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port(), {"--history", path});  // the default: 7 days
    QVERIFY2(service.ready(), "the service's API never answered");
    QTRY_COMPARE_WITH_TIMEOUT(Db(path).flowIds(), (std::vector<uint64_t>{2001, 2002, 2003}), 20000);
    QCOMPARE(Db(path).text("PRAGMA integrity_check"), std::string("ok"));
}

void TestHistory::sizeRetentionRemovesTheOldest()
{
    const std::string path = file("size.sqlite");
    const int64_t now = engine::wallNowNs();
    constexpr uint64_t kFlows = 12000;  // about 6 MiB of rows, ending over the last hour, oldest first
    std::vector<engine::Flow> flows;
    for (uint64_t i = 0; i < kFlows; ++i)
        flows.push_back(syntheticFlow(100000 + i, now - 3600LL * 1'000'000'000 + int64_t(i) * 250'000'000));
    std::string error;
    QVERIFY2(prefill(path, flows, &error), error.c_str());
    QVERIFY2(Db(path).bytes() > 4 << 20, "the prefill is too small to test the size limit");

    TcpServer server(AF_INET, "pong\n", 1);
    const std::string destination = "127.0.0.1:" + std::to_string(server.port());
    ServiceUnderTest service(server.port(), {"--history", path, "--history-max-mb", "1"});
    QVERIFY2(service.ready(), "the service's API never answered");
    QVERIFY(eventually(server, false));
    NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
    QTRY_VERIFY_WITH_TIMEOUT(Db(path).bytes() <= 1 << 20, 60000);
    QTRY_VERIFY_WITH_TIMEOUT(!toDestination(everything(node).flows, destination).empty(), 20000);
    QVERIFY2(Db(path).bytes() <= 1 << 20, qPrintable(QString::number(Db(path).bytes())));

    // What is left of the prefill is its newest part, without a gap; the real flow (newest) stayed.
    std::vector<uint64_t> left;
    for (uint64_t id : Db(path).flowIds())
        if (id >= 100000 && id < 100000 + kFlows)
            left.push_back(id);
    QVERIFY2(!left.empty() && left.size() < kFlows / 4, qPrintable(QString::number(left.size())));
    QCOMPARE(left.back(), 100000 + kFlows - 1);
    QCOMPARE(left.back() - left.front() + 1, uint64_t(left.size()));
    QCOMPARE(Db(path).text("PRAGMA integrity_check"), std::string("ok"));
    // The pages went back to the file system: the file itself shrank.
    auto fileSize = [&] {
        struct stat st {};
        return ::stat(path.c_str(), &st) == 0 ? int64_t(st.st_size) : -1;
    };
    QTRY_VERIFY_WITH_TIMEOUT(fileSize() >= 0 && fileSize() <= 1 << 20, 20000);
}

void TestHistory::sigkillWhileWritingKeepsWhatWasCommitted()
{
    TcpServer server(AF_INET, "pong\n", 1);
    const std::string destination = "127.0.0.1:" + std::to_string(server.port());
    const std::string path = file("crash.sqlite");
    ServiceUnderTest service(server.port(), {"--history", path});
    QVERIFY2(service.ready(), "the service's API never answered");
    QVERIFY(eventually(server, false));
    // A steady stream of real connections, bounded in count, until the service is gone.
    std::atomic<bool> stop{false};
    std::thread traffic([&] {
        for (int i = 0; i < 5000 && !stop; ++i)
            exchange(server, server.port(), 2000);
    });
    struct Join {
        std::atomic<bool>& stop;
        std::thread& thread;
        ~Join()
        {
            stop = true;
            thread.join();
        }
    } join{stop, traffic};
    NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
    std::set<uint64_t> committed;
    QTRY_VERIFY_WITH_TIMEOUT((committed = idsOf(toDestination(everything(node).flows, destination))).size() >= 100, 60000);
    service.kill();  // while the flows keep coming
    stop = true;

    Db db(path);
    QVERIFY2(db.error().empty(), db.error().c_str());
    QCOMPARE(db.text("PRAGMA integrity_check"), std::string("ok"));
    std::vector<uint64_t> rows = db.flowIds();
    QVERIFY2(includes(std::set<uint64_t>(rows.begin(), rows.end()), committed), "committed flows were lost");

    // The next run opens it as it is and serves it.
    service.start();
    QVERIFY2(service.ready(), "the service did not come back on its crashed database");
    const NodeClient::History after = everything(node);
    QVERIFY2(after.ok, after.error.c_str());
    QVERIFY(includes(idsOf(after.flows), committed));
}

void TestHistory::unusableDatabaseIsSaidAndLeftAlone_data()
{
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("setup");
    QTest::addColumn<QString>("reason");
    QTest::newRow("no directory") << "absent/history.sqlite" << "" << "No such file or directory";
    QTest::newRow("a directory") << "adir" << "mkdir" << "Is a directory";
    QTest::newRow("not a database") << "notes.txt" << "text" << "file is not a database";
    QTest::newRow("foreign database") << "other.sqlite" << "CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');"
                                      << "not a Redirect Console flow history (SQLite application_id 0x00000000)";
    QTest::newRow("older schema") << "old.sqlite" << "PRAGMA application_id = 1380140616; CREATE TABLE flows (x);"
                                  << "flow history schema version 0, this service reads version 1";
}

void TestHistory::unusableDatabaseIsSaidAndLeftAlone()
{
    QFETCH(QString, name);
    QFETCH(QString, setup);
    QFETCH(QString, reason);
    const std::string path = file(name.toStdString());
    if (setup == "mkdir") {
        QVERIFY(QDir().mkpath(QString::fromStdString(path)));
    } else if (setup == "text") {
        std::ofstream(path) << std::string(5000, 'x');
    } else if (!setup.isEmpty()) {
        sqlite3* db = nullptr;
        QCOMPARE(sqlite3_open(path.c_str(), &db), SQLITE_OK);
        QCOMPARE(sqlite3_exec(db, setup.toUtf8().constData(), nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
    }
    const std::string before = QFileInfo(QString::fromStdString(path)).isFile() ? readAll(QString::fromStdString(path)) : "";

    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port(), {"--history", path});
    QVERIFY2(service.ready(), "the service did not run on without its history");
    QVERIFY(eventually(server, false));  // it redirects all the same
    NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
    node.start();
    QTRY_VERIFY_WITH_TIMEOUT(node.view().haveStatus, 10000);
    const std::string said = node.view().status.history();
    QVERIFY2(said.rfind("unavailable: cannot ", 0) == 0 && said.find(path) != std::string::npos &&
                 said.find(reason.toStdString()) != std::string::npos,
             said.c_str());
    const NodeClient::History h = everything(node);
    QVERIFY(!h.ok);
    QVERIFY2(h.error.find(path) != std::string::npos && h.error.find(reason.toStdString()) != std::string::npos,
             h.error.c_str());
    // Logged loudly, for whoever reads the node's log.
    std::string log;
    QTRY_VERIFY_WITH_TIMEOUT(
        [&] {
            for (const v1::LogLine& line : node.takeLog())
                log += line.level() + " " + line.text() + "\n";
            return log.find("error " + said.substr(std::string("unavailable: ").size()) +
                            "; the service runs WITHOUT flow history") != std::string::npos;
        }(),
        10000);
    node.stop();
    // Nothing was changed, nothing made next to it.
    if (!before.empty())
        QVERIFY2(readAll(QString::fromStdString(path)) == before, "the file was changed");
    for (const char* suffix : {"-wal", "-shm", "-journal"})
        QVERIFY2(!QFileInfo::exists(QString::fromStdString(path + suffix)), suffix);
}

REDIRECT_KERNEL_TEST_MAIN(TestHistory)
#include "tst_history.moc"
