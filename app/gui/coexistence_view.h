// The Coexistence tab: who else is on the selected node's callout hooks (the Linux counterpart of
// WFPExplorer's view of filters and callouts). One row per program attached to the scope cgroup or
// an ancestor at a socket hook: where, which program, its flags and owner, ours or foreign, and
// whether it runs before or after ours; rows with a warning stand out, a summary line sits on top.
#pragma once

#include <QWidget>

#include "engine_bridge.h"

class QLabel;
class QPushButton;
class QTableWidget;

namespace redirect::gui {

class CoexistenceView : public QWidget {
    Q_OBJECT
public:
    enum Column { Hook, Cgroup, Program, Type, Flags, Owner, Ours, Order, Warning, ColumnCount };
    /// Rows keep the program id here (Program column) for sorting and tests.
    static constexpr int ProgIdRole = Qt::UserRole + 1;

    explicit CoexistenceView(EngineBridge* bridge, QWidget* parent = nullptr);

    /// Shows one inventory (the node's answer).
    void showInventory(const v1::Coexistence& inventory);
    /// Shows why there is no inventory; the table is emptied.
    void showError(const QString& error);

    QTableWidget* table() const { return table_; }
    QLabel* summary() const { return summary_; }
    QPushButton* refreshButton() const { return refresh_; }

public slots:
    /// Asks the selected node again (off the GUI thread); refreshed() follows the answer.
    void refresh();

signals:
    /// An answer (or the reason there is none) is on screen.
    void refreshed();

protected:
    void showEvent(QShowEvent* event) override;

private:
    EngineBridge* bridge_;
    QLabel* summary_;
    QLabel* problems_;
    QPushButton* refresh_;
    QTableWidget* table_;
    QString shownNode_;   // the node whose inventory is on screen
    quint64 asked_ = 0;   // answers to an earlier question (another node) are dropped
};

}  // namespace redirect::gui
