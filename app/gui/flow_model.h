// The live flow table's model: compact rows (flow_row.h) that keep raw values,
// formatted only in data() (engine/format.h); batched appends, merged dataChanged
// runs, eviction of the oldest ended flows at the retention cap, and a small cache
// of full flows (with their blobs) for the details pane.
#pragma once

#include <QAbstractTableModel>

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "flow.h"
#include "flow_row.h"
#include "report.h"

namespace redirect::gui {

class FlowModel : public QAbstractTableModel {
    Q_OBJECT
public:
    // Datagrams: "up / down" of a UDP flow, empty for TCP (a TCP flow has no datagram count, not 0).
    enum Column { Time, Process, Protocol, Destination, Rule, Route, Chain, Records, Context, BytesUp, BytesDown,
                  Datagrams, Duration, Reason, Node, ColumnCount };
    enum Role { RawRole = Qt::UserRole, FlowIdRole };

    explicit FlowModel(QObject* parent = nullptr);
    ~FlowModel() override;

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

    /// Merge updates of known flows in place, append new ones (one insert per batch), then evict.
    void applyBatch(std::vector<engine::Flow>&& updates);

    /// Rows kept at most; the oldest ended flows go first, open flows are never evicted.
    void setRetention(size_t rows);
    size_t retention() const { return retention_; }
    /// Full flows (with records/context blobs) kept for the details pane.
    void setDetailCacheSize(size_t flows);

    /// Forgets every row and what is queued (Capture > Clear); open flows come back with their next
    /// update. Counters (evicted) stay: they count since the console started.
    void clear();

    /// While frozen, batches are queued (merged by flow id) and applied on unfreeze.
    void setFrozen(bool frozen);
    bool isFrozen() const { return frozen_; }
    size_t pendingCount() const { return pending_.size(); }

    /// The flow with its blobs when it is still in the detail cache; nullopt otherwise.
    std::optional<engine::Flow> fullFlow(int row) const;
    /// The row as a Flow without blobs (hop sizes are there); nullopt for a bad row.
    std::optional<engine::Flow> flowSummary(int row) const;
    /// A flow of `node` ("" for the first node a console shows, and for single-node uses).
    int rowForFlowId(uint64_t flowId, const std::string& node = {}) const;
    uint64_t flowIdAt(int row) const;
    /// Rows are known by flow id and node together: flow ids (socket cookies) of two machines
    /// may be equal. The key of a row, and the row of a key.
    uint64_t keyAt(int row) const;
    int rowForKey(uint64_t key) const;

    /// The flow went direct (FlowRow::direct).
    bool rowIsDirect(int row) const { return rowAt(row).direct; }
    /// Whether a row passes `filter` and overlaps [fromNs, toNs] (0 bounds are open).
    bool rowMatches(int row, const engine::FlowFilter& filter, int64_t fromNs, int64_t toNs) const;
    /// Compares two rows on the raw value of `column` (what RawRole returns), without QVariant.
    bool rowLessThan(int left, int right, int column) const;

    /// Approximate heap and inline bytes the model holds (rows, index, pools, detail cache).
    size_t memoryBytes() const;
    uint64_t evictedCount() const { return evicted_; }

private:
    /// Flow id with the node's number (order of first sight, up to 255 nodes) in its top byte;
    /// flow ids are socket cookies, far below 2^56.
    uint64_t keyOf(const engine::Flow& flow) const;
    const std::string& pooled(uint32_t id) const { return pool_.at(id); }
    const FlowRow& rowAt(int row) const;
    QVariant toolTip(const FlowRow& row, int column) const;
    int rowOfSlot(uint32_t slot) const;
    void cacheFull(engine::Flow&& flow);
    void applyNow(std::vector<engine::Flow>&& updates);
    void evict();
    QVariant raw(const FlowRow& row, int column) const;
    QString display(const FlowRow& row, int column) const;

    std::vector<FlowRow> slab_;                           // rows by slot; free slots are reused
    std::vector<uint32_t> freeSlots_;
    std::vector<uint32_t> order_;                         // model row -> slot, in arrival order
    std::unordered_map<uint64_t, uint32_t> slotOf_;       // flow id -> slot
    uint64_t nextSeq_ = 0;                                // arrival order, for row lookup by slot

    StringPool pool_;                                     // comm/user/rule/verdict/redirector names

    std::list<engine::Flow> detail_;                      // most recently updated first
    std::unordered_map<uint64_t, std::list<engine::Flow>::iterator> detailIndex_;
    size_t detailCap_ = 2000;

    std::vector<engine::Flow> pending_;                   // queued while frozen
    std::unordered_map<uint64_t, size_t> pendingIndex_;
    bool frozen_ = false;

    size_t retention_ = 100000;
    uint64_t evicted_ = 0;
    mutable engine::Flow scratch_;                        // reused by rowMatches()
    mutable std::vector<std::string> nodes_{std::string()}; // node number -> name ("" is 0)
};

}  // namespace redirect::gui
