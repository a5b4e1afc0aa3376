// Rules file: the JSON reader's positions, the DESIGN.md example and other
// valid files, malformed files with the line, column and message of their
// error, the JSON writer's round trip, and compilation to callout_rule.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <QtTest>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "callout_abi.h"
#include "json.h"
#include "rules.h"

using namespace redirect::engine;

namespace {

constexpr int64_t kSecond = 1000000000;

// DESIGN.md section 6, verbatim.
const char* const kDesignExample = R"({
  "version": 1,
  "redirectors": [
    { "id": "inspector", "name": "Web inspector" },
    { "id": "dlp", "name": "DLP agent", "listen": ["127.0.0.1:15002", "[::1]:15002"] },
    { "id": "vendor-x", "name": "Vendor X proxy", "external": true, "listen": ["127.0.0.1:18080"] }
  ],
  "rules": [
    { "id": "no-ssh", "action": "bypass", "protocol": "tcp", "ports": "22" },
    { "id": "web", "enabled": true, "action": "redirect", "redirector": "inspector",
      "protocol": "tcp", "destination": ["0.0.0.0/0", "::/0"], "ports": "80,443,8000-8999" },
    { "id": "curl-dlp", "action": "redirect", "redirector": "dlp", "process": "curl",
      "expires": "2026-12-31T00:00:00Z" }
  ]
}
)";

// A file with one redirector "a" and one rule whose members are `body`; the body starts at 3:13.
QByteArray inRule(const char* body)
{
    return QByteArray("{\"version\": 1,\n \"redirectors\": [{\"id\": \"a\"}],\n \"rules\": [{") + body + "}]}";
}

// A file with one redirector whose members are `body`; the body starts at 2:19.
QByteArray inRedirector(const char* body)
{
    return QByteArray("{\"version\": 1,\n \"redirectors\": [{") + body + "}]}";
}

RuleSet parseOk(const QByteArray& text)
{
    RulesResult r = parseRules(std::string_view(text.constData(), size_t(text.size())));
    if (!r.ok())
        qWarning("unexpected error: %s", r.error.str().c_str());
    return r.rules;
}

std::string portsText(const std::vector<PortRange>& ports)
{
    std::string out;
    for (const PortRange& p : ports)
        out += (out.empty() ? "" : " ") + std::to_string(p.first) + "-" + std::to_string(p.last);
    return out;
}

std::array<uint8_t, 16> bytes(std::initializer_list<uint8_t> list)
{
    std::array<uint8_t, 16> out{};
    std::copy(list.begin(), list.end(), out.begin());
    return out;
}

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

class TestRules : public QObject {
    Q_OBJECT

private slots:
    void jsonValues();
    void jsonPositions();
    void jsonNesting();
    void jsonNumbers_data();
    void jsonNumbers();
    void designExample();
    void minimalFile();
    void allOptionalFields();
    void ipv6();
    void ports_data();
    void ports();
    void uid();
    void expires_data();
    void expires();
    void numericIds();
    void malformed_data();
    void malformed();
    void loadFile();
    void roundTrip();
    void compileDesignExample();
    void compileAddresses();
    void compileExpiry_data();
    void compileExpiry();
    void compileMissingCgroup();
    void compileCgroup();
    void compileUnknownSlot();
    void compileLimits();
};

void TestRules::jsonValues()
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

void TestRules::jsonPositions()
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

void TestRules::jsonNesting()
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

void TestRules::jsonNumbers_data()
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

void TestRules::jsonNumbers()
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

