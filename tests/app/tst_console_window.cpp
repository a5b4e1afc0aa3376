// The window around the table, on a real service in the sandbox (offscreen): the menu bar's
// entries, the visible paused state, the details pane that clears when the filter takes its flow
// away, and File > History… as a window of the node's recorded flows, exportable.
#include <QApplication>
#include <QHeaderView>
#include <QElapsedTimer>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QStatusBar>
#include <QTableView>
#include <QTemporaryDir>
#include <QTest>

#include "chain_view.h"
#include "console_fixture.h"
#include "flow_filter_proxy.h"
#include "report_view.h"

using namespace redirect;
using namespace redirect::test;

namespace {

QStringList menuEntries(QMenuBar* bar, const QString& title)
{
    for (QAction* menu : bar->actions())
        if (menu->text().remove('&') == title) {
            QStringList out;
            for (QAction* a : menu->menu()->actions())
                if (!a->isSeparator())
                    out << a->text();
            return out;
        }
    return {};
}

}  // namespace

class TestConsoleWindow : public QObject {
    Q_OBJECT
private slots:
    void menusPauseAndDetails();
    void historyWindowShowsTheNodesFlows();
};

void TestConsoleWindow::menusPauseAndDetails()
{
    TcpServer server(AF_INET, "pong", 4);
    Console console(oneRedirector(server.port()));
    QMenuBar* bar = console.window->menuBar();
    QCOMPARE(menuEntries(bar, "File"),
             (QStringList{"Connect to node…", "History…", "Open report…", "Export…", "Quit"}));
    QCOMPARE(menuEntries(bar, "Capture"), (QStringList{"Pause", "Resume", "Clear"}));
    QVERIFY(menuEntries(bar, "View").contains("Show direct connections"));
    QVERIFY(menuEntries(bar, "Help").contains("Documentation"));

    // At the default size every default column is on screen, the last one with room to read.
    console.window->resize(1280, 800);
    QApplication::processEvents();
    QHeaderView* header = console.window->flowView()->horizontalHeader();
    const int lastStart = header->sectionViewportPosition(gui::FlowModel::Node);
    QVERIFY2(lastStart >= 0 && lastStart + 60 <= console.window->flowView()->viewport()->width(),
             qPrintable(QStringLiteral("Node starts at %1 of %2 px").arg(lastStart).arg(
                 console.window->flowView()->viewport()->width())));

    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(console.endedChains().size(), 1, 10000);

    // Paused, and it shows: a label in the status bar, the title; updates wait.
    QAction* pause = console.window->findChild<QAction*>("pauseAction");
    auto* paused = console.window->findChild<QLabel*>("pausedLabel");
    QVERIFY(pause && paused);
    QVERIFY(!paused->isVisible());
    pause->trigger();
    QVERIFY(console.flows.isFrozen());
    QVERIFY(paused->isVisible());
    QVERIFY(console.window->windowTitle().contains("paused"));
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_VERIFY_WITH_TIMEOUT(console.flows.pendingCount() > 0, 10000);
    QCOMPARE(console.endedChains().size(), 1);
    QTRY_VERIFY_WITH_TIMEOUT(paused->text().contains(QString::number(console.flows.pendingCount())), 3000);
    console.window->findChild<QAction*>("resumeAction")->trigger();
    QVERIFY(!paused->isVisible());
    QVERIFY(console.flows.rowCount() >= 2);  // what waited is in the table (its end may follow)
    QTRY_COMPARE_WITH_TIMEOUT(console.endedChains().size(), 2, 10000);

    // The details follow the selection, and clear when the filter takes the flow away.
    console.window->flowView()->selectRow(0);
    QTRY_VERIFY(console.window->chainView()->flow().has_value());
    console.window->filterEdit()->setText("comm:no-such-process");
    QCOMPARE(console.window->proxy()->rowCount(), 0);
    QVERIFY(!console.window->chainView()->flow().has_value());
}

void TestConsoleWindow::historyWindowShowsTheNodesFlows()
{
    TcpServer server(AF_INET, "pong", 4);
    Console console(oneRedirector(server.port()));
    const int64_t before = engine::wallNowNs();
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(console.endedChains().size(), 2, 10000);
    // The history is written behind the live table: ask until the node has both (bounded).
    QPointer<gui::ReportView> view;
    QElapsedTimer asked;
    asked.start();
    while (asked.elapsed() < 20000) {
        delete view.data();
        view = gui::ReportView::history(console.bridge.get(), before - 60'000'000'000,
                                        engine::wallNowNs() + 60'000'000'000, console.window.get());
        QTRY_VERIFY_WITH_TIMEOUT(!view->statusText().startsWith("Asking"), 10000);
        QVERIFY2(!view->statusText().startsWith("No history"), qPrintable(view->statusText()));
        if (view->model()->rowCount() == 2)
            break;
        QTest::qWait(200);
    }
    QCOMPARE(view->model()->rowCount(), 2);
    QVERIFY2(view->windowTitle().startsWith("History of local"), qPrintable(view->windowTitle()));
    QCOMPARE(view->statusText(), QStringLiteral("2 flows from the history of local"));
    const QString chain = view->model()->index(0, gui::FlowModel::Chain).data().toString();
    QCOMPARE(chain, QStringLiteral("A → 127.0.0.1:%1").arg(server.port()));
    QVERIFY(view->findChild<QAction*>("reportExportAction"));
    delete view.data();
}

int main(int argc, char** argv) { return redirect::test::consoleTestMain<TestConsoleWindow>(argc, argv); }

#include "tst_console_window.moc"
