#include "flow_model.h"

#include <QDateTime>

#include <algorithm>
#include <cstring>

#include <netinet/in.h>

#include "flow_colors.h"
#include "format.h"

namespace redirect::gui {

namespace {

size_t flowBytes(const engine::Flow& flow)
{
    size_t bytes = sizeof(engine::Flow) + stringHeapBytes(flow.comm) + stringHeapBytes(flow.user) +
                   stringHeapBytes(flow.destination) + stringHeapBytes(flow.host) + stringHeapBytes(flow.rule) +
                   stringHeapBytes(flow.verdict) + flow.hops.capacity() * sizeof(engine::Hop);
    for (const engine::Hop& hop : flow.hops)
        bytes += stringHeapBytes(hop.redirector) + hop.records.capacity() + hop.context.capacity();
    return bytes;
}

QString qs(const std::string& text) { return QString::fromUtf8(text.data(), static_cast<qsizetype>(text.size())); }

QString bytesText(uint64_t bytes) { return qs(engine::formatBytes(bytes)); }

// What the Datagrams column sorts on: up and down together; -1 where nothing counted them (TCP,
// direct or blocked UDP: Flow::datagramsCounted()), so those sort before a UDP flow that carried
// nothing.
qint64 datagramTotal(const FlowRow& row)
{
    return row.datagramsCounted ? qint64(row.datagramsUp + row.datagramsDown) : -1;
}

QString timeText(int64_t ns)
{
    if (ns == 0)
        return {};
    return QDateTime::fromMSecsSinceEpoch(ns / 1000000).toString(QStringLiteral("hh:mm:ss.zzz"));
}

}  // namespace

FlowModel::FlowModel(QObject* parent) : QAbstractTableModel(parent) {}

FlowModel::~FlowModel() = default;

int FlowModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(order_.size());
}

int FlowModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant FlowModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case Time: return tr("Time");
    case Process: return tr("Process");
    case Protocol: return tr("Proto");
    case Destination: return tr("Destination");
    case Rule: return tr("Rule");
    case Route: return tr("Route");
    case Chain: return tr("Chain");
    case Records: return tr("Records");
    case Context: return tr("Context");
    case BytesUp: return tr("Up");
    case BytesDown: return tr("Down");
    case Datagrams: return tr("Datagrams");
    case Duration: return tr("Duration");
    case Reason: return tr("End reason");
    case Node: return tr("Node");
    default: return {};
    }
}

QVariant FlowModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const FlowRow& row = rowAt(index.row());
    switch (role) {
    case Qt::DisplayRole: return display(row, index.column());
    case RawRole: return raw(row, index.column());
    case FlowIdRole: return QVariant::fromValue<qulonglong>(row.flowId);
    case Qt::TextAlignmentRole:
        switch (index.column()) {
        case Records: case Context: case BytesUp: case BytesDown: case Datagrams: case Duration:
            return QVariant::fromValue(Qt::AlignRight | Qt::AlignVCenter);
        default: return {};
        }
    case Qt::ToolTipRole: return toolTip(row, index.column());
    case Qt::ForegroundRole: {
        QColor color = flowLookOf(flowKindOf(row.reason, row.direct)).foreground;
        return color.isValid() ? QVariant(color) : QVariant();
    }
    case Qt::BackgroundRole: {
        QColor color = flowLookOf(flowKindOf(row.reason, row.direct)).background;
        return color.isValid() ? QVariant(color) : QVariant();
    }
    default: return {};
    }
}

QString FlowModel::display(const FlowRow& row, int column) const
{
    switch (column) {
    case Time: return timeText(row.startNs);
    case Process: {
        QString text = QStringLiteral("%1 [%2]").arg(qs(pooled(row.comm))).arg(row.pid);
        const std::string& user = pooled(row.user);
        return text + QLatin1Char(' ') + (user.empty() ? QString::number(row.uid) : qs(user));
    }
    case Destination:
        // An HTTP Host that is the address itself adds nothing.
        if (row.host.empty() || row.host == row.destination || "[" + row.host == row.destination.substr(0, row.host.size() + 1))
            return qs(row.destination);
        return qs(row.host) + QStringLiteral(" (") + qs(row.destination) + QLatin1Char(')');
    case Records: return bytesText(row.recordsSize());
    case Context: return bytesText(row.contextSize());
    case BytesUp: return bytesText(row.bytesUp);
    case BytesDown: return bytesText(row.bytesDown);
    case Datagrams:
        if (!row.datagramsCounted)
            return {};
        return QStringLiteral("%1 / %2").arg(row.datagramsUp).arg(row.datagramsDown);
    case Duration: return qs(engine::formatDuration(row.durationNs()));
    default: return raw(row, column).toString();
    }
}