void TestRules::designExample()
{
    RuleSet set = parseOk(kDesignExample);
    QCOMPARE(set.version, 1);
    QCOMPARE(set.redirectors.size(), size_t(3));
    const RedirectorSpec& inspector = set.redirectors[0];
    QCOMPARE(inspector.id, std::string("inspector"));
    QCOMPARE(inspector.name, std::string("Web inspector"));
    QVERIFY(!inspector.external);
    QVERIFY(inspector.listen.empty());
    QCOMPARE(inspector.numericId, 0x2960586eu);
    QCOMPARE(inspector.position, (json::Position{4, 5}));

    const RedirectorSpec& dlp = set.redirectors[1];
    QCOMPARE(dlp.name, std::string("DLP agent"));
    QCOMPARE(dlp.numericId, 0xe96f7d87u);
    QCOMPARE(dlp.listen.size(), size_t(2));
    QCOMPARE(dlp.listen[0].family, AF_INET);
    QCOMPARE(dlp.listen[0].addr, bytes({127, 0, 0, 1}));
    QCOMPARE(dlp.listen[0].port, uint16_t(15002));
    QCOMPARE(dlp.listen[1].family, AF_INET6);
    QCOMPARE(dlp.listen[1].addr, bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    QCOMPARE(dlp.listen[1].port, uint16_t(15002));
    QCOMPARE(dlp.listen[1].str(), std::string("[::1]:15002"));
    sockaddr_storage ss = dlp.listen[0].sockaddr();
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    QCOMPARE(int(sin->sin_family), AF_INET);
    QCOMPARE(sin->sin_port, htons(15002));
    QCOMPARE(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

    const RedirectorSpec& vendor = set.redirectors[2];
    QVERIFY(vendor.external);
    QCOMPARE(vendor.listen.size(), size_t(1));
    QCOMPARE(vendor.listen[0].str(), std::string("127.0.0.1:18080"));

    QCOMPARE(set.rules.size(), size_t(3));
    const RuleSpec& noSsh = set.rules[0];
    QCOMPARE(noSsh.id, std::string("no-ssh"));
    QCOMPARE(noSsh.numericId, 0xaef83421u);
    QCOMPARE(noSsh.action, RuleAction::Bypass);
    QVERIFY(noSsh.enabled);
    QVERIFY(noSsh.redirector.empty());
    QCOMPARE(int(noSsh.protocol), IPPROTO_TCP);
    QCOMPARE(portsText(noSsh.ports), std::string("22-22"));
    QVERIFY(noSsh.destination.empty());
    QVERIFY(!noSsh.expiresNs);
    QCOMPARE(noSsh.position, (json::Position{9, 5}));

    const RuleSpec& web = set.rules[1];
    QCOMPARE(web.action, RuleAction::Redirect);
    QCOMPARE(web.redirector, std::string("inspector"));
    QCOMPARE(web.redirectorPosition, (json::Position{10, 73}));
    QCOMPARE(web.destination.size(), size_t(2));
    QCOMPARE(web.destination[0].str(), std::string("0.0.0.0/0"));
    QCOMPARE(web.destination[1].family, AF_INET6);
    QCOMPARE(int(web.destination[1].prefixLen), 0);
    QCOMPARE(portsText(web.ports), std::string("80-80 443-443 8000-8999"));
    QVERIFY(web.process.empty());
    QVERIFY(!web.uid);

    const RuleSpec& curl = set.rules[2];
    QCOMPARE(curl.redirector, std::string("dlp"));
    QCOMPARE(curl.process, std::string("curl"));
    QVERIFY(curl.ports.empty());
    QCOMPARE(curl.expiresNs.value_or(0), 1798675200 * kSecond);
    QVERIFY(curl.cgroup.empty());
}

void TestRules::minimalFile()
{
    RulesResult r = parseRules(R"({"version": 1})");
    QVERIFY2(r.ok(), r.error.str().c_str());
    QCOMPARE(r.rules.version, 1);
    QVERIFY(r.rules.redirectors.empty());
    QVERIFY(r.rules.rules.empty());
    r = parseRules(R"({"version": 1, "redirectors": [], "rules": []})");
    QVERIFY2(r.ok(), r.error.str().c_str());
}

void TestRules::allOptionalFields()
{
    // Rules before redirectors: rules may refer to redirectors declared later in the file.
    RuleSet set = parseOk(R"({"rules": [
        {"id": "all", "enabled": false, "action": "redirect", "redirector": "p", "protocol": "tcp",
         "destination": "192.168.0.0/16", "ports": [443], "process": "firefox-esr", "uid": 1000,
         "cgroup": "user.slice", "expires": "2030-01-01T00:00:00.25Z"}],
      "redirectors": [{"id": "p", "name": "P", "external": false,
                       "listen": ["127.0.0.2:9000", "[::1]:9001"], "data": "tenant=7"}],
      "version": 1})");
    QCOMPARE(set.redirectors.size(), size_t(1));
    const RedirectorSpec& p = set.redirectors[0];
    QCOMPARE(p.name, std::string("P"));
    QCOMPARE(p.data, std::string("tenant=7"));
    QCOMPARE(p.listen[0].str(), std::string("127.0.0.2:9000"));
    QCOMPARE(p.listen[1].port, uint16_t(9001));
    QCOMPARE(set.rules.size(), size_t(1));
    const RuleSpec& rule = set.rules[0];
    QVERIFY(!rule.enabled);
    QCOMPARE(rule.destination.size(), size_t(1));
    QCOMPARE(rule.destination[0].addr, bytes({192, 168}));
    QCOMPARE(int(rule.destination[0].prefixLen), 16);
    QCOMPARE(portsText(rule.ports), std::string("443-443"));
    QCOMPARE(rule.process, std::string("firefox-esr"));
    QCOMPARE(rule.uid.value_or(0), 1000u);
    QVERIFY(rule.user.empty());
    QCOMPARE(rule.cgroup, std::string("user.slice"));
    QCOMPARE(rule.cgroupPosition, (json::Position{4, 20}));
    QCOMPARE(rule.expiresNs.value_or(0), 1893456000 * kSecond + 250000000);

    // Without "name" the name is the id.
    set = parseOk(R"({"version": 1, "redirectors": [{"id": "bare"}]})");
    QCOMPARE(set.redirectors.at(0).name, std::string("bare"));
}

