#include "flow_model.h"

#include <QDateTime>

#include <algorithm>
#include <cstring>
#include <iterator>

namespace redirect::gui {

// One hop without its blobs; the redirector name is interned.
struct FlowModel::HopRow {
    uint32_t redirectorId = 0;
    uint32_t name = 0;
    uint32_t recordsSize = 0;
    uint32_t contextSize = 0;
    float connectMs = -1;
    uint8_t state = 0;
    bool external = false;
    bool recordsMissing = false;
    engine::EndReason reason = engine::EndReason::Open;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
    int64_t startNs = 0;
    int64_t endNs = 0;
};

// What the columns, the filter and the details summary need; repeated strings are pool ids.
struct FlowModel::Row {
    uint64_t seq = 0;
    uint64_t flowId = 0;
    int64_t startNs = 0;
    int64_t endNs = 0;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
    uint64_t cgroupId = 0;
    uint32_t pid = 0;
    uint32_t uid = 0;
    uint32_t comm = 0;
    uint32_t user = 0;
    uint32_t rule = 0;
    uint32_t verdict = 0;
    engine::EndReason reason = engine::EndReason::Open;
    std::string destination;
    std::string host;
    std::vector<HopRow> hops;

    bool ended() const { return reason != engine::EndReason::Open; }
    int64_t durationNs() const { return ended() && endNs >= startNs ? endNs - startNs : -1; }
    uint32_t recordsSize() const
    {
        uint32_t size = 0;
        for (const HopRow& hop : hops)
            size = std::max(size, hop.recordsSize);
        return size;
    }
    uint32_t contextSize() const
    {
        uint32_t size = 0;
        for (const HopRow& hop : hops)
            size = std::max(size, hop.contextSize);
        return size;
    }
};

namespace {

size_t stringHeap(const std::string& text) { return text.capacity() > 15 ? text.capacity() + 1 : 0; }

// Heap bytes an unordered_map node and its bucket cost, roughly (libstdc++ node + malloc header).
template <typename Map>
size_t hashBytes(const Map& map)
{
    return map.size() * (sizeof(void*) + sizeof(typename Map::value_type) + 16) + map.bucket_count() * sizeof(void*);
}

size_t flowBytes(const engine::Flow& flow)
{
    size_t bytes = sizeof(engine::Flow) + stringHeap(flow.comm) + stringHeap(flow.user) +
                   stringHeap(flow.destination) + stringHeap(flow.host) + stringHeap(flow.rule) +
                   stringHeap(flow.verdict) + flow.hops.capacity() * sizeof(engine::Hop);
    for (const engine::Hop& hop : flow.hops)
        bytes += stringHeap(hop.redirector) + hop.records.capacity() + hop.context.capacity();
    return bytes;
}

QString humanBytes(uint64_t bytes)
{
    if (bytes < 1024)
        return QStringLiteral("%1 B").arg(bytes);
    static const char* const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double value = static_cast<double>(bytes) / 1024.0;
    size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < std::size(units)) {
        value /= 1024.0;
        ++unit;
    }
    return QStringLiteral("%1 %2").arg(value, 0, 'f', value < 10 ? 1 : 0).arg(QLatin1String(units[unit]));
}

QString durationText(int64_t ns)
{
    if (ns < 0)
        return {};
    const int64_t ms = ns / 1000000;
    if (ms < 1000)
        return ns < 1000000 ? QStringLiteral("%1 µs").arg(ns / 1000) : QStringLiteral("%1 ms").arg(ms);
    if (ms < 60000)
        return QStringLiteral("%1 s").arg(static_cast<double>(ms) / 1000.0, 0, 'f', 2);
    const int64_t s = ms / 1000;
    if (s < 3600)
        return QStringLiteral("%1m %2s").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1h %2m").arg(s / 3600).arg((s / 60) % 60, 2, 10, QLatin1Char('0'));
}

QString timeText(int64_t ns)
{
    if (ns == 0)
        return {};
    return QDateTime::fromMSecsSinceEpoch(ns / 1000000).toString(QStringLiteral("hh:mm:ss.zzz"));
}

QString qs(const std::string& text) { return QString::fromUtf8(text.data(), static_cast<qsizetype>(text.size())); }

}  // namespace

FlowModel::FlowModel(QObject* parent) : QAbstractTableModel(parent)
{
    intern({});  // pool id 0 is the empty string
}

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
    case Destination: return tr("Destination");
    case Chain: return tr("Chain");
    case State: return tr("Redirect state");
    case Records: return tr("Records");
    case Context: return tr("Context");
    case BytesUp: return tr("Up");
    case BytesDown: return tr("Down");
    case Duration: return tr("Duration");
    case Reason: return tr("End reason");
    default: return {};
    }
}

QVariant FlowModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Row& row = rowAt(index.row());
    switch (role) {
    case Qt::DisplayRole: return display(row, index.column());
    case RawRole: return raw(row, index.column());
    case FlowIdRole: return QVariant::fromValue<qulonglong>(row.flowId);
    case Qt::TextAlignmentRole:
        switch (index.column()) {
        case Records: case Context: case BytesUp: case BytesDown: case Duration:
            return QVariant::fromValue(Qt::AlignRight | Qt::AlignVCenter);
        default: return {};
        }
    case Qt::ToolTipRole:
        if (index.column() == Time)
            return QString::fromStdString(engine::rfc3339Utc(row.startNs));
        return {};
    default: return {};
    }
}

