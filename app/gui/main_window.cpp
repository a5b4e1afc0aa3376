#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QCloseEvent>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QElapsedTimer>
#include <QFontDatabase>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPointer>
#include <QPushButton>
#include <QSettings>
#include <QSignalBlocker>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTextBlock>
#include <QToolBar>
#include <QToolButton>
#include <QVBoxLayout>

#include <sstream>

#include "charts_panel.h"
#include "coexistence_view.h"
#include "flow_details.h"
#include "flow_legend.h"
#include "filter_completer.h"
#include "nodes_view.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "rules_model.h"
#include "rule_form.h"
#include "rules_panel.h"
#include "table_csv.h"

namespace redirect::gui {

namespace {

const char* const kHeaderKey = "flows/header-v3";  // v2: Rule and Route columns; v3: Proto and Datagrams

}  // namespace

MainWindow::MainWindow(FlowModel* flows, RulesModel* rules, EngineBridge* bridge, ExportDialog::Snapshot snapshot,
                       QWidget* parent)
    : QMainWindow(parent), flows_(flows), rules_(rules), bridge_(bridge), snapshot_(std::move(snapshot))
{
    setWindowTitle(tr("Redirect Console"));
    setWindowIcon(QIcon(":/icons/redirect-console.svg"));
    proxy_ = new FlowFilterProxy(this);
    proxy_->setSourceModel(flows_);

    auto* toolbar = addToolBar(tr("Flows"));
    toolbar->setObjectName("flowToolbar");
    filter_ = new QLineEdit;
    filter_->setObjectName("filterEdit");
    filter_->setPlaceholderText(tr("Filter: text or field:value, e.g. comm:curl port:443 -rule:bypass"));
    filter_->setClearButtonEnabled(true);
    filter_->setMinimumWidth(420);
    toolbar->addWidget(filter_);
    savedFilters_ = new SavedFilters(filter_, this);
    toolbar->addWidget(savedFilters_->button());
    connect(filter_, &QLineEdit::textChanged, this, [this](const QString& text) {
        bool ok = proxy_->setFilterText(text);
        filter_->setStyleSheet(ok ? QString() : "QLineEdit { background: #fde2e2; }");
        filter_->setToolTip(ok ? QString() : proxy_->filterError());
        showDetails();  // a flow the filter took away leaves the details pane too
    });

    buildTable();
    tabs_ = new QTabWidget;
    tabs_->setObjectName("bottomTabs");
    details_ = new FlowDetails;
    tabs_->addTab(details_, tr("Flow details"));
    rulesPanel_ = new RulesPanel(rules_, bridge_);
    tabs_->addTab(rulesPanel_, tr("Rules"));
    charts_ = new ChartsPanel;
    tabs_->addTab(charts_, tr("Charts"));
    log_ = monospaceView();
    log_->setMaximumBlockCount(5000);
    tabs_->addTab(log_, tr("Log"));
    nodes_ = new NodesPage(bridge_);
    tabs_->addTab(nodes_, tr("Nodes"));
    tabs_->addTab(new CoexistenceView(bridge_), tr("Coexistence"));
    auto* table = new QWidget;
    auto* tableLayout = new QVBoxLayout(table);
    tableLayout->setContentsMargins(0, 0, 0, 0);
    tableLayout->setSpacing(2);
    tableLayout->addWidget(flowView_, 1);
    tableLayout->addWidget(makeFlowLegend(table));
    splitter_ = new QSplitter(Qt::Vertical);
    splitter_->setObjectName("mainSplitter");
    splitter_->addWidget(table);
    splitter_->addWidget(tabs_);
    splitter_->setStretchFactor(0, 3);
    splitter_->setStretchFactor(1, 2);
    setCentralWidget(splitter_);
    buildActions(toolbar);
    flowCompleter_ = new FilterCompleter(filter_, flows_, bridge_, this);

    calloutLabel_ = new QLabel;
    redirectorsLabel_ = new QLabel;
    dropsLabel_ = new QLabel;
    countLabel_ = new QLabel;
    pausedLabel_ = new QLabel;
    pausedLabel_->setObjectName("pausedLabel");
    pausedLabel_->setStyleSheet("background: #ffe08a; color: #000; padding: 0 6px; font-weight: bold;");
    pausedLabel_->hide();
    statusBar()->addWidget(pausedLabel_);
    for (QLabel* l : {calloutLabel_, redirectorsLabel_, countLabel_, dropsLabel_})
        statusBar()->addWidget(l);
    connect(bridge_, &EngineBridge::ticked, this, [this](qint64) { onTick(); });
    connect(bridge_, &EngineBridge::flowsArrived, charts_, &ChartsPanel::addFlows);
    connect(bridge_, &EngineBridge::statsChanged, this, &MainWindow::onStats);
    connect(bridge_, &EngineBridge::logLines, this, [this](const QStringList& lines, quint64 dropped) {
        if (dropped)
            log_->appendPlainText(tr("… %1 log lines dropped").arg(dropped));
        log_->appendPlainText(lines.join('\n'));
    });
    // A toggle or reorder the node refused: the rules panel shows its rules again; say why.
    connect(bridge_, &EngineBridge::commandFailed, this, [this](const QString& what, const QString& reason) {
        log_->appendPlainText(tr("%1: not changed: %2").arg(what, reason));
        auto* box = new QMessageBox(QMessageBox::Warning, tr("Not changed"), tr("%1: not changed.\n\n%2").arg(what, reason),
                                    QMessageBox::Ok, this);
        box->setObjectName("commandFailedBox");
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
    });

    QSettings settings;
    resize(1280, 800);
    restoreGeometry(settings.value("window/geometry").toByteArray());
    restoreState(settings.value("window/state").toByteArray());
    splitter_->restoreState(settings.value("window/splitter").toByteArray());
    // The key names the column set: a header saved with other columns would put them in the wrong places.
    flowView_->horizontalHeader()->restoreState(settings.value(kHeaderKey).toByteArray());
    // The header menu's checks follow the restored column choices.
    const auto actions = flowView_->horizontalHeader()->actions();
    for (int c = 0; c < actions.size(); ++c) {
        QSignalBlocker block(actions[c]);
        actions[c]->setChecked(!flowView_->isColumnHidden(c));
    }
}

MainWindow::~MainWindow() = default;

NodesView* MainWindow::nodesView() const { return nodes_->table(); }
QTableView* MainWindow::rulesView() const { return rulesPanel_->view(); }
QComboBox* MainWindow::rulesNode() const { return rulesPanel_->nodeChooser(); }
ChainView* MainWindow::chainView() const { return details_->chainView(); }

void MainWindow::closeEvent(QCloseEvent* event)
{
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
    settings.setValue("window/splitter", splitter_->saveState());
    settings.setValue(kHeaderKey, flowView_->horizontalHeader()->saveState());
    QMainWindow::closeEvent(event);
}

void MainWindow::buildTable()
{
    flowView_ = new QTableView;
    flowView_->setObjectName("flowView");
    flowView_->setModel(proxy_);
    flowView_->setSortingEnabled(true);
    flowView_->sortByColumn(FlowModel::Time, Qt::DescendingOrder);
    flowView_->setSelectionBehavior(QAbstractItemView::SelectRows);
    flowView_->setAlternatingRowColors(true);
    flowView_->verticalHeader()->hide();
    flowView_->verticalHeader()->setDefaultSectionSize(22);
    flowView_->horizontalHeader()->setSectionsMovable(true);
    flowView_->horizontalHeader()->setStretchLastSection(true);
    // Widths that fit every default column into 1280 px; longer cells are elided, with a tooltip.
    flowView_->setTextElideMode(Qt::ElideMiddle);
    const std::pair<int, int> widths[] = {{FlowModel::Time, 92}, {FlowModel::Process, 130}, {FlowModel::Protocol, 44},
                                          {FlowModel::Destination, 140}, {FlowModel::Rule, 84}, {FlowModel::Route, 110},
                                          {FlowModel::Chain, 150}, {FlowModel::Records, 60}, {FlowModel::Context, 60},
                                          {FlowModel::BytesUp, 64}, {FlowModel::BytesDown, 64}, {FlowModel::Datagrams, 76},
                                          {FlowModel::Duration, 66}, {FlowModel::Reason, 76}};
    for (auto [column, width] : widths)
        flowView_->setColumnWidth(column, width);
    // Column choices: right-click the header to hide or show columns (remembered).
    flowView_->horizontalHeader()->setContextMenuPolicy(Qt::ActionsContextMenu);
    for (int c = 0; c < FlowModel::ColumnCount; ++c) {
        auto* a = new QAction(flows_->headerData(c, Qt::Horizontal).toString(), flowView_->horizontalHeader());
        a->setCheckable(true);
        a->setChecked(true);
        connect(a, &QAction::toggled, this, [this, c](bool on) { flowView_->setColumnHidden(c, !on); });
        flowView_->horizontalHeader()->addAction(a);
    }
    connect(flowView_->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this] { showDetails(); });
    // From a flow to a rule: right-click a flow.
    flowView_->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(flowView_, &QWidget::customContextMenuRequested, this, [this](const QPoint& at) {
        QModelIndex index = flowView_->indexAt(at);
        if (!index.isValid())
            return;
        auto* menu = new QMenu(flowView_);
        menu->setAttribute(Qt::WA_DeleteOnClose);
        const int row = proxy_->mapToSource(index).row();
        menu->addAction(tr("Redirect similar…"), this, [this, row] { ruleFromFlow(row, engine::RuleAction::Redirect); });
        menu->addAction(tr("Bypass similar…"), this, [this, row] { ruleFromFlow(row, engine::RuleAction::Bypass); });
        menu->popup(flowView_->viewport()->mapToGlobal(at));
    });
}