void TestRules::ipv6()
{
    RuleSet set = parseOk(inRule(R"("id": "v6", "action": "bypass",
        "destination": ["2001:db8::/32", "::1", "fe80::/10", "::ffff:10.0.0.0/104"])"));
    QCOMPARE(set.rules.size(), size_t(1));
    const std::vector<Cidr>& d = set.rules[0].destination;
    QCOMPARE(d.size(), size_t(4));
    QCOMPARE(d[0].family, AF_INET6);
    QCOMPARE(int(d[0].prefixLen), 32);
    QCOMPARE(d[0].addr, bytes({0x20, 0x01, 0x0d, 0xb8}));
    QCOMPARE(int(d[1].prefixLen), 128);
    QCOMPARE(d[1].addr[15], uint8_t(1));
    QCOMPARE(d[2].addr, bytes({0xfe, 0x80}));
    QCOMPARE(d[3].str(), std::string("::ffff:10.0.0.0/104"));
    // A bare IPv4 address means /32.
    set = parseOk(inRule(R"("id": "v4", "action": "bypass", "destination": "10.1.2.3")"));
    QCOMPARE(int(set.rules.at(0).destination.at(0).prefixLen), 32);
}

void TestRules::ports_data()
{
    QTest::addColumn<QString>("ports");
    QTest::addColumn<QString>("expected");
    QTest::newRow("number") << "22" << "22-22";
    QTest::newRow("largest number") << "65535" << "65535-65535";
    QTest::newRow("string") << R"("80,443,8000-8999")" << "80-80 443-443 8000-8999";
    QTest::newRow("string with spaces") << R"(" 80 , 1000 - 2000 ")" << "80-80 1000-2000";
    QTest::newRow("whole range") << R"("1-65535")" << "1-65535";
    QTest::newRow("array of numbers and strings") << R"([80, "443", "8000-8999,9443"])"
                                                  << "80-80 443-443 8000-8999 9443-9443";
    QTest::newRow("eight ranges") << R"("1,2,3,4,5,6,7,8")" << "1-1 2-2 3-3 4-4 5-5 6-6 7-7 8-8";
}

void TestRules::ports()
{
    QFETCH(QString, ports);
    QFETCH(QString, expected);
    QByteArray body = R"("id": "r", "action": "bypass", "ports": )" + ports.toUtf8();
    RuleSet set = parseOk(inRule(body.constData()));
    QCOMPARE(set.rules.size(), size_t(1));
    QCOMPARE(QString::fromStdString(portsText(set.rules[0].ports)), expected);
}

void TestRules::uid()
{
    RuleSet set = parseOk(R"({"version": 1, "rules": [
        {"id": "by-name", "action": "bypass", "uid": "root"},
        {"id": "by-number", "action": "bypass", "uid": 0},
        {"id": "other", "action": "bypass", "uid": 4294967294}]})");
    QCOMPARE(set.rules.size(), size_t(3));
    QVERIFY(set.rules[0].uid.has_value());
    QCOMPARE(*set.rules[0].uid, 0u);
    QCOMPARE(set.rules[0].user, std::string("root"));
    QVERIFY(set.rules[1].uid.has_value());
    QCOMPARE(*set.rules[1].uid, 0u);
    QVERIFY(set.rules[1].user.empty());
    QCOMPARE(set.rules[2].uid.value_or(0), 4294967294u);
}

