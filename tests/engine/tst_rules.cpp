// Rules file: the DESIGN.md example and other valid files, malformed files with
// the line, column and message of their error, and the JSON writer's round trip.
// The JSON reader has tst_json; compilation to callout_rule has tst_rules_compile.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include <QtTest>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "callout_abi.h"
#include "json.h"
#include "rules.h"
#include "rules_fixtures.h"

using namespace redirect::engine;
using namespace rules_test;

namespace {

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

}  // namespace

class TestRules : public QObject {
    Q_OBJECT

private slots:
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
};

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
    QTest::newRow("unknown rule key") << inRule(R"("id": "r", "action": "bypass", "destinaton": "10.0.0.0/8")") << 3 << 44 << QString("unknown key \"destinaton\" in rule (expected one of: id, enabled, action, redirector, protocol, destination, ports, process, uid, cgroup, expires, idle_timeout)");
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
    QTest::newRow("unknown action") << inRule(R"("id": "r", "action": "drop")") << 3 << 34 << QString("unknown action \"drop\" (expected \"redirect\", \"bypass\" or \"block\")");
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
    QTest::newRow("unknown protocol") << inRule(R"("id": "r", "action": "bypass", "protocol": "icmp")") << 3 << 56 << QString("unknown protocol \"icmp\" (expected \"tcp\", \"udp\" or \"any\")");
    QTest::newRow("idle timeout on a tcp rule") << inRule(R"("id": "r", "action": "bypass", "idle_timeout": 30)") << 3 << 60 << QString("\"idle_timeout\" applies to UDP flows");
    QTest::newRow("idle timeout 0") << inRule(R"("id": "r", "action": "bypass", "protocol": "udp", "idle_timeout": 0)") << 3 << 79 << QString("whole number of seconds from 1 to 86400");
    QTest::newRow("idle timeout as text") << inRule(R"("id": "r", "action": "bypass", "protocol": "any", "idle_timeout": "60s")") << 3 << 79 << QString("whole number of seconds");
    QTest::newRow("block with a redirector") << inRule(R"("id": "r", "action": "block", "redirector": "p")") << 3 << 57 << QString("a block rule takes no \"redirector\"");
    QTest::newRow("enabled not a bool") << inRule(R"("id": "r", "enabled": "yes", "action": "bypass")") << 3 << 35 << QString("expected a boolean for \"enabled\", got a string");
    QTest::newRow("owner on our own redirector") << inRedirector(R"("id": "p", "owner": "root")") << 2 << 39 << QString("\"owner\" applies only to an \"external\" redirector");
    QTest::newRow("owner unknown user") << inRedirector(R"("id": "x", "external": true, "listen": "127.0.0.1:1", "owner": "no-such-user-here")") << 2 << 82 << QString("unknown user \"no-such-user-here\"");
    QTest::newRow("owner_process too long") << inRedirector(R"("id": "x", "external": true, "listen": "127.0.0.1:1", "owner_process": "a-very-long-process-name")") << 2 << 90 << QString("\"owner_process\" must be a command name (comm) of 1 to 15 bytes, got 24");
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
                      {"id": "ext", "external": true, "listen": ["10.0.0.1:3128", "[2001:db8::1]:3128"],
                       "owner": "nobody", "owner_process": "vendorx-proxy"}],
      "rules": [
        {"id": "off", "enabled": false, "action": "redirect", "redirector": "p", "destination": "10.0.0.0/8",
         "ports": "1-1024,8080", "process": "wget", "uid": "root", "cgroup": "/system.slice",
         "expires": "2030-06-01T12:00:00.5+01:00"},
        {"id": "num-uid", "action": "redirect", "redirector": "ext", "uid": 1000,
         "destination": ["::/0", "192.0.2.0/24"], "expires": "1999-01-01T00:00:00Z"},
        {"id": "dns", "action": "redirect", "redirector": "p", "protocol": "udp", "ports": 53, "idle_timeout": 20},
        {"id": "quic", "action": "block", "protocol": "any", "ports": 443}]})");
    QCOMPARE(full.rules.size(), size_t(4));
    QCOMPARE(int(full.rules[2].protocol), IPPROTO_UDP);
    QCOMPARE(full.rules[2].idleTimeoutS, std::optional<uint32_t>(20));
    QCOMPARE(int(full.rules[3].protocol), 0);
    QCOMPARE(int(full.rules[3].action), int(RuleAction::Block));
    text = rulesToJson(full);
    back = parseRules(text);
    QVERIFY2(back.ok(), (back.error.str() + "\n" + text).c_str());
    QVERIFY(back.rules == full);
    QCOMPARE(back.rules.rules[0].user, std::string("root"));
    QCOMPARE(back.rules.redirectors[1].ownerUid, uint32_t(65534));
    QCOMPARE(back.rules.redirectors[1].ownerProcess, std::string("vendorx-proxy"));
    QCOMPARE(back.rules.redirectors[0].name, std::string("Proxy \"P\" \xC3\xA9"));

    // Equality sees every field but the source positions, so the round trip could fail.
    const std::vector<std::function<void(RuleSet&)>> edits = {
        [](RuleSet& s) { s.version = 2; },
        [](RuleSet& s) { s.redirectors[0].id = "q"; },
        [](RuleSet& s) { s.redirectors[0].name = "Q"; },
        [](RuleSet& s) { s.redirectors[0].external = true; },
        [](RuleSet& s) { s.redirectors[0].listen[0].port = 9002; },
        [](RuleSet& s) { s.redirectors[0].numericId = 1; },
        [](RuleSet& s) { s.redirectors[1].ownerUid = 0; },
        [](RuleSet& s) { s.redirectors[1].ownerProcess = "other"; },
        [](RuleSet& s) { s.redirectors[0].data = "x"; },
        [](RuleSet& s) { s.redirectors.pop_back(); },
        [](RuleSet& s) { s.rules[0].id = "on"; },
        [](RuleSet& s) { s.rules[0].numericId = 1; },
        [](RuleSet& s) { s.rules[0].enabled = true; },
        [](RuleSet& s) { s.rules[0].action = RuleAction::Bypass; },
        [](RuleSet& s) { s.rules[0].redirector = "ext"; },
        [](RuleSet& s) { s.rules[0].protocol = 17; },
        [](RuleSet& s) { s.rules[2].idleTimeoutS = 21; },
        [](RuleSet& s) { s.rules[3].action = RuleAction::Bypass; },
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

QTEST_APPLESS_MAIN(TestRules)
#include "tst_rules.moc"
