// LogSink: lines wait in a bounded ring until take(); overflow is counted.
#include <QTest>

#include <spdlog/logger.h>

#include <thread>

#include "log_sink.h"

using redirect::gui::LogSink;

class TestLogSink : public QObject {
    Q_OBJECT
private slots:
    void takeReturnsNewLines();
    void overflowDropsOldest_data();
    void overflowDropsOldest();
    void concurrentWriters();
};

void TestLogSink::takeReturnsNewLines()
{
    auto sink = std::make_shared<LogSink>(10);
    spdlog::logger logger("t", sink);
    logger.set_pattern("[%l] %v");
    logger.info("first {}", 1);
    logger.warn("second");
    uint64_t dropped = 99;
    QCOMPARE(sink->take(&dropped), (std::vector<std::string>{"[info] first 1", "[warning] second"}));
    QCOMPARE(dropped, 0u);
    QVERIFY(sink->take().empty());
    logger.error("third");
    QCOMPARE(sink->take(), (std::vector<std::string>{"[error] third"}));
}

void TestLogSink::overflowDropsOldest_data()
{
    QTest::addColumn<int>("capacity");
    QTest::addColumn<int>("logged");
    QTest::newRow("exactly full") << 3 << 3;
    QTest::newRow("two over") << 3 << 5;
    QTest::newRow("far over") << 1 << 100;
}

void TestLogSink::overflowDropsOldest()
{
    QFETCH(int, capacity);
    QFETCH(int, logged);
    auto sink = std::make_shared<LogSink>(static_cast<size_t>(capacity));
    spdlog::logger logger("t", sink);
    logger.set_pattern("%v");
    for (int i = 0; i < logged; ++i)
        logger.info("line {}", i);
    uint64_t dropped = 0;
    const std::vector<std::string> lines = sink->take(&dropped);
    QCOMPARE(static_cast<int>(lines.size()), capacity);
    QCOMPARE(static_cast<int>(dropped), logged - capacity);
    QCOMPARE(lines.back(), "line " + std::to_string(logged - 1));
    QCOMPARE(lines.front(), "line " + std::to_string(logged - capacity));
    sink->take(&dropped);
    QCOMPARE(dropped, 0u);
}

void TestLogSink::concurrentWriters()
{
    auto sink = std::make_shared<LogSink>(100000);
    auto logger = std::make_shared<spdlog::logger>("t", sink);
    logger->set_pattern("%v");
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w)
        writers.emplace_back([&logger, w] {
            for (int i = 0; i < 2000; ++i)
                logger->info("{} {}", w, i);
        });
    // Take while the writers run: every line is taken exactly once.
    size_t taken = 0;
    uint64_t dropped = 0;
    for (int round = 0; round < 50; ++round)
        taken += sink->take(&dropped).size();
    for (std::thread& writer : writers)
        writer.join();
    taken += sink->take(&dropped).size();
    QCOMPARE(dropped, 0u);
    QCOMPARE(taken, size_t{8000});
}

QTEST_APPLESS_MAIN(TestLogSink)
#include "tst_log_sink.moc"
