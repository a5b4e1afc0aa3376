#include "rules_model.h"

#include <netinet/in.h>

#include <QDateTime>
#include <QStringList>

namespace redirect::gui {

namespace {

QString qs(const std::string& text) { return QString::fromStdString(text); }

engine::RuleHits hitsOf(const std::map<std::string, engine::RuleHits>& hits, const std::string& id)
{
    auto it = hits.find(id);
    return it == hits.end() ? engine::RuleHits{} : it->second;
}

}  // namespace

RulesModel::RulesModel(QObject* parent) : QAbstractTableModel(parent) {}

int RulesModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(rules_.rules.size());
}

int RulesModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant RulesModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case Id: return tr("Rule");
    case Action: return tr("Action");
    case Redirector: return tr("Redirector");
    case Match: return tr("Match");
    case Expires: return tr("Expires");
    case Hits: return tr("Hits (redirected / bypassed)");
    default: return {};
    }
}

Qt::ItemFlags RulesModel::flags(const QModelIndex& index) const
{
    Qt::ItemFlags f = QAbstractTableModel::flags(index);
    if (index.isValid() && index.column() == Id)
        f |= Qt::ItemIsUserCheckable;
    return f;
}

QString RulesModel::matchSummary(const engine::RuleSpec& rule) const
{
    QStringList parts;
    if (rule.protocol != IPPROTO_TCP)  // TCP goes unsaid, as in the rules file
        parts << (rule.protocol == IPPROTO_UDP ? tr("udp") : tr("tcp+udp"));
    if (!rule.destination.empty()) {
        QStringList nets;
        for (const engine::Cidr& cidr : rule.destination)
            nets << qs(cidr.str());
        parts << tr("dest %1").arg(nets.join(QLatin1Char(',')));
    }
    if (!rule.ports.empty()) {
        QStringList ports;
        for (const engine::PortRange& range : rule.ports)
            ports << (range.first == range.last ? QString::number(range.first)
                                                : QStringLiteral("%1-%2").arg(range.first).arg(range.last));
        parts << tr("ports %1").arg(ports.join(QLatin1Char(',')));
    }
    if (!rule.process.empty())
        parts << tr("process %1").arg(qs(rule.process));
    if (rule.uid)
        parts << (rule.user.empty() ? tr("uid %1").arg(*rule.uid) : tr("user %1").arg(qs(rule.user)));
    if (!rule.cgroup.empty())
        parts << tr("cgroup %1").arg(qs(rule.cgroup));
    if (rule.idleTimeoutS)
        parts << tr("idle %1 s").arg(*rule.idleTimeoutS);
    return parts.isEmpty() ? tr("any") : parts.join(QLatin1Char(' '));
}

QVariant RulesModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const engine::RuleSpec& rule = rules_.rules[static_cast<size_t>(index.row())];
    if (role == RuleIdRole)
        return qs(rule.id);
    if (role == Qt::CheckStateRole)
        return index.column() == Id ? QVariant(rule.enabled ? Qt::Checked : Qt::Unchecked) : QVariant();
    if (role == Qt::ToolTipRole)  // the whole match, where the view elides it
        return index.column() == Match ? QVariant(matchSummary(rule)) : QVariant();
    if (role != Qt::DisplayRole && role != RawRole)
        return {};
    const bool rawRole = role == RawRole;
    switch (index.column()) {
    case Id: return qs(rule.id);
    case Action:
        return rule.action == engine::RuleAction::Redirect ? tr("redirect")
               : rule.action == engine::RuleAction::Block  ? tr("block")
                                                          : tr("bypass");
    case Redirector: {
        if (rule.action != engine::RuleAction::Redirect)
            return QString();
        const engine::RedirectorSpec* spec = rules_.findRedirector(rule.redirector);
        return qs(spec ? spec->name : rule.redirector);
    }
    case Match: return matchSummary(rule);
    case Expires:
        if (rawRole)
            return QVariant::fromValue<qint64>(rule.expiresNs.value_or(0));
        return rule.expiresNs ? QDateTime::fromMSecsSinceEpoch(*rule.expiresNs / 1000000)
                                    .toString(QStringLiteral("yyyy-MM-dd hh:mm:ss"))
                              : tr("never");
    case Hits: {
        const engine::RuleHits hits = hitsOf(hits_, rule.id);
        if (rawRole)
            return QVariant::fromValue<qulonglong>(hits.redirected + hits.bypassed);
        return QStringLiteral("%1 / %2").arg(hits.redirected).arg(hits.bypassed);
    }
    default: return {};
    }
}