QVariant FlowModel::raw(const FlowRow& row, int column) const
{
    switch (column) {
    case Time: return QVariant::fromValue<qint64>(row.startNs);
    case Process: return qs(pooled(row.comm));
    case Protocol: return QString::fromLatin1(engine::protocolName(row.protocol));
    case Destination: return qs(row.destination);
    case Chain: {
        QString text;
        for (const FlowHopRow& hop : row.hops) {
            if (hop.redirectorId == 0)
                continue;
            const std::string& name = pooled(hop.name);
            text += (name.empty() ? QString::number(hop.redirectorId) : qs(name)) + QStringLiteral(" → ");
        }
        return text + qs(row.destination);
    }
    case Rule: return qs(pooled(row.rule));
    case Route: return qs(pooled(row.route));
    case Records: return QVariant::fromValue<qulonglong>(row.recordsSize());
    case Context: return QVariant::fromValue<qulonglong>(row.contextSize());
    case BytesUp: return QVariant::fromValue<qulonglong>(row.bytesUp);
    case BytesDown: return QVariant::fromValue<qulonglong>(row.bytesDown);
    case Datagrams: return datagramTotal(row);
    case Duration: return QVariant::fromValue<qint64>(row.durationNs());
    case Reason: return QString::fromLatin1(engine::endReasonName(row.reason));
    case Node: return qs(pooled(row.node));
    default: return {};
    }
}

bool FlowModel::rowLessThan(int left, int right, int column) const
{
    const FlowRow& a = rowAt(left);
    const FlowRow& b = rowAt(right);
    switch (column) {
    case Time: return a.startNs < b.startNs;
    case Process: return pooled(a.comm) < pooled(b.comm);
    case Destination: return a.destination < b.destination;
    case Records: return a.recordsSize() < b.recordsSize();
    case Context: return a.contextSize() < b.contextSize();
    case BytesUp: return a.bytesUp < b.bytesUp;
    case BytesDown: return a.bytesDown < b.bytesDown;
    case Datagrams: return datagramTotal(a) < datagramTotal(b);
    case Duration: return a.durationNs() < b.durationNs();
    case Reason: return std::strcmp(engine::endReasonName(a.reason), engine::endReasonName(b.reason)) < 0;
    default: return raw(a, column).toString() < raw(b, column).toString();
    }
}

QVariant FlowModel::toolTip(const FlowRow& row, int column) const
{
    switch (column) {
    case Time: return QString::fromStdString(engine::rfc3339Utc(row.startNs));
    case Rule: case Route: {
        // Which rule sent the connection to each redirector, and what each redirector saw.
        if (row.hops.empty())
            return row.rule ? tr("%1 (rule %2)").arg(qs(pooled(row.route)), qs(pooled(row.rule)))
                            : tr("%1: no rule matched").arg(qs(pooled(row.route)));
        QStringList lines;
        for (const FlowHopRow& hop : row.hops) {
            if (hop.redirectorId == 0)
                continue;
            const std::string& name = pooled(hop.name);
            QString line = tr("%1: rule %2, %3")
                               .arg(name.empty() ? QString::number(hop.redirectorId) : qs(name),
                                    hop.rule ? qs(pooled(hop.rule)) : tr("unknown"),
                                    QString::fromLatin1(engine::redirectStateName(hop.state)));
            if (hop.recordsMissing)
                line += tr(", did not forward the records");
            lines << line;
        }
        return lines.join(QLatin1Char('\n'));
    }
    case Datagrams:
        if (row.protocol != IPPROTO_UDP)
            return {};
        if (!row.datagramsCounted)
            return tr("not counted: no relay of this node carried the flow");
        return tr("%1 datagrams up (application to destination), %2 down").arg(row.datagramsUp).arg(row.datagramsDown);
    case Process: case Destination: case Chain: case Node: return display(row, column);
    default: return {};
    }
}

const FlowRow& FlowModel::rowAt(int row) const { return slab_[order_[static_cast<size_t>(row)]]; }

