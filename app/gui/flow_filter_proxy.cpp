#include "flow_filter_proxy.h"

#include "flow_model.h"

namespace redirect::gui {

FlowFilterProxy::FlowFilterProxy(QObject* parent) : QSortFilterProxyModel(parent)
{
    setSortRole(FlowModel::RawRole);
    setDynamicSortFilter(true);
}

void FlowFilterProxy::setSourceModel(QAbstractItemModel* model)
{
    flows_ = qobject_cast<FlowModel*>(model);
    QSortFilterProxyModel::setSourceModel(model);
}

bool FlowFilterProxy::setFilterText(const QString& text)
{
    std::string error;
    std::optional<engine::FlowFilter> parsed = engine::FlowFilter::parse(text.toStdString(), &error);
    const QString newError = parsed ? QString() : QString::fromStdString(error);
    if (newError != error_) {
        error_ = newError;
        emit filterErrorChanged(error_);
    }
    if (!parsed)
        return false;
    text_ = text;
    filter_ = std::move(*parsed);
    invalidateRowsFilter();
    return true;
}

void FlowFilterProxy::setTimeRange(int64_t fromNs, int64_t toNs)
{
    fromNs_ = fromNs;
    toNs_ = toNs;
    invalidateRowsFilter();
}

void FlowFilterProxy::setShowDirect(bool show)
{
    if (show == showDirect_)
        return;
    showDirect_ = show;
    invalidateRowsFilter();
}

bool FlowFilterProxy::filterAcceptsRow(int sourceRow, const QModelIndex& sourceParent) const
{
    if (!flows_ || sourceParent.isValid())
        return QSortFilterProxyModel::filterAcceptsRow(sourceRow, sourceParent);
    if (!showDirect_ && flows_->rowIsDirect(sourceRow))
        return false;
    if (filter_.empty() && fromNs_ == 0 && toNs_ == 0)
        return true;
    return flows_->rowMatches(sourceRow, filter_, fromNs_, toNs_);
}

bool FlowFilterProxy::lessThan(const QModelIndex& left, const QModelIndex& right) const
{
    // The same order as comparing RawRole variants, without building two QVariants per comparison.
    if (flows_ && sortRole() == FlowModel::RawRole)
        return flows_->rowLessThan(left.row(), right.row(), left.column());
    return QSortFilterProxyModel::lessThan(left, right);
}

}  // namespace redirect::gui
