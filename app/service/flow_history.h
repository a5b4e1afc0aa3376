// The service's flow history: every ended flow, kept in SQLite (WAL) across restarts, pruned by
// age and size, and read back by time range for the QueryHistory call.
//
// One row per flow: the time columns the queries and the pruning use, and the flow itself as the
// control API's Flow message (hops, blobs and all). The wire schema is the one schema of a flow;
// it only ever gains fields, so rows of an older service read as they are, and the query streams
// them without conversion. A relational hop table would double the inserts and need a migration
// for every field the API gains.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "flow.h"

struct sqlite3;

namespace redirect::service {

struct HistoryOptions {
    std::string path;
    double maxDays = 7;    ///< flows that ended longer ago go
    double maxMb = 256;    ///< the database's size at most (MiB); the oldest flows go first
};

/// Which ended flows a query returns: those whose [start, end] overlaps [fromNs, toNs] (0 bounds
/// are open), in end-time order, after `after` (a cursor of an earlier batch), at most `limit`.
struct HistoryQuery {
    int64_t fromNs = 0;
    int64_t toNs = 0;
    uint64_t limit = 0;        ///< 0: all
    std::string after;         ///< "" from the first
    size_t batch = 2000;       ///< flows per call of the batch callback
};

class FlowHistory {
public:
    /// The database at options.path, created (mode 0600) when missing; nullptr with one line in
    /// *error that names the path and the reason (errno text, or the schema found) otherwise. A file
    /// that is not our schema is left as it was.
    static std::unique_ptr<FlowHistory> open(const HistoryOptions& options, std::string* error);
    ~FlowHistory();
    FlowHistory(const FlowHistory&) = delete;
    FlowHistory& operator=(const FlowHistory&) = delete;

    /// Queues the ended flows among `flows` for the writer thread; never waits on the disk. Beyond
    /// kMaxPending waiting flows, more are dropped and counted.
    void add(const std::vector<engine::Flow>& flows);
    /// Waits until every flow added before is committed (or dropped).
    void flush();

    /// Calls `each` with up to query.batch flows (the API's Flow bytes) and the cursor after the
    /// last of them, until the range is done or `each` returns false. Reads on a connection of its
    /// own, one short read transaction per batch (writes go on meanwhile). False with the reason.
    using Batch = std::function<bool(std::vector<std::string>&& flows, const std::string& cursor)>;
    bool query(const HistoryQuery& query, const Batch& each, std::string* error) const;
    /// Why query() would refuse `query` (a range that ends before it starts, a cursor not ours); "" when fine.
    static std::string checkQuery(const HistoryQuery& query);

    const std::string& path() const { return options_.path; }
    uint64_t written() const { return written_.load(); }
    uint64_t dropped() const { return dropped_.load(); }
    uint64_t pruned() const { return pruned_.load(); }
    /// CPU time the writer thread used so far (ns).
    int64_t writerCpuNs() const;

    static constexpr size_t kMaxPending = 200000;

private:
    FlowHistory(HistoryOptions options, sqlite3* db);
    void run();
    void write(std::vector<engine::Flow>& flows);
    /// One small step of retention: at most `rows` flows go per call, so inserts never wait long.
    /// True when it removed some (the next step comes soon, not after the idle second).
    bool prune(size_t rows);
    void failed(const char* what);

    const HistoryOptions options_;
    sqlite3* db_;                      // the writer's connection, used on its thread only
    int64_t maxDurationNs_ = 0;        // longest flow stored: bounds a range query's index scan
    std::unordered_map<uint64_t, int64_t> rowOf_;  // recently ended flow ids -> rows: late updates
    std::deque<uint64_t> rowOrder_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    std::vector<engine::Flow> pending_;
    int64_t lastDropLog_ = 0;
    uint64_t requested_ = 0;           // flush tickets asked for / served
    uint64_t served_ = 0;
    bool stopping_ = false;
    std::atomic<uint64_t> written_{0};
    std::atomic<uint64_t> dropped_{0};
    std::atomic<uint64_t> pruned_{0};
    int64_t lastErrorLog_ = 0;
    std::thread thread_;               // last: it starts in the constructor
};

}  // namespace redirect::service
