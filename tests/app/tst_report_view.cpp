// "Open report…" (app/gui/report_view.h), offscreen: a JSON report the engine wrote opens in a
// read-only window with the live table's model and columns, titled with its file name and time
// range; a bad file opens nothing and says why.
#include <QHeaderView>
#include <QPointer>
#include <QTableView>
#include <QTemporaryDir>
#include <QtTest>

#include "flow_model.h"
#include "report_fixtures.h"
#include "report_view.h"

using namespace redirect;
using namespace report_test;
using redirect::gui::FlowModel;
using redirect::gui::ReportView;

class TestReportView : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { QVERIFY(dir_.isValid()); }
    void showsTheReportsRows();
    void titleFallsBackToTheFlowsRange();
    void badFileOpensNothing();

private:
    QTemporaryDir dir_;
};

void TestReportView::showsTheReportsRows()
{
    const QString path = dir_.filePath(QStringLiteral("week.json"));
    const engine::ReportScope scope{"", kT0, kT0 + 3600 * kSecond};
    QVERIFY(writeFile(path, engine::ReportFormat::Json, sampleFlows(), scope));
    QString error;
    QPointer<ReportView> view = ReportView::open(path, nullptr, &error);
    QVERIFY2(view, qPrintable(error));
    view->show();
    QVERIFY(QTest::qWaitForWindowExposed(view));
    QCOMPARE(view->windowTitle(), QStringLiteral("week.json — 2023-11-14T22:13:20.123Z to 2023-11-14T23:13:20.123Z"));

    // The main table's model and columns, one row per flow of the file.
    QTableView* table = view->table();
    QCOMPARE(table->model()->rowCount(), 6);
    QCOMPARE(table->model()->columnCount(), int(FlowModel::ColumnCount));
    QCOMPARE(table->model()->headerData(FlowModel::Chain, Qt::Horizontal).toString(), QStringLiteral("Chain"));
    QCOMPARE(view->model()->rowCount(), 6);
    // Sorted by time, oldest first: the first row is flow 1 with its chain as the live table shows it.
    const QModelIndex first = table->model()->index(0, FlowModel::Chain);
    QCOMPARE(table->model()->data(first).toString(),
             QStringLiteral("Web inspector → DLP agent → 93.184.216.34:443"));
    QCOMPARE(table->model()->data(table->model()->index(0, FlowModel::Time), FlowModel::FlowIdRole).toULongLong(),
             1ull);
    QCOMPARE(table->model()->data(table->model()->index(5, FlowModel::Destination)).toString(),
             QStringLiteral("10.0.0.3:443"));
    // Direct flows too (the live table hides them unless asked): flow 4 went direct by a bypass rule.
    QCOMPARE(table->model()->data(table->model()->index(3, FlowModel::Destination)).toString(),
             QStringLiteral("cr\ronly (10.0.0.2:22)"));
    // Read-only: no cell can be edited.
    QCOMPARE(table->editTriggers(), QAbstractItemView::NoEditTriggers);
    QVERIFY(!(table->model()->flags(first) & Qt::ItemIsEditable));
    QVERIFY(view->testAttribute(Qt::WA_DeleteOnClose));
    view->close();
    QTRY_VERIFY(view.isNull());
}

void TestReportView::titleFallsBackToTheFlowsRange()
{
    // Written without a time range: the title shows the first start and the last end of its flows.
    engine::ReportContents report;
    report.flows = sampleFlows();
    QCOMPARE(ReportView::titleFor(QStringLiteral("/x/all.json"), report),
             QStringLiteral("all.json — 2023-11-14T22:13:20.123Z to 2023-11-14T22:14:01.123Z"));
    QCOMPARE(ReportView::titleFor(QStringLiteral("/x/none.json"), engine::ReportContents{}),
             QStringLiteral("none.json — no flows"));
}

void TestReportView::badFileOpensNothing()
{
    const QString path = dir_.filePath(QStringLiteral("cut.json"));
    QVERIFY(writeFile(path, engine::ReportFormat::Json, sampleFlows()));
    QFile file(path);
    QVERIFY(file.resize(file.size() / 2));
    QString error;
    QVERIFY(!ReportView::open(path, nullptr, &error));
    QVERIFY2(error.startsWith(path + QStringLiteral(": truncated: ")), qPrintable(error));
    QVERIFY(!ReportView::open(dir_.filePath(QStringLiteral("absent.json")), nullptr, &error));
    QVERIFY2(error.endsWith(QStringLiteral("absent.json: No such file or directory")), qPrintable(error));
}

QTEST_MAIN(TestReportView)
#include "tst_report_view.moc"