QString FlowModel::display(const Row& row, int column) const
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
    case Records: return humanBytes(row.recordsSize());
    case Context: return humanBytes(row.contextSize());
    case BytesUp: return humanBytes(row.bytesUp);
    case BytesDown: return humanBytes(row.bytesDown);
    case Duration: return durationText(row.durationNs());
    default: return raw(row, column).toString();
    }
}

QVariant FlowModel::raw(const Row& row, int column) const
{
    switch (column) {
    case Time: return QVariant::fromValue<qint64>(row.startNs);
    case Process: return qs(pooled(row.comm));
    case Destination: return qs(row.destination);
    case Chain: {
        QString text;
        for (const HopRow& hop : row.hops) {
            if (hop.redirectorId == 0)
                continue;
            const std::string& name = pooled(hop.name);
            text += (name.empty() ? QString::number(hop.redirectorId) : qs(name)) + QStringLiteral(" → ");
        }
        return text + qs(row.destination);
    }
    case State:
        for (const HopRow& hop : row.hops)
            if (hop.redirectorId != 0)
                return QString::fromLatin1(engine::redirectStateName(hop.state));
        return qs(pooled(row.verdict));
    case Records: return QVariant::fromValue<qulonglong>(row.recordsSize());
    case Context: return QVariant::fromValue<qulonglong>(row.contextSize());
    case BytesUp: return QVariant::fromValue<qulonglong>(row.bytesUp);
    case BytesDown: return QVariant::fromValue<qulonglong>(row.bytesDown);
    case Duration: return QVariant::fromValue<qint64>(row.durationNs());
    case Reason: return QString::fromLatin1(engine::endReasonName(row.reason));
    default: return {};
    }
}

bool FlowModel::rowLessThan(int left, int right, int column) const
{
    const Row& a = rowAt(left);
    const Row& b = rowAt(right);
    switch (column) {
    case Time: return a.startNs < b.startNs;
    case Process: return pooled(a.comm) < pooled(b.comm);
    case Destination: return a.destination < b.destination;
    case Records: return a.recordsSize() < b.recordsSize();
    case Context: return a.contextSize() < b.contextSize();
    case BytesUp: return a.bytesUp < b.bytesUp;
    case BytesDown: return a.bytesDown < b.bytesDown;
    case Duration: return a.durationNs() < b.durationNs();
    case Reason: return std::strcmp(engine::endReasonName(a.reason), engine::endReasonName(b.reason)) < 0;
    default: return raw(a, column).toString() < raw(b, column).toString();
    }
}

uint32_t FlowModel::intern(const std::string& text)
{
    auto [it, added] = poolIndex_.try_emplace(text, static_cast<uint32_t>(pool_.size()));
    if (added)
        pool_.push_back(text);
    return it->second;
}

// Row <-> Flow and HopRow <-> Hop share these field names; both directions copy them here.
template <typename From, typename To>
void copyFlowFields(const From& in, To& out)
{
    out.flowId = in.flowId;
    out.startNs = in.startNs;
    out.endNs = in.endNs;
    out.bytesUp = in.bytesUp;
    out.bytesDown = in.bytesDown;
    out.cgroupId = in.cgroupId;
    out.pid = in.pid;
    out.uid = in.uid;
    out.reason = in.reason;
    out.destination = in.destination;
    out.host = in.host;
}

template <typename From, typename To>
void copyHopFields(const From& in, To& out)
{
    out.redirectorId = in.redirectorId;
    out.recordsSize = in.recordsSize;
    out.contextSize = in.contextSize;
    out.connectMs = static_cast<decltype(out.connectMs)>(in.connectMs);
    out.state = in.state;
    out.external = in.external;
    out.recordsMissing = in.recordsMissing;
    out.reason = in.reason;
    out.bytesUp = in.bytesUp;
    out.bytesDown = in.bytesDown;
    out.startNs = in.startNs;
    out.endNs = in.endNs;
}

void FlowModel::fillRow(Row& row, const engine::Flow& flow)
{
    copyFlowFields(flow, row);
    row.comm = intern(flow.comm);
    row.user = intern(flow.user);
    row.rule = intern(flow.rule);
    row.verdict = intern(flow.verdict);
    row.hops.resize(flow.hops.size());
    row.hops.shrink_to_fit();
    for (size_t i = 0; i < flow.hops.size(); ++i) {
        copyHopFields(flow.hops[i], row.hops[i]);
        row.hops[i].name = intern(flow.hops[i].redirector);
    }
}

void FlowModel::toFlow(const Row& row, engine::Flow& out) const
{
    copyFlowFields(row, out);
    out.comm = pooled(row.comm);
    out.user = pooled(row.user);
    out.rule = pooled(row.rule);
    out.verdict = pooled(row.verdict);
    out.hops.resize(row.hops.size());
    for (size_t i = 0; i < row.hops.size(); ++i) {
        copyHopFields(row.hops[i], out.hops[i]);
        out.hops[i].redirector = pooled(row.hops[i].name);
    }
}

