// GetCoexistence over the real API of a real service, and the Coexistence tab showing it
// (offscreen): the service's callout covers a child cgroup of the sandbox; a foreign connect4
// program attached to that scope before the service started runs before ours, one attached to
// its parent afterwards runs after ours. Both are listed with their warning and owner (this test);
// once detached, a refresh no longer lists it.
#include <memory>

#include <QApplication>
#include <QLabel>
#include <QPushButton>
#include <QSignalSpy>
#include <QTableWidget>

#include <unistd.h>

#include "coexistence_view.h"
#include "engine_bridge.h"
#include "flow_model.h"
#include "foreign_program.h"
#include "log_sink.h"
#include "node_client.h"
#include "rules_model.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;

namespace {

const v1::HookProgram* find(const v1::Coexistence& c, const std::string& hook, uint32_t progId)
{
    for (const v1::HookProgram& p : c.programs())
        if (p.hook() == hook && p.prog_id() == progId)
            return &p;
    return nullptr;
}

bool heldBy(const v1::HookProgram& p, uint32_t pid)
{
    for (const v1::BpfOwner& o : p.owners())
        if (o.pid() == pid && o.holds() == "link")
            return true;
    return false;
}

// The view's row of program `progId` at `hook`, or -1.
int rowOf(const QTableWidget& table, const QString& hook, uint32_t progId)
{
    for (int r = 0; r < table.rowCount(); ++r)
        if (table.item(r, gui::CoexistenceView::Hook)->text() == hook &&
            table.item(r, gui::CoexistenceView::Program)->data(gui::CoexistenceView::ProgIdRole).toUInt() == progId)
            return r;
    return -1;
}

}  // namespace

class TestCoexistenceView : public QObject {
    Q_OBJECT

private slots:
    void foreignProgramsOverTheApiAndInTheView();
};

void TestCoexistenceView::foreignProgramsOverTheApiAndInTheView()
{
    const std::string scope = sandbox().makeChildCgroup("coexist-node");
    const std::string parent = sandbox().cgroup();
    ForeignProgram before("vendor_before", BPF_CGROUP_INET4_CONNECT, scope);
    ServiceUnderTest service(ServiceUnderTest::rulesFor(9, true), {}, scope);
    QVERIFY2(service.ready(), "the service's API never answered");
    auto after = std::make_unique<ForeignProgram>("vendor_after", BPF_CGROUP_INET4_CONNECT, parent);
    const uint32_t afterId = after->id();

    // Over the API, as any client sees it.
    client::NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
    std::string error;
    std::optional<v1::Coexistence> c = node.getCoexistence(&error);
    QVERIFY2(c, error.c_str());
    const std::string text = c->DebugString();
    QCOMPARE(c->scope(), scope);
    QVERIFY2(c->cgroups_size() >= 2 && c->cgroups(1) == parent, text.c_str());
    const v1::HookProgram* p = find(*c, "connect4", before.id());
    QVERIFY2(p, text.c_str());
    QCOMPARE(p->order(), v1::RUN_ORDER_BEFORE_OURS);
    QCOMPARE(p->name(), std::string("vendor_before"));
    QVERIFY2(p->warning().find("runs before ours") != std::string::npos, text.c_str());
    QVERIFY2(heldBy(*p, static_cast<uint32_t>(::getpid())), text.c_str());
    p = find(*c, "connect4", afterId);
    QVERIFY2(p, text.c_str());
    QCOMPARE(p->cgroup(), parent);
    QCOMPARE(p->depth(), 1u);
    QCOMPARE(p->order(), v1::RUN_ORDER_AFTER_OURS);
    QVERIFY2(p->warning().find("runs after ours") != std::string::npos, text.c_str());
    // Ours: the service's, held by its links (not this process's).
    int oursOnConnect4 = 0;
    for (const v1::HookProgram& h : c->programs())
        if (h.hook() == "connect4" && h.ours()) {
            ++oursOnConnect4;
            QCOMPARE(h.order(), v1::RUN_ORDER_OURS);
            QVERIFY2(h.owners_size() > 0 && h.owners(0).pid() != static_cast<uint32_t>(::getpid()) &&
                         h.owners(0).name().rfind("redirect-consol", 0) == 0,
                     text.c_str());
        }
    QCOMPARE(oursOnConnect4, 1);
    QVERIFY2(c->foreign() >= 2 && c->warnings() >= 2, text.c_str());

    // The tab, through the console's bridge, off the GUI thread.
    gui::FlowModel flows;
    gui::RulesModel rules;
    gui::EngineBridge bridge(&flows, &rules, std::make_shared<gui::LogSink>());
    QString addError;
    QVERIFY2(bridge.addNode({"local", "unix:" + service.socket(), {}, {}, {}}, &addError), qPrintable(addError));
    gui::CoexistenceView view(&bridge);
    QSignalSpy refreshed(&view, &gui::CoexistenceView::refreshed);
    view.show();  // the first show asks the node
    QTRY_VERIFY_WITH_TIMEOUT(refreshed.count() > 0, 15000);
    QTableWidget& table = *view.table();
    const int beforeRow = rowOf(table, "connect4", before.id());
    const int afterRow = rowOf(table, "connect4", afterId);
    QVERIFY2(beforeRow >= 0 && afterRow >= 0, qPrintable(view.summary()->text()));
    QVERIFY(table.item(beforeRow, gui::CoexistenceView::Order)->text().startsWith("before ours"));
    QVERIFY(table.item(afterRow, gui::CoexistenceView::Order)->text().startsWith("after ours"));
    QCOMPARE(table.item(beforeRow, gui::CoexistenceView::Ours)->text(), QString("foreign"));
    QVERIFY(table.item(afterRow, gui::CoexistenceView::Warning)->text().contains("runs after ours"));
    QVERIFY(table.item(afterRow, gui::CoexistenceView::Owner)->text().contains(QString("pid %1").arg(::getpid())));
    // Highlighted: a warning row has a background, our own rows do not.
    QVERIFY(table.item(afterRow, gui::CoexistenceView::Hook)->background().style() != Qt::NoBrush);
    QVERIFY(view.summary()->text().contains("foreign program"));
    QVERIFY(view.summary()->text().contains("warning"));

    // Detached, and Refresh: its row is gone, the other stays.
    after.reset();
    const int seen = static_cast<int>(refreshed.count());
    view.refreshButton()->click();
    QTRY_VERIFY_WITH_TIMEOUT(refreshed.count() > seen, 15000);
    QCOMPARE(rowOf(table, "connect4", afterId), -1);
    QVERIFY(rowOf(table, "connect4", before.id()) >= 0);
    c = node.getCoexistence(&error);
    QVERIFY2(c, error.c_str());
    QVERIFY(!find(*c, "connect4", afterId));
}

int main(int argc, char** argv)
{
    if (!redirect::test::enterSandbox())
        return 1;
    QApplication app(argc, argv);
    TestCoexistenceView tc;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&tc, argc, argv);
}

#include "tst_coexistence_view.moc"
