// A form for one rule, every key of the rules file a field of its own: for an administrator who
// does not write JSON. New rules come first in the set (so that they take effect); an edited one
// keeps its place. The result is checked by the rules parser, so the form accepts exactly what a
// rules file would.
#pragma once

#include <QDialog>

#include <optional>

#include "flow.h"
#include "rules.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;

namespace redirect::gui {

class RuleForm : public QDialog {
    Q_OBJECT
public:
    /// editRow < 0: a new rule.
    RuleForm(const engine::RuleSet& set, int editRow, QWidget* parent = nullptr);

    /// Fills the fields so that the rule matches connections like `flow`: its process, user,
    /// destination address and port; a redirect rule goes to the flow's first redirector.
    void prefill(const engine::Flow& flow, engine::RuleAction action);
    /// The whole set with the form's rule in place; nullopt with the parser's message.
    std::optional<engine::RuleSet> ruleSet(QString* error) const;
    /// The rule as it would appear in the rules file.
    std::string ruleJson() const;

    QLineEdit* field(const QString& key) const;
    QComboBox* action() const { return action_; }
    QComboBox* redirector() const { return redirector_; }
    QComboBox* protocol() const { return protocol_; }

private:
    void check();
    void setProtocol(uint8_t protocol);

    engine::RuleSet set_;
    int editRow_;
    QLineEdit* id_ = nullptr;
    QCheckBox* enabled_ = nullptr;
    QComboBox* action_ = nullptr;
    QComboBox* redirector_ = nullptr;
    QComboBox* protocol_ = nullptr;
    QLineEdit* destination_ = nullptr;
    QLineEdit* ports_ = nullptr;
    QLineEdit* process_ = nullptr;
    QLineEdit* uid_ = nullptr;
    QLineEdit* cgroup_ = nullptr;
    QLineEdit* expires_ = nullptr;
    QLineEdit* idle_ = nullptr;
    QLabel* error_ = nullptr;
};

}  // namespace redirect::gui