void MainWindow::showDetails()
{
    QModelIndex current = flowView_->currentIndex();
    if (!current.isValid()) {
        details_->setFlow(std::nullopt);
        shownFlow_ = 0;
        return;
    }
    int row = proxy_->mapToSource(current).row();
    std::optional<engine::Flow> flow = flows_->fullFlow(row);
    if (!flow)
        flow = flows_->flowSummary(row);
    details_->setFlow(flow);
    shownFlow_ = flow ? flows_->keyAt(row) : 0;
}

void MainWindow::onTick()
{
    ++ticks_;
    // Details follow the live flow (bytes, end reason) without moving the selection.
    if (shownFlow_ && tabs_->currentIndex() == 0)
        showDetails();
    countLabel_->setText(tr("%1 flows shown of %2").arg(proxy_->rowCount()).arg(flows_->rowCount()));
    if (flows_->isFrozen())
        showPaused();
    if (ticks_ % 10 != 0)
        return;
    quint64 total = static_cast<quint64>(flows_->rowCount()) + flows_->evictedCount();
    quint64 fresh = total >= seenFlows_ ? total - seenFlows_ : 0;
    seenFlows_ = total;
    QMap<QString, quint64> bytes;
    for (const auto& r : bridge_->lastStats().redirectors)
        if (!r.external)
            bytes[r.name] = r.bytesUp + r.bytesDown;
    charts_->addSample(static_cast<double>(ticks_) / 10.0, fresh, bridge_->lastStats().openFlows, bytes);
}

