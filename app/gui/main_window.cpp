#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QCloseEvent>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFontDatabase>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
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
#include <QVBoxLayout>

#include <sstream>

#include "chain_view.h"
#include "charts_panel.h"
#include "coexistence_view.h"
#include "nodes_view.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "output_file.h"
#include "rules.h"
#include "rules_model.h"
#include "table_csv.h"

namespace redirect::gui {

namespace {

// Classic hex dump: offset, 16 bytes, ASCII.
QString hexDump(const std::vector<uint8_t>& bytes)
{
    QString out;
    for (size_t off = 0; off < bytes.size(); off += 16) {
        QString hex, ascii;
        for (size_t i = off; i < off + 16; ++i) {
            if (i < bytes.size()) {
                hex += QString::asprintf("%02x ", bytes[i]);
                ascii += (bytes[i] >= 32 && bytes[i] < 127) ? QChar(bytes[i]) : QChar('.');
            } else {
                hex += "   ";
            }
            if (i == off + 7)
                hex += ' ';
        }
        out += QString::asprintf("%04zx  ", off) + hex + ' ' + ascii + '\n';
    }
    return out;
}

QPlainTextEdit* monospaceView()
{
    auto* view = new QPlainTextEdit;
    view->setReadOnly(true);
    view->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    view->setLineWrapMode(QPlainTextEdit::NoWrap);
    return view;
}

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
    filter_->setPlaceholderText(tr("Filter: text or field:value, e.g. comm:curl reason:refused -chain:dlp"));
    filter_->setClearButtonEnabled(true);
    filter_->setMinimumWidth(420);
    toolbar->addWidget(filter_);
    auto* focusFilter = new QAction(tr("Filter"), this);
    focusFilter->setShortcut(QKeySequence::Find);
    connect(focusFilter, &QAction::triggered, filter_, [this] {
        filter_->setFocus();
        filter_->selectAll();
    });
    addAction(focusFilter);
    auto* freeze = toolbar->addAction(tr("Freeze"));
    freeze->setObjectName("freezeAction");
    freeze->setCheckable(true);
    freeze->setShortcut(Qt::Key_Space);
    freeze->setToolTip(tr("Stop updating the table (Space); updates are kept and applied on release"));
    // Space freezes only while the flow table has focus: elsewhere it toggles checkboxes and buttons.
    freeze->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    connect(freeze, &QAction::toggled, this, [this](bool on) { flows_->setFrozen(on); });
    auto* exportAction = toolbar->addAction(tr("Export…"));
    exportAction->setObjectName("exportAction");
    exportAction->setShortcut(Qt::CTRL | Qt::Key_E);
    connect(exportAction, &QAction::triggered, this, [this] { exportDialog()->show(); });
    auto* copy = new QAction(tr("Copy rows as CSV"), this);
    copy->setShortcut(QKeySequence::Copy);
    connect(copy, &QAction::triggered, this, [this] { QApplication::clipboard()->setText(selectedRowsCsv()); });
    addAction(copy);
    connect(filter_, &QLineEdit::textChanged, this, [this](const QString& text) {
        bool ok = proxy_->setFilterText(text);
        filter_->setStyleSheet(ok ? QString() : "QLineEdit { background: #fde2e2; }");
        filter_->setToolTip(ok ? QString() : proxy_->filterError());
    });

    buildTable();
    flowView_->addAction(freeze);
    tabs_ = new QTabWidget;
    tabs_->setObjectName("bottomTabs");
    tabs_->addTab(buildDetails(), tr("Flow details"));
    tabs_->addTab(buildRules(), tr("Rules"));
    charts_ = new ChartsPanel;
    tabs_->addTab(charts_, tr("Charts"));
    log_ = monospaceView();
    log_->setMaximumBlockCount(5000);
    tabs_->addTab(log_, tr("Log"));
    nodes_ = new NodesPage(bridge_);
    tabs_->addTab(nodes_, tr("Nodes"));
    tabs_->addTab(new CoexistenceView(bridge_), tr("Coexistence"));
    auto* connectNode = toolbar->addAction(tr("Connect to node…"));
    connectNode->setObjectName("connectNodeAction");
    connect(connectNode, &QAction::triggered, this, [this] {
        tabs_->setCurrentWidget(nodes_);
        nodes_->openConnectDialog();
    });
    splitter_ = new QSplitter(Qt::Vertical);
    splitter_->setObjectName("mainSplitter");
    splitter_->addWidget(flowView_);
    splitter_->addWidget(tabs_);
    splitter_->setStretchFactor(0, 3);
    splitter_->setStretchFactor(1, 2);
    setCentralWidget(splitter_);

