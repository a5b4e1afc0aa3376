#include "report_view.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QStatusBar>
#include <QTableView>

#include <algorithm>

#include "flow_filter_proxy.h"
#include "flow_model.h"

namespace redirect::gui {

namespace {

QString timeText(int64_t ns)
{
    return ns == 0 ? QString() : QString::fromStdString(engine::rfc3339Utc(ns));
}

}  // namespace

QString ReportView::titleFor(const QString& path, const engine::ReportContents& report)
{
    // The range the report was written for; where it was unbounded, the flows' own first and last.
    int64_t from = report.scope.fromNs, to = report.scope.toNs;
    int64_t first = 0, last = 0;
    for (const engine::Flow& f : report.flows) {
        if (f.startNs != 0 && (first == 0 || f.startNs < first))
            first = f.startNs;
        last = std::max({last, f.startNs, f.endNs});
    }
    from = from ? from : first;
    to = to ? to : last;
    const QString name = QFileInfo(path).fileName();
    if (from == 0 && to == 0)
        return tr("%1 — no flows").arg(name);
    return tr("%1 — %2 to %3").arg(name, timeText(from), timeText(to));
}

ReportView* ReportView::open(const QString& path, QWidget* parent, QString* error)
{
    engine::ReportReadResult r = engine::readReportFile(path.toStdString());
    if (!r.ok()) {
        *error = QString::fromStdString(r.error);
        return nullptr;
    }
    return new ReportView(path, std::move(r.report), parent);
}

void ReportView::chooseAndOpen(QWidget* parent)
{
    const QString path = QFileDialog::getOpenFileName(parent, tr("Open report"), {}, tr("JSON reports (*.json)"));
    if (path.isEmpty())
        return;
    QString error;
    if (ReportView* view = open(path, parent, &error))
        view->show();
    else
        QMessageBox::warning(parent, tr("Open report"), tr("This report cannot be shown:\n%1").arg(error));
}

ReportView::ReportView(const QString& path, engine::ReportContents&& report, QWidget* parent)
    : QMainWindow(parent), model_(new FlowModel(this)), proxy_(new FlowFilterProxy(this)), table_(new QTableView)
{
    setAttribute(Qt::WA_DeleteOnClose);
    // A window, not a child widget, even with the main window as parent.
    setWindowFlag(Qt::Window);
    setWindowTitle(titleFor(path, report));
    const QString status = tr("%n flow(s); %1, %2 on %3; scope: %4", nullptr, int(report.flows.size()))
                               .arg(QString::fromStdString(report.meta.generator), timeText(report.meta.generatedNs),
                                    QString::fromStdString(report.meta.hostname),
                                    QString::fromStdString(report.meta.scopeText));
    // Every flow of the file stays: nothing here is live, so nothing should be evicted.
    model_->setRetention(std::max(model_->retention(), report.flows.size()));
    model_->applyBatch(std::move(report.flows));
    proxy_->setSourceModel(model_);
    proxy_->setShowDirect(true);  // a report shows every flow it holds, direct ones too
    table_->setObjectName(QStringLiteral("reportFlowView"));
    table_->setModel(proxy_);
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->setSortingEnabled(true);
    table_->sortByColumn(FlowModel::Time, Qt::AscendingOrder);
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->setAlternatingRowColors(true);
    table_->verticalHeader()->hide();
    table_->horizontalHeader()->setStretchLastSection(true);
    setCentralWidget(table_);
    statusBar()->addWidget(new QLabel(status));
    resize(1000, 600);
}

}  // namespace redirect::gui
