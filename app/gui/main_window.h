// The console's main window: live flow table, flow details, rules, charts,
// log and status bar. It reaches the engine only through the bridge and the
// models; nothing here runs on engine threads.
#pragma once

#include <QMainWindow>

#include <functional>

#include "engine_bridge.h"
#include "export_dialog.h"
#include "rules.h"

class QAction;
class QComboBox;
class QMenu;
class QToolBar;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QSplitter;
class QTabWidget;
class QTableView;

namespace redirect::gui {

class ChainView;
class FlowDetails;
class FilterCompleter;
class SavedFilters;
class RulesPanel;
class ChartsPanel;
class NodesPage;
class NodesView;
class FlowFilterProxy;
class FlowModel;
class RulesModel;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    /// Everything about the node goes through `bridge`; rule changes are on while the node lets this
    /// user change it. `snapshot` feeds exports (called on the GUI thread).
    MainWindow(FlowModel* flows, RulesModel* rules, EngineBridge* bridge, ExportDialog::Snapshot snapshot,
               QWidget* parent = nullptr);
    ~MainWindow() override;

    FlowFilterProxy* proxy() const { return proxy_; }
    QTableView* flowView() const { return flowView_; }
    QTableView* rulesView() const;
    QLineEdit* filterEdit() const { return filter_; }
    QTabWidget* tabs() const { return tabs_; }
    ChainView* chainView() const;
    NodesView* nodesView() const;
    NodesPage* nodesPage() const { return nodes_; }
    QComboBox* rulesNode() const;
    FlowDetails* details() const { return details_; }
    /// File menu, for entries added by what the window hosts (Open report…).
    QMenu* fileMenu() const { return fileMenu_; }
    /// The export dialog (created on first use), already set to the current filter.
    ExportDialog* exportDialog();
    /// The window at 1280x800 with each bottom tab in turn: `path` (flow details) and
    /// path-<tab>.png for the others. Returns the files saved; empty when one failed.
    QStringList saveScreenshots(const QString& path);
    /// Select the newest ended flow with the most hops and show its details (screenshots, demo).
    bool selectRichestFlow();
    /// "Redirect similar…" / "Bypass similar…" on the flow of model row `sourceRow`: the rule form,
    /// prefilled from it, in the Rules tab. False when there is no such row.
    bool ruleFromFlow(int sourceRow, engine::RuleAction action);
    RulesPanel* rulesPanel() const { return rulesPanel_; }
    /// Selected rows as CSV (RFC 4180), the text Ctrl+C copies.
    QString selectedRowsCsv() const;

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    void buildTable();
    void buildActions(QToolBar* toolbar);
    /// File > History…: a time range, then the selected node's history in a window (ReportView).
    void openHistory();
    void showDetails();
    void onTick();
    /// The status bar's paused label, with the number of updates waiting.
    void showPaused();
    void onStats(const BridgeStats& stats);

    FlowModel* flows_;
    RulesModel* rules_;
    EngineBridge* bridge_;
    ExportDialog::Snapshot snapshot_;
    FlowFilterProxy* proxy_;
    QTableView* flowView_ = nullptr;
    QLineEdit* filter_ = nullptr;
    QTabWidget* tabs_ = nullptr;
    QSplitter* splitter_ = nullptr;
    FlowDetails* details_ = nullptr;
    FilterCompleter* flowCompleter_ = nullptr;
    SavedFilters* savedFilters_ = nullptr;
    QAction* pause_ = nullptr;
    QAction* showDirect_ = nullptr;
    QMenu* fileMenu_ = nullptr;
    QLabel* pausedLabel_ = nullptr;
    RulesPanel* rulesPanel_ = nullptr;
    QPlainTextEdit* log_ = nullptr;
    ChartsPanel* charts_ = nullptr;
    NodesPage* nodes_ = nullptr;
    QLabel* calloutLabel_ = nullptr;
    QLabel* redirectorsLabel_ = nullptr;
    QLabel* dropsLabel_ = nullptr;
    QLabel* countLabel_ = nullptr;
    ExportDialog* export_ = nullptr;
    uint64_t shownFlow_ = 0;
    quint64 ticks_ = 0;
    quint64 lastFlowCount_ = 0;
    quint64 seenFlows_ = 0;
};

}  // namespace redirect::gui
