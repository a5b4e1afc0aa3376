// The one formatter of byte counts, rates and durations (engine/format.h) that the flow table, the
// charts, the chain view and the HTML report share, and the CSV field writer that the reports and
// the console's "copy rows as CSV" share, with its guard against formula injection.
#include <cmath>
#include <limits>

#include <QTest>

#include "format.h"

using namespace redirect::engine;

class TestFormat : public QObject {
    Q_OBJECT

private slots:
    void bytes_data();
    void bytes();
    void rates_data();
    void rates();
    void durations_data();
    void durations();
    void csvFields_data();
    void csvFields();
};

void TestFormat::bytes_data()
{
    QTest::addColumn<quint64>("bytes");
    QTest::addColumn<QString>("text");
    constexpr quint64 KiB = 1024, MiB = KiB * KiB, GiB = MiB * KiB, EiB = GiB * GiB;
    QTest::newRow("zero") << quint64(0) << "0 B";
    QTest::newRow("one") << quint64(1) << "1 B";
    QTest::newRow("1023") << quint64(1023) << "1023 B";
    QTest::newRow("1024") << KiB << "1.0 KiB";
    QTest::newRow("1536") << quint64(1536) << "1.5 KiB";
    QTest::newRow("just under 10 KiB") << quint64(10 * KiB - 52) << "9.9 KiB";
    QTest::newRow("rounds to 10 KiB: no decimal") << quint64(10 * KiB - 40) << "10 KiB";
    QTest::newRow("HTML report cell") << quint64(567890) << "555 KiB";
    QTest::newRow("would round to 1024 KiB") << quint64(MiB - 1) << "1.0 MiB";
    QTest::newRow("10 MiB") << 10 * MiB << "10 MiB";
    QTest::newRow("1.5 GiB") << 3 * GiB / 2 << "1.5 GiB";
    QTest::newRow("1 TiB") << 1024 * GiB << "1.0 TiB";
    QTest::newRow("1 EiB") << EiB << "1.0 EiB";
    QTest::newRow("uint64 max") << std::numeric_limits<quint64>::max() << "16 EiB";
}

void TestFormat::bytes()
{
    QFETCH(quint64, bytes);
    QFETCH(QString, text);
    QCOMPARE(QString::fromStdString(formatBytes(bytes)), text);
}

void TestFormat::rates_data()
{
    QTest::addColumn<double>("rate");
    QTest::addColumn<QString>("text");
    QTest::newRow("idle") << 0.0 << "0 B/s";
    QTest::newRow("fraction rounds") << 2.6 << "3 B/s";
    QTest::newRow("512") << 512.0 << "512 B/s";
    QTest::newRow("1023.4") << 1023.4 << "1023 B/s";
    QTest::newRow("1023.6 rounds up a unit") << 1023.6 << "1.0 KiB/s";
    QTest::newRow("1.5 MiB/s") << 1.5 * 1024 * 1024 << "1.5 MiB/s";
    QTest::newRow("100 MiB/s") << 100.0 * 1024 * 1024 << "100 MiB/s";
    QTest::newRow("beyond EiB stays EiB") << 2048.0 * std::pow(1024.0, 6) << "2048 EiB/s";
    QTest::newRow("largest double") << std::numeric_limits<double>::max() << "";  // checked by prefix below
    QTest::newRow("negative: unknown") << -1.0 << "";
    QTest::newRow("NaN: unknown") << std::numeric_limits<double>::quiet_NaN() << "";
    QTest::newRow("infinity: unknown") << std::numeric_limits<double>::infinity() << "";
}

void TestFormat::rates()
{
    QFETCH(double, rate);
    QFETCH(QString, text);
    const QString shown = QString::fromStdString(formatRate(rate));
    if (rate == std::numeric_limits<double>::max()) {
        // 309 digits and the unit: nothing is cut off, nothing overflows.
        QVERIFY2(shown.endsWith(" EiB/s") && shown.size() > 290, qPrintable(shown));
        return;
    }
    QCOMPARE(shown, text);
}

