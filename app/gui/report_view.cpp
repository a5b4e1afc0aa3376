#include "report_view.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QPointer>
#include <QToolBar>
#include <QStatusBar>
#include <QTableView>

#include <algorithm>

#include "engine_bridge.h"
#include "export_dialog.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"

namespace redirect::gui {

namespace {

// A history window holds at most this many flows (the query's limit).
constexpr uint64_t kMostHistoryFlows = 1'000'000;

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
    const size_t n = r.report.flows.size();
    const QString status = (n == 1 ? tr("1 flow; %1, %2 on %3; scope: %4") : tr("%1 flows; %2, %3 on %4; scope: %5").arg(n))
                               .arg(QString::fromStdString(r.report.meta.generator), timeText(r.report.meta.generatedNs),
                                    QString::fromStdString(r.report.meta.hostname),
                                    QString::fromStdString(r.report.meta.scopeText));
    auto* view = new ReportView(titleFor(path, r.report), tr("report %1").arg(QFileInfo(path).fileName()),
                                std::move(r.report.flows), parent);
    view->setStatus(status);
    return view;
}

ReportView* ReportView::history(EngineBridge* bridge, int64_t fromNs, int64_t toNs, QWidget* parent)
{
    const QString node = bridge->selectedNode();
    const QString range = tr("%1 to %2").arg(timeText(fromNs), timeText(toNs));
    auto* view = new ReportView(tr("History of %1 — %2").arg(node, range), tr("history of node %1, %2").arg(node, range),
                                {}, parent);
    view->setStatus(tr("Asking %1…").arg(node));
    QPointer<ReportView> alive(view);
    bridge->queryHistory(fromNs, toNs, kMostHistoryFlows, view->model_, [alive, node](bool ok, const QString& error) {
        if (!alive)
            return;
        const int n = alive->model_->rowCount();
        alive->setStatus(ok ? (n == 1 ? tr("1 flow from the history of %1") : tr("%1 flows from the history of %2").arg(n))
                                  .arg(node)
                            : tr("No history from %1: %2").arg(node, error));
    });
    return view;
}

QString ReportView::statusText() const { return status_->text(); }

void ReportView::setStatus(const QString& text) { status_->setText(text); }

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

ReportView::ReportView(const QString& title, const QString& scopeText, std::vector<engine::Flow>&& flows,
                       QWidget* parent)
    : QMainWindow(parent), model_(new FlowModel(this)), proxy_(new FlowFilterProxy(this)), table_(new QTableView),
      status_(new QLabel), scopeText_(scopeText)
{
    setAttribute(Qt::WA_DeleteOnClose);
    // A window, not a child widget, even with the main window as parent.
    setWindowFlag(Qt::Window);
    setWindowTitle(title);
    // Every flow stays: nothing here is live, so nothing should be evicted.
    model_->setRetention(std::max({model_->retention(), flows.size(), size_t(kMostHistoryFlows)}));
    model_->applyBatch(std::move(flows));
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
    auto* toolbar = addToolBar(tr("Report"));
    QAction* exportAction = toolbar->addAction(tr("Export…"));
    exportAction->setObjectName("reportExportAction");
    connect(exportAction, &QAction::triggered, this, [this] {
        auto* dialog = new ExportDialog(
            [this] {
                std::vector<engine::Flow> out;
                for (int r = 0; r < model_->rowCount(); ++r) {
                    std::optional<engine::Flow> f = model_->fullFlow(r);  // with blobs while cached
                    if (!f)
                        f = model_->flowSummary(r);
                    if (f)
                        out.push_back(std::move(*f));
                }
                return out;
            },
            QString(), scopeText_, this);
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        dialog->show();
    });
    statusBar()->addWidget(status_);
    resize(1000, 600);
}

}  // namespace redirect::gui