void TestRules::expires_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<qint64>("ns");
    QTest::newRow("UTC") << "2026-12-31T00:00:00Z" << qint64(1798675200 * kSecond);
    QTest::newRow("plus offset") << "2026-12-31T02:00:00+02:00" << qint64(1798675200 * kSecond);
    QTest::newRow("minus offset") << "2026-06-15T12:30:00-05:30" << qint64(1781546400 * kSecond);
    QTest::newRow("lower case") << "2026-12-31t00:00:00z" << qint64(1798675200 * kSecond);
    QTest::newRow("fraction") << "2026-12-31T00:00:00.123456789Z" << qint64(1798675200 * kSecond + 123456789);
    QTest::newRow("leap day") << "2028-02-29T23:59:59Z" << qint64(1835481599 * kSecond);
    QTest::newRow("before the epoch") << "1969-12-31T23:59:59Z" << qint64(-kSecond);
    QTest::newRow("already expired") << "2000-01-01T00:00:00Z" << qint64(946684800 * kSecond);
}

void TestRules::expires()
{
    QFETCH(QString, text);
    QFETCH(qint64, ns);
    QByteArray body = R"("id": "r", "action": "bypass", "expires": ")" + text.toUtf8() + "\"";
    RuleSet set = parseOk(inRule(body.constData()));
    QCOMPARE(set.rules.size(), size_t(1));
    QVERIFY(set.rules[0].expiresNs.has_value());
    QCOMPARE(qint64(*set.rules[0].expiresNs), ns);
}

void TestRules::numericIds()
{
    // FNV-1a 32 reference values.
    QCOMPARE(ruleNumericId(""), 0x811c9dc5u);
    QCOMPARE(ruleNumericId("a"), 0xe40c292cu);
    QCOMPARE(ruleNumericId("foobar"), 0xbf9cf968u);
    QCOMPARE(redirectorNumericId("foobar"), 0xbf9cf968u);
    QCOMPARE(redirectorNumericId("vendor-x"), 0x7a204b86u);
    QCOMPARE(parseOk(inRule(R"("id": "r", "action": "bypass")")).rules.at(0).numericId, 0xf70c4715u);
}

