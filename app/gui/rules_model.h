// The rules panel's model: the rule set in order (first match decides), a
// user-checkable enabled state that toggles a rule live, per-rule hits, and
// reordering that goes through the engine as a whole new rule set.
#pragma once

#include <QAbstractTableModel>

#include <functional>
#include <map>
#include <string>

#include "flow_table.h"
#include "rules.h"

namespace redirect::gui {

class RulesModel : public QAbstractTableModel {
    Q_OBJECT
public:
    /// Column Id carries the enabled checkbox (Qt::CheckStateRole).
    enum Column { Id, Action, Redirector, Match, Expires, Hits, ColumnCount };
    enum Role { RawRole = Qt::UserRole, RuleIdRole };
    /// Applies an enabled change (or submits it: a refusal comes back as a setRules() of the node's
    /// rules); false leaves the row as it was.
    using Toggler = std::function<bool(const std::string& ruleId, bool enabled)>;
    /// Applies a new order of the rules (or submits it, as Toggler); false leaves the order as it was.
    using Applier = std::function<bool(const engine::RuleSet& rules)>;

    /// Asked before a toggle or a move applies: shows what `proposed` would do and calls `proceed`
    /// to apply it (or never, to cancel). Without a gate changes apply at once.
    using Gate = std::function<void(const QString& what, const engine::RuleSet& proposed, std::function<void()> proceed)>;

    explicit RulesModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

    void setToggler(Toggler toggler) { toggler_ = std::move(toggler); }
    void setApplier(Applier applier) { applier_ = std::move(applier); }
    void setGate(Gate gate) { gate_ = std::move(gate); }

    /// Replaces the whole list (a rules change, not a tick).
    void setRules(const engine::RuleSet& rules);
    const engine::RuleSet& rules() const { return rules_; }
    /// Hit counters by rule id; emits one dataChanged over the Hits column rows that changed.
    void setHits(const std::map<std::string, engine::RuleHits>& hits);

    /// Swap a rule with its neighbour through the applier; false at an edge or when it refuses.
    bool moveUp(int row);
    bool moveDown(int row);

private:
    bool swapRows(int upper);
    /// The change itself, by rule id: the row may have moved while a gate asked.
    bool applyEnabled(const std::string& id, bool enabled);
    bool applySwap(const std::string& upperId, const std::string& lowerId);
    int rowOf(const std::string& id) const;
    QString matchSummary(const engine::RuleSpec& rule) const;

    engine::RuleSet rules_;
    std::map<std::string, engine::RuleHits> hits_;
    Toggler toggler_;
    Applier applier_;
    Gate gate_;
};

}  // namespace redirect::gui