void TestFormat::durations_data()
{
    QTest::addColumn<qint64>("ns");
    QTest::addColumn<QString>("text");
    constexpr qint64 us = 1000, ms = 1000 * us, s = 1000 * ms, min = 60 * s, h = 60 * min;
    QTest::newRow("unknown") << qint64(-1) << "";
    QTest::newRow("zero") << qint64(0) << QString::fromUtf8("0 µs");
    QTest::newRow("850 us") << 850 * us + 999 << QString::fromUtf8("850 µs");
    QTest::newRow("1 ms") << ms << "1.0 ms";
    QTest::newRow("1.29 ms: a tenth") << ms + 290 * us << "1.2 ms";
    QTest::newRow("just under 10 ms") << 10 * ms - 1 << "9.9 ms";
    QTest::newRow("10 ms") << 10 * ms << "10 ms";
    QTest::newRow("999 ms") << s - 1 << "999 ms";
    QTest::newRow("1 s") << s << "1.00 s";
    QTest::newRow("1.5 s") << s + 500 * ms << "1.50 s";
    QTest::newRow("truncates below a minute") << min - 1 << "59.99 s";
    QTest::newRow("1 min") << min << "1m 00s";
    QTest::newRow("2m 05s") << 2 * min + 5 * s + 999 * ms << "2m 05s";
    QTest::newRow("59m 59s") << h - 1 << "59m 59s";
    QTest::newRow("1 h") << h << "1h 00m";
    QTest::newRow("3h 07m") << 3 * h + 7 * min + 59 * s << "3h 07m";
    QTest::newRow("a year") << 8766 * h << "8766h 00m";
    QTest::newRow("int64 max") << std::numeric_limits<qint64>::max() << "2562047h 47m";
}

void TestFormat::durations()
{
    QFETCH(qint64, ns);
    QFETCH(QString, text);
    QCOMPARE(QString::fromStdString(formatDuration(ns)), text);
}

void TestFormat::csvFields_data()
{
    QTest::addColumn<QString>("value");
    QTest::addColumn<bool>("number");
    QTest::addColumn<QString>("field");
    QTest::newRow("plain") << "curl" << false << "curl";
    QTest::newRow("empty") << "" << false << "";
    QTest::newRow("comma quoted") << "a,b" << false << "\"a,b\"";
    QTest::newRow("quote doubled") << "say \"hi\"" << false << "\"say \"\"hi\"\"\"";
    QTest::newRow("LF quoted") << "two\nlines" << false << "\"two\nlines\"";
    QTest::newRow("formula =") << "=1+2" << false << "'=1+2";
    QTest::newRow("formula +") << "+1" << false << "'+1";
    QTest::newRow("formula -") << "-2+3" << false << "'-2+3";
    QTest::newRow("formula @") << "@SUM(A1)" << false << "'@SUM(A1)";
    QTest::newRow("leading TAB") << "\t=1" << false << "'\t=1";
    QTest::newRow("leading CR: guarded and quoted") << "\r=1" << false << "\"'\r=1\"";
    QTest::newRow("guarded and quoted") << "=HYPERLINK(\"http://x\",\"y\")" << false
                                        << "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"";
    QTest::newRow("= later is harmless") << "a=1" << false << "a=1";
    QTest::newRow("negative number unguarded") << "-5" << true << "-5";
    QTest::newRow("number with comma quoted") << "1,5" << true << "\"1,5\"";
}

void TestFormat::csvFields()
{
    QFETCH(QString, value);
    QFETCH(bool, number);
    QFETCH(QString, field);
    std::string out = "x,";
    appendCsvField(out, value.toStdString(), number ? CsvField::Number : CsvField::Text);
    QCOMPARE(QString::fromStdString(out), "x," + field);
}

QTEST_APPLESS_MAIN(TestFormat)
#include "tst_format.moc"