void MainWindow::onStats(const BridgeStats& stats)
{
    calloutLabel_->setText(stats.calloutAttached ? tr("%1, callout attached to %2").arg(stats.node, stats.scope)
                                                 : tr("%1, callout not attached: %2").arg(stats.node, stats.notice));
    rulesPanel_->setCanChange(stats.canChange);
    nodes_->table()->show(stats.nodes);
    QStringList reds, why;
    bool allWell = true;  // every redirector reachable and passing records on
    for (const auto& r : stats.redirectors) {
        QString text = r.external ? tr("%1 (external) :%2").arg(r.name).arg(r.port4)
                                  : tr("%1 :%2/[::1]:%3").arg(r.name).arg(r.port4).arg(r.port6);
        if (!r.available) {
            // Connections that match it go direct: say so where the administrator looks.
            text += tr(" (direct)");
            allWell = false;
        }
        QString tip = tr("%1: %2").arg(r.name, r.availability);
        if (r.recordsMissing) {
            // A proxy that forgets SET: the callout repairs its records, but its vendor should know.
            text += tr(" ⚠ does not forward redirect records (%1)").arg(r.recordsMissing);
            tip += tr("; %1 of its connections carried no redirect records: it does not call "
                      "SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS on its upstream socket (the callout repaired them)")
                       .arg(r.recordsMissing);
            allWell = false;
        }
        reds << text;
        why << tip;
    }
    redirectorsLabel_->setText(reds.join(", "));
    redirectorsLabel_->setToolTip(why.join('\n'));
    redirectorsLabel_->setStyleSheet(allWell ? QString() : "color: #b00020;");
    QString drops = tr("drops: %1 events, %2 updates").arg(stats.eventDrops).arg(stats.queueDrops);
    if (stats.stalled || stats.unverified)
        drops += tr("; went direct: %1 while the engine stalled, %2 without a verified listener")
                     .arg(stats.stalled)
                     .arg(stats.unverified);
    dropsLabel_->setText(drops);
    dropsLabel_->setStyleSheet(stats.eventDrops || stats.queueDrops || stats.stalled || stats.unverified
                                   ? "color: #b00020;"
                                   : QString());
}