void TestRules::malformed_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<int>("line");
    QTest::addColumn<int>("column");
    QTest::addColumn<QString>("message");
    QTest::newRow("missing comma") << QByteArray(R"({"version": 1 "rules": []})") << 1 << 15 << QString("expected ',' or '}' after object member");
    QTest::newRow("trailing comma in object") << QByteArray(R"({"version": 1,})") << 1 << 15 << QString("trailing comma before '}'");
    QTest::newRow("trailing comma in array") << inRule(R"("id": "r", "action": "bypass", "ports": [80, 443,])") << 3 << 62 << QString("trailing comma before ']'");
    QTest::newRow("unterminated string") << QByteArray(R"({"version": 1, "rules": [{"id": "abc}]})") << 1 << 33 << QString("unterminated string");
    QTest::newRow("line break in string") << QByteArray("{\"version\": 1,\n \"rules\": [{\"id\": \"abc\n}]}") << 2 << 19 << QString("line break before the closing");
    QTest::newRow("bad escape") << inRule(R"("id": "a\qb")") << 3 << 21 << QString("invalid escape \\q");
    QTest::newRow("lone surrogate") << inRule(R"("id": "a\udc00")") << 3 << 21 << QString("lone low surrogate");
    QTest::newRow("control character") << inRule("\"id\": \"a\tb\"") << 3 << 21 << QString("control character U+0009");
    QTest::newRow("invalid UTF-8 after multibyte") << inRule("\"id\": \"\xc3""\xa9""\xff""\"") << 3 << 21 << QString("invalid UTF-8");
    QTest::newRow("line comment") << QByteArray("{\"version\": 1, // one\n \"rules\": []}") << 1 << 16 << QString("comments are not allowed");
    QTest::newRow("block comment") << QByteArray(R"(/* rules */ {"version": 1})") << 1 << 1 << QString("comments are not allowed");
    QTest::newRow("duplicate key") << QByteArray("{\"version\": 1,\n \"rules\": [],\n \"version\": 1}") << 3 << 2 << QString("duplicate key \"version\" (first at 1:2)");
    QTest::newRow("truncated file") << QByteArray(R"({"version": 1, "rules": [{"id": "a",)") << 1 << 37 << QString("unexpected end of input");
    QTest::newRow("leading zero") << QByteArray(R"({"version": 01})") << 1 << 13 << QString("leading zeros");
    QTest::newRow("NaN") << QByteArray(R"({"version": NaN})") << 1 << 13 << QString("NaN and Infinity are not JSON");
    QTest::newRow("single quotes") << QByteArray(R"({'version': 1})") << 1 << 2 << QString("expected a string key");
    QTest::newRow("trailing garbage") << QByteArray(R"({"version": 1} x)") << 1 << 16 << QString("after the JSON value");
    QTest::newRow("empty input") << QByteArray(R"()") << 1 << 1 << QString("empty input");
    QTest::newRow("top level not an object") << QByteArray(R"([{"version": 1}])") << 1 << 1 << QString("expected an object at the top level, got an array");
    QTest::newRow("missing version") << QByteArray("{\n  \"rules\": []\n}") << 1 << 1 << QString("missing required key \"version\" at the top level");
    QTest::newRow("version 2") << QByteArray(R"({"version": 2})") << 1 << 13 << QString("unsupported version 2 (expected 1)");
    QTest::newRow("version as string") << QByteArray(R"({"version": "1"})") << 1 << 13 << QString("expected a number for \"version\", got a string");
    QTest::newRow("unknown top-level key") << QByteArray(R"({"version": 1, "rulez": []})") << 1 << 16 << QString("unknown key \"rulez\" at the top level (expected one of: version, redirectors, rules)");
    QTest::newRow("unknown rule key") << inRule(R"("id": "r", "action": "bypass", "destinaton": "10.0.0.0/8")") << 3 << 44 << QString("unknown key \"destinaton\" in rule (expected one of: id, enabled, action, redirector, protocol, destination, ports, process, uid, cgroup, expires)");
    QTest::newRow("unknown redirector key") << inRedirector(R"("id": "p", "port": 80)") << 2 << 30 << QString("unknown key \"port\" in redirector");
    QTest::newRow("rules not an array") << QByteArray(R"({"version": 1, "rules": {}})") << 1 << 25 << QString("expected an array for \"rules\", got an object");
    QTest::newRow("rule not an object") << QByteArray(R"({"version": 1, "rules": ["web"]})") << 1 << 26 << QString("expected an object for each rule, got a string");
    QTest::newRow("missing rule id") << inRule(R"("action": "bypass")") << 3 << 12 << QString("missing required key \"id\" in rule");
    QTest::newRow("id not a string") << inRule(R"("id": 5, "action": "bypass")") << 3 << 19 << QString("expected a string for \"id\", got a number");
    QTest::newRow("bad id characters") << inRule(R"("id": "no ssh", "action": "bypass")") << 3 << 19 << QString("invalid rule id \"no ssh\"");
    QTest::newRow("id with escaped line break") << inRule(R"("id": "a\nb", "action": "bypass")") << 3 << 19 << QString("invalid rule id \"a\\u000Ab\"");
    QTest::newRow("id too long") << inRule(R"("id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "action": "bypass")") << 3 << 19 << QString("invalid rule id");
    QTest::newRow("duplicate rule id") << QByteArray("{\"version\": 1, \"rules\": [\n  {\"id\": \"r\", \"action\": \"bypass\"},\n  {\"id\": \"r\", \"action\": \"bypass\"}]}") << 3 << 10 << QString("duplicate rule id \"r\" (first at 2:10)");
    QTest::newRow("duplicate redirector id") << QByteArray(R"({"version": 1, "redirectors": [{"id": "p"}, {"id": "p"}]})") << 1 << 52 << QString("duplicate redirector id \"p\" (first at 1:39)");
    QTest::newRow("numeric id zero") << inRedirector(R"("id": "ppkttia")") << 2 << 25 << QString("hashes to numeric id 0");
    QTest::newRow("numeric id collision") << QByteArray("{\"version\": 1, \"rules\": [{\"id\": \"gwzx\", \"action\": \"bypass\"},\n {\"id\": \"16cd\", \"action\": \"bypass\"}]}") << 2 << 9 << QString("has the same numeric id 0x6b3e8b99 as \"gwzx\" at 1:33");
    QTest::newRow("undeclared redirector") << inRule(R"("id": "r", "action": "redirect", "redirector": "b")") << 3 << 60 << QString("unknown redirector \"b\" (declared: a)");
    QTest::newRow("bypass with redirector") << inRule(R"("id": "r", "action": "bypass", "redirector": "a")") << 3 << 58 << QString("a bypass rule takes no \"redirector\"");
    QTest::newRow("redirect without redirector") << inRule(R"("id": "r", "action": "redirect", "ports": 80)") << 3 << 34 << QString("a redirect rule needs a \"redirector\"");
    QTest::newRow("unknown action") << inRule(R"("id": "r", "action": "drop")") << 3 << 34 << QString("unknown action \"drop\" (expected \"redirect\" or \"bypass\")");
    QTest::newRow("bad CIDR address") << inRule(R"("id": "r", "action": "bypass", "destination": "10.0.0.300/8")") << 3 << 59 << QString("invalid address \"10.0.0.300\" in CIDR");
    QTest::newRow("host bits set") << inRule(R"("id": "r", "action": "bypass", "destination": ["10.0.0.0/8", "192.168.1.1/24"])") << 3 << 74 << QString("host bits set in CIDR \"192.168.1.1/24\" (did you mean \"192.168.1.0/24\"?)");
    QTest::newRow("IPv4 prefix too long") << inRule(R"("id": "r", "action": "bypass", "destination": "10.0.0.0/33")") << 3 << 59 << QString("prefix length 33 too long");
    QTest::newRow("IPv6 prefix too long") << inRule(R"("id": "r", "action": "bypass", "destination": "2001:db8::/129")") << 3 << 59 << QString("prefix length 129 too long");
    QTest::newRow("prefix not a number") << inRule(R"("id": "r", "action": "bypass", "destination": "10.0.0.0/")") << 3 << 59 << QString("expected a prefix length");
    QTest::newRow("empty destination") << inRule(R"("id": "r", "action": "bypass", "destination": [])") << 3 << 59 << QString("\"destination\" is empty");
    QTest::newRow("too many CIDRs") << inRule(R"("id": "r", "action": "bypass", "destination": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9"])") << 3 << 156 << QString("more than 8 destinations");
    QTest::newRow("port 0") << inRule(R"("id": "r", "action": "bypass", "ports": 0)") << 3 << 53 << QString("port 0 out of range 1-65535");
    QTest::newRow("port 70000") << inRule(R"("id": "r", "action": "bypass", "ports": "80,70000")") << 3 << 53 << QString("port 70000 out of range 1-65535");
    QTest::newRow("reversed range") << inRule(R"("id": "r", "action": "bypass", "ports": [22, "9000-8000"])") << 3 << 58 << QString("reversed port range \"9000-8000\"");
    QTest::newRow("garbage in ports") << inRule(R"("id": "r", "action": "bypass", "ports": "80,http")") << 3 << 53 << QString("got \"http\"");
    QTest::newRow("fractional port") << inRule(R"("id": "r", "action": "bypass", "ports": 80.5)") << 3 << 53 << QString("expected a whole port number");
    QTest::newRow("too many port ranges") << inRule(R"("id": "r", "action": "bypass", "ports": [1, 2, 3, 4, 5, "6-7,8,9,10", 11])") << 3 << 69 << QString("more than 8 port ranges");
    QTest::newRow("comm too long") << inRule(R"("id": "r", "action": "bypass", "process": "process-name-16b")") << 3 << 55 << QString("of 1 to 15 bytes, got 16");
    QTest::newRow("unknown user") << inRule(R"("id": "r", "action": "bypass", "uid": "no-such-user-rc")") << 3 << 51 << QString("unknown user \"no-such-user-rc\"");
    QTest::newRow("negative uid") << inRule(R"("id": "r", "action": "bypass", "uid": -1)") << 3 << 51 << QString("uid must be a whole number from 0 to 4294967294");
    QTest::newRow("bad expires syntax") << inRule(R"("id": "r", "action": "bypass", "expires": "2026-12-31 00:00")") << 3 << 55 << QString("expected an RFC 3339 time");
    QTest::newRow("bad expires date") << inRule(R"("id": "r", "action": "bypass", "expires": "2027-02-29T00:00:00Z")") << 3 << 55 << QString("invalid date");
    QTest::newRow("cgroup with ..") << inRule(R"("id": "r", "action": "bypass", "cgroup": "/a/../b")") << 3 << 54 << QString("without \"..\"");
    QTest::newRow("udp protocol") << inRule(R"("id": "r", "action": "bypass", "protocol": "udp")") << 3 << 56 << QString("udp is not supported yet");
    QTest::newRow("unknown protocol") << inRule(R"("id": "r", "action": "bypass", "protocol": "icmp")") << 3 << 56 << QString("unknown protocol \"icmp\"");
    QTest::newRow("enabled not a bool") << inRule(R"("id": "r", "enabled": "yes", "action": "bypass")") << 3 << 35 << QString("expected a boolean for \"enabled\", got a string");
    QTest::newRow("external without listen") << inRedirector(R"("id": "x", "name": "X", "external": true)") << 2 << 55 << QString("external redirector \"x\" needs at least one \"listen\" endpoint");
    QTest::newRow("non-loopback listen") << inRedirector(R"("id": "p", "listen": ["127.0.0.1:8080", "[::2]:8080"])") << 2 << 59 << QString("listen endpoint [::2]:8080 is not loopback");
    QTest::newRow("non-loopback IPv4 listen") << inRedirector(R"("id": "p", "listen": "192.168.1.10:3128")") << 2 << 40 << QString("listen endpoint 192.168.1.10:3128 is not loopback (127.0.0.0/8 or ::1)");
    QTest::newRow("endpoint without port") << inRedirector(R"("id": "p", "listen": "127.0.0.1")") << 2 << 40 << QString("expected an endpoint like");
    QTest::newRow("endpoint with host name") << inRedirector(R"("id": "p", "listen": "localhost:8080")") << 2 << 40 << QString("invalid IPv4 address \"localhost\"");
    QTest::newRow("IPv6 endpoint without brackets") << inRedirector(R"("id": "p", "listen": "::1:8080")") << 2 << 40 << QString("expected an endpoint like");
    QTest::newRow("two IPv4 endpoints") << inRedirector(R"("id": "p", "listen": ["127.0.0.1:1", "127.0.0.2:2"])") << 2 << 56 << QString("more than one IPv4 listen endpoint");
    QTest::newRow("data over 64 bytes") << inRedirector(R"("id": "p", "data": "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd")") << 2 << 38 << QString("\"data\" is 65 bytes; at most 64");
    QTest::newRow("name not a string") << inRedirector(R"("id": "p", "name": ["P"])") << 2 << 38 << QString("expected a string for \"name\", got an array");

    // Generated files: deep nesting, oversize input, one rule and one redirector past the limits.
    QTest::newRow("nesting deeper than 64") << QByteArray(R"({"version":1,"rules":)") + QByteArray(64, '[')
                                                   + QByteArray(64, ']') + "}"
                                            << 1 << 85 << QString("nesting deeper than 64 levels");
    QTest::newRow("over 4 MiB") << QByteArray(R"({"version": 1, "pad": ")") + QByteArray(4 << 20, 'x') + "\"}" << 1
                                << 1 << QString("larger than 4 MiB");
    QByteArray rules = R"({"version": 1, "rules": [)";
    for (int i = 0; i <= CALLOUT_MAX_RULES; ++i)
        rules += (i ? ",\n" : "") + QByteArray("{\"id\": \"r") + QByteArray::number(i) + "\", \"action\": \"bypass\"}";
    QTest::newRow("257 rules") << rules + "]}" << 257 << 1 << QString("more than 256 rules");
    QByteArray redirectors = R"({"version": 1, "redirectors": [)";
    for (int i = 0; i <= CALLOUT_MAX_REDIRECTORS; ++i)
        redirectors += (i ? ",\n" : "") + QByteArray("{\"id\": \"p") + QByteArray::number(i) + "\"}";
    QTest::newRow("33 redirectors") << redirectors + "]}" << 33 << 1 << QString("more than 32 redirectors");
}

