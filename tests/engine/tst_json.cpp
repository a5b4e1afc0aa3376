// The JSON reader behind the rules file (engine/json.h): values, escapes and UTF-8, positions
// (line and column of every value), nesting limit, numbers.
#include <QtTest>

#include "json.h"

using namespace redirect::engine;

class TestJson : public QObject {
    Q_OBJECT

private slots:
    void jsonValues();
    void jsonPositions();
    void jsonNesting();
    void jsonNumbers_data();
    void jsonNumbers();
};

void TestJson::jsonValues()
{
    json::ParseResult r = json::parse(
        R"({"s": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "t": true, "f": false, "n": null, "a": [1, "x"], "o": {}})");
    QVERIFY2(r.ok(), r.error.str().c_str());
    const json::Value& v = r.value;
    QCOMPARE(v.type, json::Type::Object);
    QCOMPARE(v.members.size(), size_t(6));
    QCOMPARE(v.members[0].key, std::string("s"));
    QCOMPARE(v.members[5].key, std::string("o"));
    QCOMPARE(v.find("s")->value.string, std::string("a\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80"));
    QCOMPARE(v.find("t")->value.type, json::Type::Bool);
    QVERIFY(v.find("t")->value.boolean);
    QVERIFY(!v.find("f")->value.boolean);
    QCOMPARE(v.find("n")->value.type, json::Type::Null);
    const json::Value& a = v.find("a")->value;
    QCOMPARE(a.elements.size(), size_t(2));
    QCOMPARE(a.elements[0].integer, int64_t(1));
    QCOMPARE(a.elements[1].string, std::string("x"));
    QCOMPARE(v.find("o")->value.type, json::Type::Object);
    QVERIFY(v.find("missing") == nullptr);

    // \u0000 is a valid escape; raw UTF-8 passes through unchanged.
    r = json::parse("[\"a\\u0000b\", \"\xE2\x82\xAC\"]");
    QVERIFY2(r.ok(), r.error.str().c_str());
    QCOMPARE(r.value.elements[0].string, std::string("a\0b", 3));
    QCOMPARE(r.value.elements[1].string, std::string("\xE2\x82\xAC"));

    // A byte order mark is skipped; overlong UTF-8 is not.
    QVERIFY(json::parse("\xEF\xBB\xBF{}").ok());
    r = json::parse("[\"\xC0\xAF\"]");
    QVERIFY(!r.ok());
    QCOMPARE(r.error.column, 3);
    QVERIFY(json::parse("[\"\xED\xA0\x80\"]").error.message.find("invalid UTF-8") != std::string::npos);
    QVERIFY(json::parse("[\"\\ud83d\"]").error.message.find("high surrogate") != std::string::npos);
}

void TestJson::jsonPositions()
{
    // Columns count code points (é is two bytes, one column), tabs count one, lines start at 1.
    json::ParseResult r = json::parse("{\"é\": 1,\r\n\t\"k\": [true,\n  \"v\"]}");
    QVERIFY2(r.ok(), r.error.str().c_str());
    const json::Value& v = r.value;
    QCOMPARE(v.position, (json::Position{1, 1}));
    QCOMPARE(v.members[0].keyPosition, (json::Position{1, 2}));
    QCOMPARE(v.members[0].value.position, (json::Position{1, 7}));
    QCOMPARE(v.members[1].keyPosition, (json::Position{2, 2}));
    QCOMPARE(v.members[1].value.position, (json::Position{2, 7}));
    QCOMPARE(v.members[1].value.elements[0].position, (json::Position{2, 8}));
    QCOMPARE(v.members[1].value.elements[1].position, (json::Position{3, 3}));

    json::Error e{4, 7, "boom"};
    QCOMPARE(e.str(), std::string("4:7: boom"));
    e.line = 0;
    QCOMPARE(e.str(), std::string("boom"));
}

void TestJson::jsonNesting()
{
    std::string ok = std::string(json::kMaxDepth, '[') + std::string(json::kMaxDepth, ']');
    QVERIFY(json::parse(ok).ok());
    std::string deep = "[" + ok + "]";
    json::ParseResult r = json::parse(deep);
    QVERIFY(!r.ok());
    QCOMPARE(r.error.line, 1);
    QCOMPARE(r.error.column, 65);
    QVERIFY(r.error.message.find("nesting deeper than 64") != std::string::npos);
}

void TestJson::jsonNumbers_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<double>("number");
    QTest::addColumn<bool>("integral");
    QTest::addColumn<qint64>("integer");
    QTest::newRow("zero") << "0" << 0.0 << true << qint64(0);
    QTest::newRow("negative") << "-42" << -42.0 << true << qint64(-42);
    QTest::newRow("fraction") << "1.5" << 1.5 << false << qint64(0);
    QTest::newRow("exponent integral") << "1e2" << 100.0 << true << qint64(100);
    QTest::newRow("integral fraction") << "2.0" << 2.0 << true << qint64(2);
    QTest::newRow("beyond double, exact in int64") << "9007199254740993" << 9007199254740992.0 << true
                                                   << qint64(9007199254740993LL);
    QTest::newRow("beyond int64") << "9223372036854775808" << 9223372036854775808.0 << false << qint64(0);
    QTest::newRow("underflow") << "1e-400" << 0.0 << true << qint64(0);
}

void TestJson::jsonNumbers()
{
    QFETCH(QString, text);
    QFETCH(double, number);
    QFETCH(bool, integral);
    QFETCH(qint64, integer);
    json::ParseResult r = json::parse(text.toStdString());
    QVERIFY2(r.ok(), r.error.str().c_str());
    QCOMPARE(r.value.type, json::Type::Number);
    QCOMPARE(r.value.number, number);
    QCOMPARE(r.value.integral, integral);
    if (integral)
        QCOMPARE(r.value.integer, integer);
    QVERIFY(!json::parse("1e400").ok());
    QVERIFY(!json::parse("-").ok());
    QVERIFY(!json::parse("1.").ok());
    QVERIFY(!json::parse("+1").ok());
}

QTEST_APPLESS_MAIN(TestJson)
#include "tst_json.moc"