ExportDialog* MainWindow::exportDialog()
{
    delete export_;
    export_ = new ExportDialog(snapshot_, filter_->text(),
                               bridge_->lastStats().scope.isEmpty()
                                   ? tr("console")
                                   : tr("callout scope %1").arg(bridge_->lastStats().scope),
                               this);
    return export_;
}

void MainWindow::showPaused()
{
    pausedLabel_->setText(tr("⏸ Paused: %1 flow updates waiting (Space resumes)").arg(flows_->pendingCount()));
}

bool MainWindow::selectRichestFlow()
{
    int best = -1;
    size_t hops = 0;
    for (int r = proxy_->rowCount() - 1; r >= 0; --r) {
        auto f = flows_->flowSummary(proxy_->mapToSource(proxy_->index(r, 0)).row());
        if (f && f->endNs && f->hops.size() > hops) {
            hops = f->hops.size();
            best = r;
        }
    }
    if (best < 0)
        return false;
    flowView_->selectRow(best);
    flowView_->scrollTo(proxy_->index(best, 0));
    tabs_->setCurrentIndex(0);
    showDetails();
    return true;
}

bool MainWindow::ruleFromFlow(int sourceRow, engine::RuleAction action)
{
    std::optional<engine::Flow> flow = flows_->flowSummary(sourceRow);
    if (!flow)
        return false;
    tabs_->setCurrentWidget(rulesPanel_);
    rulesPanel_->openForm(-1, &*flow, action);
    return true;
}

QStringList MainWindow::saveScreenshots(const QString& path)
{
    resize(1280, 800);
    showDirect_->setChecked(true);  // every kind of row, as the legend shows them
    const QString stem = path.left(path.lastIndexOf(QLatin1Char('.')));
    QStringList saved;
    for (int tab = 0; tab < tabs_->count(); ++tab) {
        tabs_->setCurrentIndex(tab);
        // A tab that asks its node (coexistence) answers within a moment: let it, and paint.
        QElapsedTimer waited;
        waited.start();
        while (waited.elapsed() < 700)
            QApplication::processEvents(QEventLoop::AllEvents, 50);
        QString tabName = tabs_->tabText(tab).toLower().replace(QLatin1Char(' '), QLatin1Char('-'));
        const QString name = tab == 0 ? path : stem + QLatin1Char('-') + tabName + ".png";
        if (!grab().save(name))
            return {};
        saved << name;
    }
    tabs_->setCurrentIndex(0);
    return saved;
}

QString MainWindow::selectedRowsCsv() const
{
    QList<int> rows;
    for (const QModelIndex& index : flowView_->selectionModel()->selectedRows())
        rows << index.row();
    return rowsAsCsv(*proxy_, rows);
}

}  // namespace redirect::gui
