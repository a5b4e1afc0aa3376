// "Open report…": a JSON report (engine/report.h, read back by engine/report_read.h) in a window of
// its own, read-only, with the live table's model and columns. The title names the file and the
// time range the report covers.
#pragma once

#include <QMainWindow>
#include <QString>

#include "report_read.h"

class QLabel;
class QTableView;

namespace redirect::gui {

class EngineBridge;
class FlowFilterProxy;
class FlowModel;

class ReportView : public QMainWindow {
    Q_OBJECT
public:
    /// The window over the report at `path` (not shown yet), or nullptr with the reader's reason in
    /// *error (what is wrong with the file, and where). The window deletes itself when closed.
    static ReportView* open(const QString& path, QWidget* parent, QString* error);
    /// The main window's "Open report…": a file dialog, then open() and show(), or a message box
    /// with the reason.
    static void chooseAndOpen(QWidget* parent);

    /// The selected node's history from fromNs to toNs in a window of its own, filled as the node
    /// answers (the status bar says how many flows, or why none); exportable like the live table.
    static ReportView* history(EngineBridge* bridge, int64_t fromNs, int64_t toNs, QWidget* parent);

    FlowModel* model() const { return model_; }
    /// The status bar's text: what the window holds, or why the node gave nothing.
    QString statusText() const;
    QTableView* table() const { return table_; }
    /// "flows.json — 2025-01-02T03:04:05.678Z to 2025-01-02T04:00:00.000Z"
    static QString titleFor(const QString& path, const engine::ReportContents& report);

private:
    ReportView(const QString& title, const QString& scopeText, std::vector<engine::Flow>&& flows, QWidget* parent);
    void setStatus(const QString& text);

    FlowModel* model_;
    FlowFilterProxy* proxy_;
    QTableView* table_;
    QLabel* status_;
    QString scopeText_;  // for exports: where the flows came from
};

}  // namespace redirect::gui