void TestRules::malformed()
{
    QFETCH(QByteArray, text);
    QFETCH(int, line);
    QFETCH(int, column);
    QFETCH(QString, message);
    RulesResult r = parseRules(std::string_view(text.constData(), size_t(text.size())));
    QVERIFY2(!r.ok(), "the file was accepted");
    QVERIFY2(QString::fromStdString(r.error.message).contains(message), r.error.str().c_str());
    QCOMPARE(r.error.line, line);
    QCOMPARE(r.error.column, column);
    QCOMPARE(r.error.str().substr(0, r.error.str().find(": ")),
             std::to_string(line) + ":" + std::to_string(column));
}

void TestRules::loadFile()
{
    RulesResult missing = loadRulesFile("/nonexistent/rules.json");
    QVERIFY(!missing.ok());
    QCOMPARE(missing.error.line, 0);
    QCOMPARE(missing.error.column, 0);
    QVERIFY2(missing.error.message.find(std::strerror(ENOENT)) != std::string::npos, missing.error.message.c_str());
    QVERIFY(missing.error.message.find("/nonexistent/rules.json") != std::string::npos);

    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    RulesResult isDir = loadRulesFile(dir.path().toStdString());
    QVERIFY(!isDir.ok());
    QVERIFY2(isDir.error.message.find(std::strerror(EISDIR)) != std::string::npos, isDir.error.message.c_str());

    std::string path = dir.filePath("rules.json").toStdString();
    std::ofstream(path) << kDesignExample;
    RulesResult loaded = loadRulesFile(path);
    QVERIFY2(loaded.ok(), loaded.error.str().c_str());
    QVERIFY(loaded.rules == parseOk(kDesignExample));
    QCOMPARE(loaded.rules.rules.size(), size_t(3));

    std::ofstream(path) << "{\"version\": 1,\n \"rules\": 7}";
    RulesResult bad = loadRulesFile(path);
    QCOMPARE(QString::fromStdString(bad.error.str()), QString("2:11: expected an array for \"rules\", got a number"));
}

