// The "Rules" tab: the rules of the selected node in order, with their hit counters; move, edit,
// import and export. Every change goes to the node through the bridge; the node's answer (or its
// refusal) comes back through the bridge too.
#pragma once

#include <QPointer>
#include <QWidget>

#include "engine_bridge.h"
#include "rule_form.h"

class QCheckBox;
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

    /// The rule form: for rule `row` (-1: a new rule, first in the set), or prefilled to match
    /// connections like `like` ("Redirect similar…", "Bypass similar…").
    void openForm(int row, const engine::Flow* like = nullptr, engine::RuleAction action = engine::RuleAction::Redirect);
    /// The form open now (tests, screenshots), or null.
    RuleForm* form() const { return form_; }
    void editRules();
    void importRules();
    void exportRules();
    /// Applies `proposed` through `proceed` after the node's dry run was shown and accepted (or
    /// at once when previews are off).
    /// `over`: the window the preview opens over (default this panel); `cancelled` runs on Cancel.
    void propose(const QString& what, const engine::RuleSet& proposed, std::function<void()> proceed,
                 QWidget* over = nullptr, std::function<void()> cancelled = {});

    static constexpr uint32_t kPreviewWindowSeconds = 600;

private:
    void updateGate();

    RulesModel* rules_;
    EngineBridge* bridge_;
    QComboBox* node_ = nullptr;
    QCheckBox* preview_ = nullptr;
    QPointer<RuleForm> form_;
    QTableView* view_ = nullptr;
    QList<QPushButton*> buttons_;
};

}  // namespace redirect::gui
