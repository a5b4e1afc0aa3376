// From a flow to a rule, on a real service in the sandbox (offscreen): "Redirect similar…" on a
// connection that went direct opens the rule form prefilled from it; OK shows the node's dry run
// ("would send 1 of the N connections … another way"), Apply installs the rule first in the set,
// and the next such connection goes through the redirector. Cancel in the dry run changes nothing.
#include <QApplication>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QTableView>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>

#include "console_fixture.h"
#include "preview_dialog.h"
#include "rule_form.h"
#include "rules_panel.h"

using namespace redirect;
using namespace redirect::test;

namespace {

int directRowTo(const gui::FlowModel& flows, const std::string& destination)
{
    for (int r = 0; r < flows.rowCount(); ++r)
        if (auto f = flows.flowSummary(r); f && f->direct() && f->endNs && f->destination == destination)
            return r;
    return -1;
}

bool viaA(const gui::FlowModel& flows, const std::string& destination)
{
    for (int r = 0; r < flows.rowCount(); ++r)
        if (auto f = flows.flowSummary(r); f && f->endNs && f->chainText() == "app -> A -> " + destination)
            return true;
    return false;
}

gui::PreviewDialog* openPreview(gui::MainWindow& window)
{
    for (auto* d : window.findChildren<gui::PreviewDialog*>())
        if (d->isVisible())
            return d;
    return nullptr;
}

}  // namespace

class TestRulesFromFlows : public QObject {
    Q_OBJECT
private slots:
    void redirectSimilarRoutesTheNextConnection();
    void cancelledPreviewChangesNothing();
};

void TestRulesFromFlows::redirectSimilarRoutesTheNextConnection()
{
    TcpServer ruled(AF_INET, "pong", 4), unruled(AF_INET, "pong", 4);
    Console console(oneRedirector(ruled.port()), {}, /*preview=*/true);
    const std::string dest = "127.0.0.1:" + std::to_string(unruled.port());
    QTRY_VERIFY_WITH_TIMEOUT(console.ruleRow("ra") >= 0, 10000);
    QCOMPARE(exchange(unruled.port()), std::string("pong"));
    QCOMPARE(exchange(ruled.port()), std::string("pong"));
    QTRY_VERIFY_WITH_TIMEOUT(directRowTo(console.flows, dest) >= 0, 10000);
    QVERIFY(!viaA(console.flows, dest));

    // The direct connection is listed once direct connections are shown, with its route in words.
    QAction* showDirect = console.window->findChild<QAction*>("showDirectAction");
    QVERIFY(showDirect);
    showDirect->setChecked(true);
    const int row = directRowTo(console.flows, dest);
    QCOMPARE(console.flows.index(row, gui::FlowModel::Route).data().toString(), QStringLiteral("direct, no rule"));

    QVERIFY(console.window->ruleFromFlow(row, engine::RuleAction::Redirect));
    gui::RuleForm* form = console.window->rulesPanel()->form();
    QVERIFY(form && form->isVisible());
    QCOMPARE(form->field("ports")->text(), QString::number(unruled.port()));
    QCOMPARE(form->field("destination")->text(), QStringLiteral("127.0.0.1/32"));
    QCOMPARE(form->field("process")->text(), QString::fromStdString(console.flows.flowSummary(row)->comm));
    QCOMPARE(form->redirector()->currentData().toString(), QStringLiteral("a"));
    // A bad field is said in the form, and OK keeps it open.
    form->field("ports")->setText("99999");
    QVERIFY(!form->findChild<QLabel*>("ruleFormError")->text().isEmpty());
    form->field("ports")->setText(QString::number(unruled.port()));
    QVERIFY(form->findChild<QLabel*>("ruleFormError")->text().isEmpty());
    QTest::mouseClick(form->findChild<QPushButton*>("ruleFormOk"), Qt::LeftButton);

    // The dry run, from the node: of the connections it saw, this one would go another way.
    QTRY_VERIFY_WITH_TIMEOUT(openPreview(*console.window), 10000);
    gui::PreviewDialog* preview = openPreview(*console.window);
    QVERIFY2(preview->headline().contains("would send 1 of the "), qPrintable(preview->headline()));
    QCOMPARE(preview->examples()->rowCount(), 1);
    QCOMPARE(preview->examples()->item(0, 1)->text(), QString::fromStdString(dest));
    QCOMPARE(preview->examples()->item(0, 2)->text(), QStringLiteral("direct (no rule)"));
    QCOMPARE(preview->examples()->item(0, 3)->text(), QStringLiteral("A"));
    QTest::mouseClick(preview->findChild<QPushButton*>("previewApply"), Qt::LeftButton);

    // Applied on the node (first in the set), and the next such connection takes it.
    QTRY_VERIFY_WITH_TIMEOUT(console.ruleRow("ra") == 1, 10000);
    QCOMPARE(exchange(unruled.port()), std::string("pong"));
    QTRY_VERIFY_WITH_TIMEOUT(viaA(console.flows, dest), 10000);
}

void TestRulesFromFlows::cancelledPreviewChangesNothing()
{
    TcpServer server(AF_INET, "pong", 4);
    Console console(oneRedirector(server.port()), {}, /*preview=*/true);
    QTRY_VERIFY_WITH_TIMEOUT(console.ruleRow("ra") >= 0, 10000);
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_VERIFY_WITH_TIMEOUT(viaA(console.flows, "127.0.0.1:" + std::to_string(server.port())), 10000);

    // Uncheck "ra": the dry run says the connection seen would go direct; Cancel keeps the rule.
    QTableView* view = console.window->rulesView();
    view->setFocus();
    view->setCurrentIndex(console.rules.index(console.ruleRow("ra"), gui::RulesModel::Id));
    QTest::keyClick(view, Qt::Key_Space);
    QTRY_VERIFY_WITH_TIMEOUT(openPreview(*console.window), 10000);
    gui::PreviewDialog* preview = openPreview(*console.window);
    QVERIFY2(preview->headline().startsWith("Disable rule ra would send 1 of the 1 connections"),
             qPrintable(preview->headline()));
    QCOMPARE(preview->examples()->item(0, 3)->text(), QStringLiteral("direct (no rule)"));
    QTest::mouseClick(preview->findChild<QPushButton*>("previewCancel"), Qt::LeftButton);
    QCOMPARE(console.rules.index(console.ruleRow("ra"), gui::RulesModel::Id).data(Qt::CheckStateRole).toInt(),
             int(Qt::Checked));
    QVERIFY(console.nodeRuleEnabled("ra"));
}

int main(int argc, char** argv) { return redirect::test::consoleTestMain<TestRulesFromFlows>(argc, argv); }

#include "tst_rules_from_flows.moc"