    calloutLabel_ = new QLabel;
    redirectorsLabel_ = new QLabel;
    dropsLabel_ = new QLabel;
    countLabel_ = new QLabel;
    for (QLabel* l : {calloutLabel_, redirectorsLabel_, countLabel_, dropsLabel_})
        statusBar()->addWidget(l);
    connect(bridge_, &EngineBridge::ticked, this, [this](qint64) { onTick(); });
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
    flowView_->horizontalHeader()->restoreState(settings.value("flows/header").toByteArray());
    // The header menu's checks follow the restored column choices.
    const auto actions = flowView_->horizontalHeader()->actions();
    for (int c = 0; c < actions.size(); ++c) {
        QSignalBlocker block(actions[c]);
        actions[c]->setChecked(!flowView_->isColumnHidden(c));
    }
}

MainWindow::~MainWindow() = default;

NodesView* MainWindow::nodesView() const { return nodes_->table(); }

void MainWindow::closeEvent(QCloseEvent* event)
{
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
    settings.setValue("window/splitter", splitter_->saveState());
    settings.setValue("flows/header", flowView_->horizontalHeader()->saveState());
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
    flowView_->setColumnWidth(FlowModel::Process, 170);
    flowView_->setColumnWidth(FlowModel::Destination, 190);
    flowView_->setColumnWidth(FlowModel::Chain, 330);
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
}

QWidget* MainWindow::buildDetails()
{
    auto* page = new QWidget;
    auto* layout = new QVBoxLayout(page);
    chain_ = new ChainView;
    chain_->setObjectName("chainView");
    layout->addWidget(chain_);
    auto* grid = new QGridLayout;
    recordsSize_ = new QLabel(tr("Redirect records"));
    contextSize_ = new QLabel(tr("Redirect context"));
    recordsHex_ = monospaceView();
    recordsHex_->setObjectName("recordsHex");
    contextHex_ = monospaceView();
    contextHex_->setObjectName("contextHex");
    grid->addWidget(recordsSize_, 0, 0);
    grid->addWidget(contextSize_, 0, 1);
    grid->addWidget(recordsHex_, 1, 0);
    grid->addWidget(contextHex_, 1, 1);
    layout->addLayout(grid, 1);
    return page;
}

QWidget* MainWindow::buildRules()
{
    auto* page = new QWidget;
    auto* outer = new QVBoxLayout(page);
    auto* top = new QHBoxLayout;
    rulesNode_ = new QComboBox;
    rulesNode_->setObjectName("rulesNode");
    rulesNode_->setToolTip(tr("The node whose rules this panel shows and edits (also: select it in the Nodes tab)"));
    top->addWidget(new QLabel(tr("Rules of node")));
    top->addWidget(rulesNode_);
    top->addStretch();
    outer->addLayout(top);
    auto* layout = new QHBoxLayout;
    outer->addLayout(layout, 1);
    connect(rulesNode_, &QComboBox::activated, this, [this](int index) { bridge_->selectNode(rulesNode_->itemText(index)); });
    connect(bridge_, &EngineBridge::nodesChanged, this, [this] {
        QSignalBlocker block(rulesNode_);
        rulesNode_->clear();
        rulesNode_->addItems(bridge_->nodeNames());
        rulesNode_->setCurrentText(bridge_->selectedNode());
    });
    rulesNode_->addItems(bridge_->nodeNames());
    rulesNode_->setCurrentText(bridge_->selectedNode());
    rulesView_ = new QTableView;
    rulesView_->setObjectName("rulesView");
    rulesView_->setModel(rules_);
    rulesView_->setSelectionBehavior(QAbstractItemView::SelectRows);
    rulesView_->verticalHeader()->hide();
    rulesView_->horizontalHeader()->setStretchLastSection(true);
    layout->addWidget(rulesView_, 1);
    auto* buttons = new QVBoxLayout;
    auto add = [&](const QString& text, const char* name, auto slot) {
        auto* b = new QPushButton(text);
        b->setObjectName(name);
        b->setEnabled(false);  // until the node says this user may change it
        ruleButtons_ << b;
        connect(b, &QPushButton::clicked, this, slot);
        buttons->addWidget(b);
    };
    add(tr("Move up"), "ruleUp", [this] {
        int row = rulesView_->currentIndex().row();
        if (row > 0 && rules_->moveUp(row))
            rulesView_->selectRow(row - 1);
    });
    add(tr("Move down"), "ruleDown", [this] {
        int row = rulesView_->currentIndex().row();
        if (row >= 0 && rules_->moveDown(row))
            rulesView_->selectRow(row + 1);
    });
    add(tr("Edit…"), "ruleEdit", [this] { editRules(); });
    add(tr("Import…"), "ruleImport", [this] { importRules(); });
    add(tr("Export…"), "ruleExport", [this] { exportRules(); });
    buttons->addStretch();
    layout->addLayout(buttons);
    return page;
}

void MainWindow::showDetails()
{
    QModelIndex current = flowView_->currentIndex();
    if (!current.isValid()) {
        chain_->setFlow(std::nullopt);
        shownFlow_ = 0;
        return;
    }
    int row = proxy_->mapToSource(current).row();
    std::optional<engine::Flow> flow = flows_->fullFlow(row);
    if (!flow)
        flow = flows_->flowSummary(row);
    chain_->setFlow(flow);
    shownFlow_ = flow ? flows_->keyAt(row) : 0;
    std::vector<uint8_t> records, context;
    QString recordsText = tr("Redirect records"), contextText = tr("Redirect context");
    if (flow) {
        // The last hop we relayed carries the longest records.
        for (const engine::Hop& h : flow->hops) {
            if (!h.records.empty())
                records = h.records;
            if (!h.context.empty() && context.empty())
                context = h.context;
        }
        QStringList rs, cs;
        for (const engine::Hop& h : flow->hops) {
            rs << QString::number(h.recordsSize);
            cs << QString::number(h.contextSize);
        }
        recordsText = tr("Redirect records: %1 bytes per hop").arg(rs.join(" → "));
        contextText = tr("Redirect context: %1 bytes per hop").arg(cs.join(" → "));
    }
    recordsSize_->setText(recordsText);
    contextSize_->setText(contextText);
    recordsHex_->setPlainText(records.empty() ? tr("(not kept for this flow)") : hexDump(records));
    contextHex_->setPlainText(context.empty() ? tr("(not kept for this flow)") : hexDump(context));
}

void MainWindow::onTick()
{
    ++ticks_;
    // Details follow the live flow (bytes, end reason) without moving the selection.
    if (shownFlow_ && tabs_->currentIndex() == 0)
        showDetails();
    countLabel_->setText(tr("%1 flows shown of %2").arg(proxy_->rowCount()).arg(flows_->rowCount()));
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
    for (QPushButton* b : ruleButtons_)
        b->setEnabled(stats.canChange);
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

QString MainWindow::selectedRowsCsv() const
{
    QList<int> rows;
    for (const QModelIndex& index : flowView_->selectionModel()->selectedRows())
        rows << index.row();
    return rowsAsCsv(*proxy_, rows);
}

void MainWindow::editRules()
{
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Edit rules"));
    auto* layout = new QVBoxLayout(&dialog);
    auto* help = new QLabel(tr("Rules apply in order; the first match decides. \"expires\" (RFC 3339) makes a "
                               "temporary rule. Applying is all or nothing."));
    help->setWordWrap(true);
    auto* text = new QPlainTextEdit(QString::fromStdString(engine::rulesToJson(bridge_->rules())));
    text->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    auto* error = new QLabel;
    error->setStyleSheet("color: #b00020;");
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Apply | QDialogButtonBox::Cancel);
    layout->addWidget(help);
    layout->addWidget(text, 1);
    layout->addWidget(error);
    layout->addWidget(buttons);
    dialog.resize(760, 560);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    connect(buttons->button(QDialogButtonBox::Apply), &QPushButton::clicked, &dialog, [&] {
        engine::RulesResult parsed = engine::parseRules(text->toPlainText().toStdString());
        if (!parsed.ok()) {
            const QString message = QString::fromStdString(parsed.error.str());
            QTextCursor cursor(text->document()->findBlockByNumber(std::max(0, parsed.error.line - 1)));
            cursor.movePosition(QTextCursor::Right, QTextCursor::MoveAnchor, std::max(0, parsed.error.column - 1));
            text->setTextCursor(cursor);
            text->setFocus();
            error->setText(message);
            return;
        }
        // The node answers later; the dialog stays until it did (and closes only if it took them).
        buttons->setEnabled(false);
        error->setText(tr("Applying…"));
        bridge_->applyRules(parsed.rules, [dialog = QPointer<QDialog>(&dialog), buttons, error](bool ok, const QString& why) {
            if (!dialog)
                return;
            buttons->setEnabled(true);
            if (ok)
                dialog->accept();
            else
                error->setText(tr("Nothing was changed: %1").arg(why));
        });
    });
    dialog.exec();
}

void MainWindow::importRules()
{
    QString path = QFileDialog::getOpenFileName(this, tr("Import rules"), {}, tr("Rules (*.json)"));
    if (path.isEmpty())
        return;
    engine::RulesResult parsed = engine::loadRulesFile(path.toStdString());
    auto refused = [window = QPointer<MainWindow>(this)](const QString& message) {
        if (window)
            QMessageBox::warning(window, tr("Import rules"), tr("Nothing was changed.\n\n%1").arg(message));
    };
    if (!parsed.ok()) {
        refused(path + ':' + QString::fromStdString(parsed.error.str()));
        return;
    }
    bridge_->applyRules(parsed.rules, [refused](bool ok, const QString& why) {
        if (!ok)
            refused(why);
    });
}

void MainWindow::exportRules()
{
    QString path = QFileDialog::getSaveFileName(this, tr("Export rules"), "rules.json", tr("Rules (*.json)"));
    if (path.isEmpty())
        return;
    const std::string json = engine::rulesToJson(bridge_->rules());
    std::string error;
    if (!engine::writeWholeFile(
            path.toStdString(), [&](std::ostream& out) { return bool(out << json); }, &error))
        QMessageBox::warning(this, tr("Export rules"), tr("Cannot write %1: %2").arg(path, QString::fromStdString(error)));
}

}  // namespace redirect::gui