void TestRules::roundTrip()
{
    RuleSet design = parseOk(kDesignExample);
    QCOMPARE(design.rules.size(), size_t(3));
    std::string text = rulesToJson(design);
    RulesResult back = parseRules(text);
    QVERIFY2(back.ok(), (back.error.str() + "\n" + text).c_str());
    QVERIFY(back.rules == design);

    RuleSet full = parseOk(R"({"version": 1,
      "redirectors": [{"id": "p", "name": "Proxy \"P\" \u00e9", "listen": "[::1]:9001", "data": "a\u0001b"},
                      {"id": "ext", "external": true, "listen": ["10.0.0.1:3128", "[2001:db8::1]:3128"]}],
      "rules": [
        {"id": "off", "enabled": false, "action": "redirect", "redirector": "p", "destination": "10.0.0.0/8",
         "ports": "1-1024,8080", "process": "wget", "uid": "root", "cgroup": "/system.slice",
         "expires": "2030-06-01T12:00:00.5+01:00"},
        {"id": "num-uid", "action": "redirect", "redirector": "ext", "uid": 1000,
         "destination": ["::/0", "192.0.2.0/24"], "expires": "1999-01-01T00:00:00Z"}]})");
    QCOMPARE(full.rules.size(), size_t(2));
    text = rulesToJson(full);
    back = parseRules(text);
    QVERIFY2(back.ok(), (back.error.str() + "\n" + text).c_str());
    QVERIFY(back.rules == full);
    QCOMPARE(back.rules.rules[0].user, std::string("root"));
    QCOMPARE(back.rules.redirectors[0].name, std::string("Proxy \"P\" \xC3\xA9"));

    // Equality sees every field but the source positions, so the round trip could fail.
    const std::vector<std::function<void(RuleSet&)>> edits = {
        [](RuleSet& s) { s.version = 2; },
        [](RuleSet& s) { s.redirectors[0].id = "q"; },
        [](RuleSet& s) { s.redirectors[0].name = "Q"; },
        [](RuleSet& s) { s.redirectors[0].external = true; },
        [](RuleSet& s) { s.redirectors[0].listen[0].port = 9002; },
        [](RuleSet& s) { s.redirectors[0].numericId = 1; },
        [](RuleSet& s) { s.redirectors[0].data = "x"; },
        [](RuleSet& s) { s.redirectors.pop_back(); },
        [](RuleSet& s) { s.rules[0].id = "on"; },
        [](RuleSet& s) { s.rules[0].numericId = 1; },
        [](RuleSet& s) { s.rules[0].enabled = true; },
        [](RuleSet& s) { s.rules[0].action = RuleAction::Bypass; },
        [](RuleSet& s) { s.rules[0].redirector = "ext"; },
        [](RuleSet& s) { s.rules[0].protocol = 17; },
        [](RuleSet& s) { s.rules[0].destination[0].prefixLen = 9; },
        [](RuleSet& s) { s.rules[0].ports[1].last = 8081; },
        [](RuleSet& s) { s.rules[0].process = "curl"; },
        [](RuleSet& s) { s.rules[0].uid = 1; },
        [](RuleSet& s) { s.rules[0].user = "daemon"; },
        [](RuleSet& s) { s.rules[0].cgroup = "/user.slice"; },
        [](RuleSet& s) { s.rules[0].expiresNs = *s.rules[0].expiresNs + 1; },
        [](RuleSet& s) { s.rules.pop_back(); },
    };
    for (size_t i = 0; i < edits.size(); ++i) {
        RuleSet changed = full;
        edits[i](changed);
        QVERIFY2(!(changed == full), qPrintable(QString("edit %1 went unnoticed").arg(i)));
    }
    RuleSet moved = full;
    moved.rules[0].position = {99, 1};
    moved.rules[0].cgroupPosition = {99, 2};
    moved.redirectors[0].position = {99, 3};
    QVERIFY(moved == full);
}

void TestRules::compileDesignExample()
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

void TestRules::compileAddresses()
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

void TestRules::compileExpiry_data()
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

void TestRules::compileExpiry()
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

void TestRules::compileMissingCgroup()
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

void TestRules::compileCgroup()
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

void TestRules::compileUnknownSlot()
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

void TestRules::compileLimits()
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

QTEST_APPLESS_MAIN(TestRules)
#include "tst_rules.moc"