int FlowModel::rowOfSlot(uint32_t slot) const
{
    const uint64_t seq = slab_[slot].seq;
    auto it = std::lower_bound(order_.begin(), order_.end(), seq,
                               [this](uint32_t s, uint64_t value) { return slab_[s].seq < value; });
    return it != order_.end() && *it == slot ? static_cast<int>(it - order_.begin()) : -1;
}

uint64_t FlowModel::keyOf(const engine::Flow& flow) const
{
    size_t n = 0;
    while (n < nodes_.size() && nodes_[n] != flow.node)
        ++n;
    if (n == nodes_.size() && n < 256)
        nodes_.push_back(flow.node);
    return (flow.flowId & ((uint64_t(1) << 56) - 1)) | (uint64_t(std::min<size_t>(n, 255)) << 56);
}

int FlowModel::rowForFlowId(uint64_t flowId, const std::string& node) const
{
    engine::Flow probe;
    probe.flowId = flowId;
    probe.node = node;
    return rowForKey(keyOf(probe));
}

int FlowModel::rowForKey(uint64_t key) const
{
    auto it = slotOf_.find(key);
    return it == slotOf_.end() ? -1 : rowOfSlot(it->second);
}

uint64_t FlowModel::keyAt(int row) const
{
    return row >= 0 && row < rowCount() ? rowAt(row).key : 0;
}

uint64_t FlowModel::flowIdAt(int row) const
{
    return row >= 0 && row < rowCount() ? rowAt(row).flowId : 0;
}

std::optional<engine::Flow> FlowModel::fullFlow(int row) const
{
    if (row < 0 || row >= rowCount())
        return std::nullopt;
    auto it = detailIndex_.find(rowAt(row).key);
    if (it == detailIndex_.end())
        return std::nullopt;
    return *it->second;
}

std::optional<engine::Flow> FlowModel::flowSummary(int row) const
{
    if (row < 0 || row >= rowCount())
        return std::nullopt;
    engine::Flow flow;
    rowAt(row).toFlow(pool_, flow);
    return flow;
}

bool FlowModel::rowMatches(int row, const engine::FlowFilter& filter, int64_t fromNs, int64_t toNs) const
{
    const FlowRow& r = rowAt(row);
    if (filter.empty()) {
        if (toNs != 0 && r.startNs > toNs)
            return false;
        return fromNs == 0 || r.endNs == 0 || r.endNs >= fromNs;
    }
    r.toFlow(pool_, scratch_);
    return engine::overlapsTimeRange(scratch_, fromNs, toNs) && filter.matches(scratch_);
}

void FlowModel::cacheFull(engine::Flow&& flow)
{
    if (detailCap_ == 0)
        return;
    const uint64_t key = keyOf(flow);
    auto it = detailIndex_.find(key);
    if (it != detailIndex_.end()) {
        *it->second = std::move(flow);
        detail_.splice(detail_.begin(), detail_, it->second);
        return;
    }
    detail_.push_front(std::move(flow));
    detailIndex_.emplace(key, detail_.begin());
    while (detail_.size() > detailCap_) {
        detailIndex_.erase(keyOf(detail_.back()));
        detail_.pop_back();
    }
}

void FlowModel::setDetailCacheSize(size_t flows)
{
    detailCap_ = flows;
    while (detail_.size() > detailCap_) {
        detailIndex_.erase(keyOf(detail_.back()));
        detail_.pop_back();
    }
}

void FlowModel::applyBatch(std::vector<engine::Flow>&& updates)
{
    if (!frozen_) {
        applyNow(std::move(updates));
        return;
    }
    // A flow update carries the whole flow, so the latest one replaces what is queued.
    for (engine::Flow& flow : updates) {
        auto [it, added] = pendingIndex_.try_emplace(keyOf(flow), pending_.size());
        if (added)
            pending_.push_back(std::move(flow));
        else
            pending_[it->second] = std::move(flow);
    }
}

void FlowModel::clear()
{
    beginResetModel();
    slab_.clear();
    freeSlots_.clear();
    order_.clear();
    slotOf_.clear();
    detail_.clear();
    detailIndex_.clear();
    pending_.clear();
    pendingIndex_.clear();
    endResetModel();
}

void FlowModel::setFrozen(bool frozen)
{
    if (frozen == frozen_)
        return;
    frozen_ = frozen;
    if (!frozen_) {
        std::vector<engine::Flow> queued = std::move(pending_);
        pending_.clear();
        pendingIndex_.clear();
        applyNow(std::move(queued));
    }
}

