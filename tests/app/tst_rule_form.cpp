// RuleForm: every key of a rule, UDP's included: the protocol, the idle timeout (only where UDP is
// matched) and the block action reach the rule as the rules file spells them, the parser judges
// what is typed, and editing a rule shows what it has.
#include <QApplication>
#include <QComboBox>
#include <QLineEdit>
#include <QTest>

#include <netinet/in.h>

#include <nlohmann/json.hpp>

#include "rule_form.h"
#include "rules.h"

using redirect::engine::RuleAction;
using redirect::engine::RuleSet;
using redirect::engine::RuleSpec;
using redirect::gui::RuleForm;

namespace {

RuleSet rules()
{
    RuleSet set;
    redirect::engine::RedirectorSpec dns;
    dns.id = "dns-inspector";
    dns.name = "DNS inspector";
    set.redirectors.push_back(dns);
    RuleSpec web;
    web.id = "web";
    web.redirector = "dns-inspector";
    web.ports = {{443, 443}};
    RuleSpec lookups;
    lookups.id = "lookups";
    lookups.redirector = "dns-inspector";
    lookups.protocol = IPPROTO_UDP;
    lookups.ports = {{53, 53}};
    lookups.idleTimeoutS = 45;
    set.rules = {web, lookups};
    return set;
}

nlohmann::json json(const RuleForm& form) { return nlohmann::json::parse(form.ruleJson()); }

// The form's rule is exactly `expected` (as the rules file spells it); the message shows both.
bool sameRule(const RuleForm& form, const char* expected, QByteArray* message)
{
    *message = QByteArray::fromStdString(form.ruleJson() + "\n  expected " + expected);
    return json(form) == nlohmann::json::parse(expected);
}

}  // namespace

class TestRuleForm : public QObject {
    Q_OBJECT
private slots:
    void blockUdp();
    void idleTimeoutOnlyWithUdp();
    void badIdleTimeoutIsRefused();
    void editingShowsWhatTheRuleHas();
};

void TestRuleForm::blockUdp()
{
    RuleForm form(rules(), -1);
    form.field("id")->setText("no-quic");
    form.action()->setCurrentIndex(form.action()->findData("block"));
    form.protocol()->setCurrentIndex(form.protocol()->findData("udp"));
    form.field("ports")->setText("443");
    QByteArray message;
    QVERIFY2(sameRule(form, R"({"id":"no-quic","action":"block","protocol":"udp","ports":"443"})", &message), message);
    QString error;
    auto set = form.ruleSet(&error);
    QVERIFY2(set, qPrintable(error));
    const RuleSpec& rule = set->rules.front();  // a new rule goes first
    QCOMPARE(rule.id, std::string("no-quic"));
    QCOMPARE(int(rule.action), int(RuleAction::Block));
    QCOMPARE(int(rule.protocol), int(IPPROTO_UDP));
    QCOMPARE(set->rules.size(), size_t(3));
}

void TestRuleForm::idleTimeoutOnlyWithUdp()
{
    RuleForm form(rules(), -1);
    QLineEdit* idle = form.field("idle_timeout");
    QVERIFY(idle);
    QVERIFY(!idle->isEnabled());  // TCP: no idle timeout
    idle->setText("30");
    QVERIFY(!json(form).contains("idle_timeout"));
    form.protocol()->setCurrentIndex(form.protocol()->findData("any"));
    QVERIFY(idle->isEnabled());
    QVERIFY(json(form)["protocol"] == "any");
    QVERIFY(json(form)["idle_timeout"] == 30);
    QString error;
    auto set = form.ruleSet(&error);
    QVERIFY2(set, qPrintable(error));
    QCOMPARE(int(set->rules.front().protocol), 0);
    QCOMPARE(set->rules.front().idleTimeoutS.value_or(0), 30u);
}

void TestRuleForm::badIdleTimeoutIsRefused()
{
    RuleForm form(rules(), -1);
    form.protocol()->setCurrentIndex(form.protocol()->findData("udp"));
    for (const char* bad : {"0", "86401", "soon"}) {
        form.field("idle_timeout")->setText(bad);
        QString error;
        QVERIFY2(!form.ruleSet(&error), bad);
        QVERIFY2(error.contains("idle_timeout"), qPrintable(error));
    }
}

void TestRuleForm::editingShowsWhatTheRuleHas()
{
    RuleForm udp(rules(), 1);
    QCOMPARE(udp.protocol()->currentData().toString(), QStringLiteral("udp"));
    QCOMPARE(udp.field("idle_timeout")->text(), QStringLiteral("45"));
    QByteArray message;
    QVERIFY2(sameRule(udp, R"({"id":"lookups","action":"redirect","redirector":"dns-inspector","protocol":"udp",)"
                           R"("ports":"53","idle_timeout":45})", &message), message);
    RuleForm tcp(rules(), 0);
    QCOMPARE(tcp.protocol()->currentData().toString(), QStringLiteral("tcp"));
    QVERIFY(!json(tcp).contains("protocol"));  // absent means tcp
}

QTEST_MAIN(TestRuleForm)
#include "tst_rule_form.moc"
