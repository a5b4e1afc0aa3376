#include "flow_history.h"

#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "engine.h"
#include "flow_proto.h"

namespace redirect::service {

namespace {

// "RCFH" in the header's application id: a database of ours, not any SQLite file that happens to
// be at the path; the schema version is the header's user_version.
constexpr int32_t kApplicationId = 0x52434648;
constexpr int kSchemaVersion = 1;
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr size_t kRowMemory = 1 << 16;  // ended flows whose rows a late update may still name

// Created in one transaction, on an empty file only. auto_vacuum has to be set before the first
// table: it is what lets the size retention give pages back to the file system.
constexpr const char* kSchema = R"(
CREATE TABLE flows (
  id INTEGER PRIMARY KEY,
  end_ns INTEGER NOT NULL,     -- wall clock, ns since the epoch
  start_ns INTEGER NOT NULL,
  flow_id INTEGER NOT NULL,    -- the node's flow id (socket cookie), as a signed 64-bit value
  flow BLOB NOT NULL           -- the control API's Flow message (app/api/redirect_console.proto)
);
-- Range queries, and the oldest first for retention. Queries bound the scan with the longest
-- duration stored (meta.max_duration_ns), so no index on start_ns is needed.
CREATE INDEX flows_by_end ON flows(end_ns);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
)";

// A statement prepared for one use; finalized on every path.
class Statement {
public:
    Statement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    explicit operator bool() const { return stmt_ != nullptr; }
    sqlite3_stmt* get() const { return stmt_; }
    void reset() const
    {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }

private:
    sqlite3_stmt* stmt_ = nullptr;
};

// The reason of the last failure on `db`, with the system's word for it when there was one.
std::string reasonOf(sqlite3* db)
{
    std::string reason = sqlite3_errmsg(db);
    if (int e = sqlite3_system_errno(db); e != 0 && sqlite3_errcode(db) != SQLITE_NOTADB)
        reason += std::string(" (") + std::strerror(e) + ")";
    return reason;
}

bool exec(sqlite3* db, const char* sql)
{
    return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

// One integer a statement (a pragma, a count) returns; nullopt when it fails.
std::optional<int64_t> single(sqlite3* db, const char* sql)
{
    Statement s(db, sql);
    if (!s || sqlite3_step(s.get()) != SQLITE_ROW)
        return std::nullopt;
    return sqlite3_column_int64(s.get(), 0);
}

// "END:ROW", the place after the last flow a batch held (end-time order, ties by row).
std::string cursorText(int64_t endNs, int64_t row) { return std::to_string(endNs) + ":" + std::to_string(row); }

bool parseCursor(const std::string& text, int64_t* endNs, int64_t* row)
{
    const char* begin = text.data();
    const char* end = begin + text.size();
    auto [colon, e1] = std::from_chars(begin, end, *endNs);
    if (e1 != std::errc() || colon == end || *colon != ':')
        return false;
    auto [last, e2] = std::from_chars(colon + 1, end, *row);
    return e2 == std::errc() && last == end;
}

sqlite3* openConnection(const std::string& path, int flags, std::string* error)
{
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOFOLLOW, nullptr) != SQLITE_OK) {
        *error = path + ": " + (db ? reasonOf(db) : std::string("out of memory"));
        sqlite3_close_v2(db);
        return nullptr;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

// The header of an existing file: a new (empty) database, ours at our version, or the reason not.
bool checkSchema(sqlite3* db, const std::string& path, bool* fresh, std::string* error)
{
    auto app = single(db, "PRAGMA application_id");
    auto version = single(db, "PRAGMA user_version");
    auto objects = single(db, "SELECT count(*) FROM sqlite_schema");
    if (!app || !version || !objects) {
        *error = path + ": " + reasonOf(db) + "; nothing was changed";
        return false;
    }
    *fresh = *app == 0 && *version == 0 && *objects == 0;
    char found[16];
    std::snprintf(found, sizeof(found), "0x%08" PRIx32, uint32_t(*app));
    if (!*fresh && *app != kApplicationId) {
        *error = path + ": not a Redirect Console flow history (SQLite application_id " + found +
                 "); nothing was changed";
        return false;
    }
    if (!*fresh && *version != kSchemaVersion) {
        *error = path + ": flow history schema version " + std::to_string(*version) + ", this service reads version " +
                 std::to_string(kSchemaVersion) + "; nothing was changed (move the file away, or choose --history PATH)";
        return false;
    }
    return true;
}

}  // namespace

std::unique_ptr<FlowHistory> FlowHistory::open(const HistoryOptions& options, std::string* error)
{
    const std::string& path = options.path;
    // Made here, 0600 and never through a link: SQLite would follow one and make the file 0644.
    // Its -wal and -shm files take this file's mode.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        *error = "cannot open the flow history " + path + ": " + std::strerror(errno);
        return nullptr;
    }
    struct stat st {};
    const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    ::close(fd);
    if (!regular) {
        *error = "cannot open the flow history " + path + ": not a regular file";
        return nullptr;
    }
    std::string why;
    sqlite3* db = openConnection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, &why);
    bool fresh = false;
    if (!db || !checkSchema(db, path, &fresh, &why)) {
        sqlite3_close_v2(db);
        *error = "cannot use the flow history " + why;
        return nullptr;
    }
    // WAL: readers (queries) never wait for the writer. synchronous=NORMAL: a commit is in the WAL
    // before it returns, so a crash of the service loses nothing committed; a power loss may lose
    // the last commits but never the database.
    bool ok = (!fresh || (exec(db, "PRAGMA auto_vacuum = INCREMENTAL") && exec(db, "BEGIN IMMEDIATE") &&
                          exec(db, kSchema) &&
                          exec(db, ("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str()) &&
                          exec(db, ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str()) &&
                          exec(db, "COMMIT"))) &&
              exec(db, "PRAGMA journal_mode = WAL") && exec(db, "PRAGMA synchronous = NORMAL") &&
              exec(db, "PRAGMA journal_size_limit = 8388608");
    if (!ok) {
        *error = "cannot use the flow history " + path + ": " + reasonOf(db);
        sqlite3_close_v2(db);
        return nullptr;
    }
    auto history = std::unique_ptr<FlowHistory>(new FlowHistory(options, db));
    return history;
}

FlowHistory::FlowHistory(HistoryOptions options, sqlite3* db)
    : options_(std::move(options)), db_(db),
      maxDurationNs_(single(db, "SELECT value FROM meta WHERE key = 'max_duration_ns'").value_or(0)),
      thread_([this] { run(); })
{
}

FlowHistory::~FlowHistory()
{
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    sqlite3_close_v2(db_);
}

void FlowHistory::add(const std::vector<engine::Flow>& flows)
{
    size_t lost = 0;
    {
        std::lock_guard lock(mutex_);
        for (const engine::Flow& f : flows) {
            if (f.endNs == 0)
                continue;
            if (pending_.size() >= kMaxPending) {
                ++lost;
                continue;
            }
            pending_.push_back(f);
        }
    }
    if (lost) {
        dropped_ += lost;
        const int64_t now = engine::wallNowNs();
        std::lock_guard lock(mutex_);
        if (now - lastDropLog_ >= 60'000'000'000) {  // at most once a minute; the count is in the status
            lastDropLog_ = now;
            spdlog::warn("flow history {}: the writer is behind; ended flows not kept so far: {}", options_.path,
                         dropped_.load());
        }
    }
    wake_.notify_all();
}

void FlowHistory::flush()
{
    std::unique_lock lock(mutex_);
    const uint64_t ticket = ++requested_;
    wake_.notify_all();
    done_.wait(lock, [&] { return served_ >= ticket; });
}

void FlowHistory::run()
{
    std::vector<engine::Flow> work;
    bool behind = false;  // retention has more to remove
    for (;;) {
        uint64_t ticket = 0;
        bool stopping = false;
        {
            std::unique_lock lock(mutex_);
            // Once a second without flows too: the age limit moves on by itself.
            wake_.wait_for(lock, behind ? std::chrono::milliseconds(10) : std::chrono::milliseconds(1000),
                           [&] { return stopping_ || !pending_.empty() || requested_ > served_; });
            work.swap(pending_);
            ticket = requested_;
            stopping = stopping_;
        }
        const size_t count = work.size();
        if (!work.empty())
            write(work);
        work.clear();
        if (work.capacity() > 4096)
            work = {};  // a burst's capacity is not kept for good
        behind = prune(std::max<size_t>(1000, 2 * count));
        {
            std::lock_guard lock(mutex_);
            served_ = ticket;
        }
        done_.notify_all();
        if (stopping) {
            std::lock_guard lock(mutex_);
            if (pending_.empty())
                return;
        }
    }
}

void FlowHistory::write(std::vector<engine::Flow>& flows)
{
    Statement insert(db_, "INSERT INTO flows (end_ns, start_ns, flow_id, flow) VALUES (?1, ?2, ?3, ?4)");
    Statement update(db_, "UPDATE flows SET end_ns = ?1, start_ns = ?2, flow_id = ?3, flow = ?4 WHERE id = ?5");
    Statement meta(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES ('max_duration_ns', ?1)");
    if (!insert || !update || !meta || !exec(db_, "BEGIN IMMEDIATE")) {
        dropped_ += flows.size();
        failed("cannot write");
        return;
    }
    v1::Flow message;
    std::string bytes;
    const int64_t longestBefore = maxDurationNs_;
    bool ok = true;
    for (const engine::Flow& f : flows) {
        message.Clear();
        toProto(f, &message);
        message.SerializeToString(&bytes);
        auto bind = [&](const Statement& s) {
            sqlite3_bind_int64(s.get(), 1, f.endNs);
            sqlite3_bind_int64(s.get(), 2, f.startNs);
            sqlite3_bind_int64(s.get(), 3, int64_t(f.flowId));
            sqlite3_bind_blob(s.get(), 4, bytes.data(), int(bytes.size()), SQLITE_STATIC);
        };
        // A late update of a flow that ended already replaces its row (when retention left it).
        bool done = false;
        if (auto it = rowOf_.find(f.flowId); it != rowOf_.end()) {
            bind(update);
            sqlite3_bind_int64(update.get(), 5, it->second);
            ok = sqlite3_step(update.get()) == SQLITE_DONE;
            done = ok && sqlite3_changes(db_) > 0;
            update.reset();
        }
        if (ok && !done) {
            bind(insert);
            ok = sqlite3_step(insert.get()) == SQLITE_DONE;
            insert.reset();
            if (ok && rowOf_.emplace(f.flowId, sqlite3_last_insert_rowid(db_)).second) {
                rowOrder_.push_back(f.flowId);
                if (rowOrder_.size() > kRowMemory) {
                    rowOf_.erase(rowOrder_.front());
                    rowOrder_.pop_front();
                }
            } else if (ok) {
                rowOf_[f.flowId] = sqlite3_last_insert_rowid(db_);
            }
        }
        if (!ok)
            break;
        maxDurationNs_ = std::max(maxDurationNs_, f.endNs - f.startNs);
    }
    if (ok && maxDurationNs_ > longestBefore) {
        sqlite3_bind_int64(meta.get(), 1, maxDurationNs_);
        ok = sqlite3_step(meta.get()) == SQLITE_DONE;
    }
    if (ok && exec(db_, "COMMIT")) {
        written_ += flows.size();
        return;
    }
    failed("cannot write");
    exec(db_, "ROLLBACK");
    maxDurationNs_ = longestBefore;
    rowOf_.clear();  // rows of this transaction are gone
    rowOrder_.clear();
    dropped_ += flows.size();
}

bool FlowHistory::prune(size_t rows)
{
    Statement oldest(db_, "DELETE FROM flows WHERE id IN (SELECT id FROM flows WHERE end_ns < ?1 ORDER BY end_ns LIMIT ?2)");
    if (!oldest) {
        failed("cannot prune");
        return false;
    }
    int64_t removed = 0;
    auto removeOlderThan = [&](int64_t cutoff) {
        sqlite3_bind_int64(oldest.get(), 1, cutoff);
        sqlite3_bind_int64(oldest.get(), 2, int64_t(rows));
        const bool ok = sqlite3_step(oldest.get()) == SQLITE_DONE;
        if (ok)
            removed += sqlite3_changes(db_);
        else
            failed("cannot prune");
        oldest.reset();
    };
    const double ageNs = options_.maxDays * 86400e9;
    removeOlderThan(ageNs >= double(kMax) ? kMin : engine::wallNowNs() - int64_t(ageNs));

    const auto maxBytes = int64_t(options_.maxMb * 1024 * 1024);
    auto pages = single(db_, "PRAGMA page_count");
    auto freePages = single(db_, "PRAGMA freelist_count");
    auto pageSize = single(db_, "PRAGMA page_size");
    if (!pages || !freePages || !pageSize) {
        failed("cannot measure");
        return false;
    }
    if ((*pages - *freePages) * *pageSize > maxBytes) {
        removeOlderThan(kMax);
        freePages = single(db_, "PRAGMA freelist_count");
    }
    // Free pages go back to the file system only while the file is above the limit; below it,
    // new rows reuse them.
    bool vacuumed = false;
    if (freePages && *freePages > 0 && *pages * *pageSize > maxBytes) {
        vacuumed = exec(db_, ("PRAGMA incremental_vacuum(" + std::to_string(std::min<int64_t>(*freePages, 2048)) + ")").c_str());
        // The file shrinks when the WAL is copied back: now, not at the next automatic checkpoint.
        exec(db_, "PRAGMA wal_checkpoint(PASSIVE)");
    }
    pruned_ += uint64_t(removed);
    return removed > 0 || vacuumed;
}

void FlowHistory::failed(const char* what)
{
    // Loud, but at most once a minute: a full disk fails every batch.
    const int64_t now = engine::wallNowNs();
    if (now - lastErrorLog_ < 60'000'000'000)
        return;
    lastErrorLog_ = now;
    spdlog::error("flow history {}: {}: {} ({} ended flows not kept so far)", options_.path, what, reasonOf(db_),
                  dropped_.load());
}

int64_t FlowHistory::writerCpuNs() const
{
    clockid_t clock;
    timespec ts{};
    if (pthread_getcpuclockid(const_cast<std::thread&>(thread_).native_handle(), &clock) != 0 ||
        clock_gettime(clock, &ts) != 0)
        return -1;
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string FlowHistory::checkQuery(const HistoryQuery& q)
{
    int64_t end = 0, row = 0;
    if (!q.after.empty() && !parseCursor(q.after, &end, &row))
        return "after_cursor \"" + q.after + "\" is not a cursor this node gave";
    if (q.fromNs != 0 && q.toNs != 0 && q.fromNs > q.toNs)
        return "the time range ends before it starts (from " + std::to_string(q.fromNs) + " ns, to " +
               std::to_string(q.toNs) + " ns)";
    return {};
}

bool FlowHistory::query(const HistoryQuery& q, const Batch& each, std::string* error) const
{
    if (std::string bad = checkQuery(q); !bad.empty()) {
        *error = bad;
        return false;
    }
    int64_t afterEnd = kMin, afterRow = kMin;
    if (!q.after.empty())
        parseCursor(q.after, &afterEnd, &afterRow);
    std::string why;
    sqlite3* db = openConnection(options_.path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, &why);
    if (!db) {
        *error = "cannot read the flow history " + why;
        return false;
    }
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(db, sqlite3_close_v2);
    // A flow that overlaps [from, to] ended at or after `from` and at most the longest duration
    // after `to`: the index on end_ns scans that much, and start_ns <= to sorts out the rest.
    const int64_t longest = single(db, "SELECT value FROM meta WHERE key = 'max_duration_ns'").value_or(0);
    const int64_t from = q.fromNs == 0 ? kMin : q.fromNs;
    const int64_t to = q.toNs == 0 ? kMax : q.toNs;
    const int64_t endBound = to > kMax - longest ? kMax : to + longest;
    Statement select(db, "SELECT id, end_ns, flow FROM flows WHERE end_ns >= ?1 AND end_ns <= ?2 AND start_ns <= ?3 "
                         "AND (end_ns, id) > (?4, ?5) ORDER BY end_ns, id LIMIT ?6");
    if (!select) {
        *error = "cannot read the flow history " + options_.path + ": " + reasonOf(db);
        return false;
    }
    const size_t batch = std::max<size_t>(1, q.batch);
    uint64_t sent = 0;
    for (;;) {
        const size_t want = q.limit == 0 ? batch : size_t(std::min<uint64_t>(batch, q.limit - sent));
        if (want == 0)
            return true;
        // Each batch is a read transaction of its own: a slow client never holds the WAL open.
        sqlite3_bind_int64(select.get(), 1, from);
        sqlite3_bind_int64(select.get(), 2, endBound);
        sqlite3_bind_int64(select.get(), 3, to);
        sqlite3_bind_int64(select.get(), 4, afterEnd);
        sqlite3_bind_int64(select.get(), 5, afterRow);
        sqlite3_bind_int64(select.get(), 6, int64_t(want));
        std::vector<std::string> flows;
        int rc;
        while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
            afterRow = sqlite3_column_int64(select.get(), 0);
            afterEnd = sqlite3_column_int64(select.get(), 1);
            const auto* blob = static_cast<const char*>(sqlite3_column_blob(select.get(), 2));
            flows.emplace_back(blob ? blob : "", size_t(sqlite3_column_bytes(select.get(), 2)));
        }
        select.reset();
        if (rc != SQLITE_DONE) {
            *error = "cannot read the flow history " + options_.path + ": " + reasonOf(db);
            return false;
        }
        const size_t got = flows.size();
        sent += got;
        if (got > 0 && !each(std::move(flows), cursorText(afterEnd, afterRow)))
            return true;
        if (got < want)
            return true;
    }
}

}  // namespace redirect::service