void FlowModel::applyNow(std::vector<engine::Flow>&& updates)
{
    if (updates.empty())
        return;
    std::vector<int> changed;
    std::vector<size_t> fresh;                       // indexes into updates, first arrival order
    std::unordered_map<uint64_t, size_t> freshIndex;
    for (size_t i = 0; i < updates.size(); ++i) {
        const engine::Flow& flow = updates[i];
        const uint64_t key = keyOf(flow);
        if (auto it = slotOf_.find(key); it != slotOf_.end()) {
            slab_[it->second].assign(flow, pool_);
            changed.push_back(rowOfSlot(it->second));
        } else if (auto [f, added] = freshIndex.try_emplace(key, fresh.size()); added) {
            fresh.push_back(i);
        } else {
            fresh[f->second] = i;                    // a later update of a flow new in this batch
        }
    }

    // One dataChanged per contiguous run of changed rows.
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    for (size_t i = 0; i < changed.size();) {
        size_t j = i;
        while (j + 1 < changed.size() && changed[j + 1] == changed[j] + 1)
            ++j;
        emit dataChanged(index(changed[i], 0), index(changed[j], ColumnCount - 1));
        i = j + 1;
    }

    if (!fresh.empty()) {
        const int first = rowCount();
        beginInsertRows({}, first, first + static_cast<int>(fresh.size()) - 1);
        for (size_t i : fresh) {
            uint32_t slot;
            if (!freeSlots_.empty()) {
                slot = freeSlots_.back();
                freeSlots_.pop_back();
            } else {
                slot = static_cast<uint32_t>(slab_.size());
                slab_.emplace_back();
            }
            slab_[slot].assign(updates[i], pool_);
            slab_[slot].seq = nextSeq_++;
            slab_[slot].key = keyOf(updates[i]);
            slotOf_[slab_[slot].key] = slot;
            order_.push_back(slot);
        }
        endInsertRows();
    }

    for (engine::Flow& flow : updates)
        cacheFull(std::move(flow));
    evict();
}

void FlowModel::setRetention(size_t rows)
{
    retention_ = rows;
    evict();
}

void FlowModel::evict()
{
    if (order_.size() <= retention_)
        return;
    size_t excess = order_.size() - retention_;
    std::vector<std::pair<int, int>> ranges;         // [first, last] model rows, ascending
    for (size_t i = 0; i < order_.size() && excess > 0; ++i) {
        if (!slab_[order_[i]].ended())
            continue;
        const int row = static_cast<int>(i);
        if (!ranges.empty() && ranges.back().second + 1 == row)
            ranges.back().second = row;
        else
            ranges.emplace_back(row, row);
        --excess;
    }
    // Back to front, so the rows of the ranges still to remove keep their numbers.
    for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
        beginRemoveRows({}, it->first, it->second);
        for (int row = it->first; row <= it->second; ++row) {
            const uint32_t slot = order_[static_cast<size_t>(row)];
            FlowRow& gone = slab_[slot];
            slotOf_.erase(gone.key);
            if (auto d = detailIndex_.find(gone.key); d != detailIndex_.end()) {
                detail_.erase(d->second);
                detailIndex_.erase(d);
            }
            gone = FlowRow{};
            freeSlots_.push_back(slot);
            ++evicted_;
        }
        order_.erase(order_.begin() + it->first, order_.begin() + it->second + 1);
        endRemoveRows();
    }
}

size_t FlowModel::memoryBytes() const
{
    size_t bytes = sizeof(*this) + slab_.capacity() * sizeof(FlowRow) + freeSlots_.capacity() * sizeof(uint32_t) +
                   order_.capacity() * sizeof(uint32_t) + hashMapBytes(slotOf_) + hashMapBytes(detailIndex_) +
                   hashMapBytes(pendingIndex_) + pool_.memoryBytes();
    for (uint32_t slot : order_)
        bytes += slab_[slot].heapBytes();
    for (const engine::Flow& flow : detail_)
        bytes += flowBytes(flow) + 2 * sizeof(void*);
    bytes += pending_.capacity() * sizeof(engine::Flow);
    for (const engine::Flow& flow : pending_)
        bytes += flowBytes(flow) - sizeof(engine::Flow);
    return bytes;
}

}  // namespace redirect::gui
