// The "Rules" tab: the rules of the selected node in order, with their hit counters; move, edit,
// import and export. Every change goes to the node through the bridge; the node's answer (or its
// refusal) comes back through the bridge too.
#pragma once

#include <QWidget>

#include "engine_bridge.h"

class QComboBox;
class QPushButton;
class QTableView;

namespace redirect::gui {

class RulesModel;

class RulesPanel : public QWidget {
    Q_OBJECT
public:
    RulesPanel(RulesModel* rules, EngineBridge* bridge, QWidget* parent = nullptr);

    QTableView* view() const { return view_; }
    QComboBox* nodeChooser() const { return node_; }
    /// Buttons that change rules are on only while the node lets this user change them.
    void setCanChange(bool canChange);

    void editRules();
    void importRules();
    void exportRules();

private:
    RulesModel* rules_;
    EngineBridge* bridge_;
    QComboBox* node_ = nullptr;
    QTableView* view_ = nullptr;
    QList<QPushButton*> buttons_;
};

}  // namespace redirect::gui