bool RulesModel::setData(const QModelIndex& index, const QVariant& value, int role)
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid) ||
        role != Qt::CheckStateRole || index.column() != Id)
        return false;
    const engine::RuleSpec& rule = rules_.rules[static_cast<size_t>(index.row())];
    const bool enabled = value.value<Qt::CheckState>() == Qt::Checked;
    if (enabled == rule.enabled)
        return true;
    if (!gate_)
        return applyEnabled(rule.id, enabled);
    engine::RuleSet proposed = rules_;
    proposed.rules[static_cast<size_t>(index.row())].enabled = enabled;
    const QString what = (enabled ? tr("Enable rule %1") : tr("Disable rule %1")).arg(qs(rule.id));
    gate_(what, proposed, [this, id = rule.id, enabled] { applyEnabled(id, enabled); });
    return false;  // not yet: the gate applies it, or not
}

int RulesModel::rowOf(const std::string& id) const
{
    for (size_t row = 0; row < rules_.rules.size(); ++row)
        if (rules_.rules[row].id == id)
            return static_cast<int>(row);
    return -1;
}

bool RulesModel::applyEnabled(const std::string& id, bool enabled)
{
    const int row = rowOf(id);
    if (row < 0 || !toggler_ || !toggler_(id, enabled))
        return false;
    rules_.rules[static_cast<size_t>(row)].enabled = enabled;
    emit dataChanged(index(row, Id), index(row, Id), {Qt::CheckStateRole});
    return true;
}

void RulesModel::setRules(const engine::RuleSet& rules)
{
    beginResetModel();
    rules_ = rules;
    endResetModel();
}

void RulesModel::setHits(const std::map<std::string, engine::RuleHits>& hits)
{
    int first = -1;
    int last = -1;
    for (int row = 0; row < rowCount(); ++row) {
        const std::string& id = rules_.rules[static_cast<size_t>(row)].id;
        const engine::RuleHits before = hitsOf(hits_, id);
        const engine::RuleHits after = hitsOf(hits, id);
        if (before.redirected == after.redirected && before.bypassed == after.bypassed)
            continue;
        if (first < 0)
            first = row;
        last = row;
    }
    hits_ = hits;
    if (first >= 0)
        emit dataChanged(index(first, Hits), index(last, Hits), {Qt::DisplayRole, RawRole});
}

bool RulesModel::moveUp(int row) { return swapRows(row - 1); }

bool RulesModel::moveDown(int row) { return swapRows(row); }

bool RulesModel::swapRows(int upper)
{
    if (upper < 0 || upper + 1 >= rowCount() || !applier_)
        return false;
    const std::string upperId = rules_.rules[static_cast<size_t>(upper)].id;
    const std::string lowerId = rules_.rules[static_cast<size_t>(upper) + 1].id;
    if (!gate_)
        return applySwap(upperId, lowerId);
    engine::RuleSet proposed = rules_;
    std::swap(proposed.rules[static_cast<size_t>(upper)], proposed.rules[static_cast<size_t>(upper) + 1]);
    gate_(tr("Move rule %1 above %2").arg(qs(lowerId), qs(upperId)), proposed,
          [this, upperId, lowerId] { applySwap(upperId, lowerId); });
    return false;
}

bool RulesModel::applySwap(const std::string& upperId, const std::string& lowerId)
{
    const int upper = rowOf(upperId);
    if (upper < 0 || upper + 1 >= rowCount() || rowOf(lowerId) != upper + 1 || !applier_)
        return false;
    engine::RuleSet reordered = rules_;
    std::swap(reordered.rules[static_cast<size_t>(upper)], reordered.rules[static_cast<size_t>(upper) + 1]);
    if (!applier_(reordered))
        return false;
    // Moving the lower row above the upper one is the same swap, and one move signal.
    beginMoveRows({}, upper + 1, upper + 1, {}, upper);
    rules_ = std::move(reordered);
    endMoveRows();
    return true;
}

}  // namespace redirect::gui