const FlowModel::Row& FlowModel::rowAt(int row) const { return slab_[order_[static_cast<size_t>(row)]]; }

int FlowModel::rowOfSlot(uint32_t slot) const
{
    const uint64_t seq = slab_[slot].seq;
    auto it = std::lower_bound(order_.begin(), order_.end(), seq,
                               [this](uint32_t s, uint64_t value) { return slab_[s].seq < value; });
    return it != order_.end() && *it == slot ? static_cast<int>(it - order_.begin()) : -1;
}

int FlowModel::rowForFlowId(uint64_t flowId) const
{
    auto it = slotOf_.find(flowId);
    return it == slotOf_.end() ? -1 : rowOfSlot(it->second);
}

uint64_t FlowModel::flowIdAt(int row) const
{
    return row >= 0 && row < rowCount() ? rowAt(row).flowId : 0;
}

std::optional<engine::Flow> FlowModel::fullFlow(int row) const
{
    if (row < 0 || row >= rowCount())
        return std::nullopt;
    auto it = detailIndex_.find(rowAt(row).flowId);
    if (it == detailIndex_.end())
        return std::nullopt;
    return *it->second;
}

std::optional<engine::Flow> FlowModel::flowSummary(int row) const
{
    if (row < 0 || row >= rowCount())
        return std::nullopt;
    engine::Flow flow;
    toFlow(rowAt(row), flow);
    return flow;
}

bool FlowModel::rowMatches(int row, const engine::FlowFilter& filter, int64_t fromNs, int64_t toNs) const
{
    const Row& r = rowAt(row);
    if (filter.empty()) {
        if (toNs != 0 && r.startNs > toNs)
            return false;
        return fromNs == 0 || r.endNs == 0 || r.endNs >= fromNs;
    }
    toFlow(r, scratch_);
    return engine::overlapsTimeRange(scratch_, fromNs, toNs) && filter.matches(scratch_);
}

void FlowModel::cacheFull(engine::Flow&& flow)
{
    if (detailCap_ == 0)
        return;
    auto it = detailIndex_.find(flow.flowId);
    if (it != detailIndex_.end()) {
        *it->second = std::move(flow);
        detail_.splice(detail_.begin(), detail_, it->second);
        return;
    }
    detail_.push_front(std::move(flow));
    detailIndex_.emplace(detail_.front().flowId, detail_.begin());
    while (detail_.size() > detailCap_) {
        detailIndex_.erase(detail_.back().flowId);
        detail_.pop_back();
    }
}

void FlowModel::setDetailCacheSize(size_t flows)
{
    detailCap_ = flows;
    while (detail_.size() > detailCap_) {
        detailIndex_.erase(detail_.back().flowId);
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
        auto [it, added] = pendingIndex_.try_emplace(flow.flowId, pending_.size());
        if (added)
            pending_.push_back(std::move(flow));
        else
            pending_[it->second] = std::move(flow);
    }
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
        if (auto it = slotOf_.find(flow.flowId); it != slotOf_.end()) {
            fillRow(slab_[it->second], flow);
            changed.push_back(rowOfSlot(it->second));
        } else if (auto [f, added] = freshIndex.try_emplace(flow.flowId, fresh.size()); added) {
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
            fillRow(slab_[slot], updates[i]);
            slab_[slot].seq = nextSeq_++;
            slotOf_[updates[i].flowId] = slot;
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
            Row& gone = slab_[slot];
            slotOf_.erase(gone.flowId);
            if (auto d = detailIndex_.find(gone.flowId); d != detailIndex_.end()) {
                detail_.erase(d->second);
                detailIndex_.erase(d);
            }
            gone = Row{};
            freeSlots_.push_back(slot);
            ++evicted_;
        }
        order_.erase(order_.begin() + it->first, order_.begin() + it->second + 1);
        endRemoveRows();
    }
}

size_t FlowModel::memoryBytes() const
{
    size_t bytes = sizeof(*this) + slab_.capacity() * sizeof(Row) + freeSlots_.capacity() * sizeof(uint32_t) +
                   order_.capacity() * sizeof(uint32_t) + hashBytes(slotOf_) + hashBytes(detailIndex_) +
                   hashBytes(pendingIndex_) + pool_.capacity() * sizeof(std::string) + hashBytes(poolIndex_);
    for (const std::string& text : pool_)
        bytes += 2 * stringHeap(text);
    for (uint32_t slot : order_) {
        const Row& row = slab_[slot];
        bytes += stringHeap(row.destination) + stringHeap(row.host) + row.hops.capacity() * sizeof(HopRow);
    }
    for (const engine::Flow& flow : detail_)
        bytes += flowBytes(flow) + 2 * sizeof(void*);
    bytes += pending_.capacity() * sizeof(engine::Flow);
    for (const engine::Flow& flow : pending_)
        bytes += flowBytes(flow) - sizeof(engine::Flow);
    return bytes;
}

}  // namespace redirect::gui
