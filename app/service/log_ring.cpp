#include "log_ring.h"

#include <spdlog/details/null_mutex.h>

namespace redirect::service {

namespace {

class RingSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
public:
    explicit RingSink(LogRing& ring) : ring_(ring) {}

protected:
    // base_sink serialises calls with its own (here: no) mutex; the ring locks itself.
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(msg.time.time_since_epoch()).count();
        const auto level = spdlog::level::to_string_view(msg.level);
        ring_.add(ns, std::string(level.data(), level.size()), std::string(msg.payload.data(), msg.payload.size()));
    }
    void flush_() override {}

private:
    LogRing& ring_;
};

}  // namespace

void LogRing::add(int64_t unixNs, const std::string& level, const std::string& text)
{
    {
        std::lock_guard lock(mutex_);
        v1::LogLine line;
        line.set_sequence(++newest_);
        line.set_unix_ns(unixNs);
        line.set_level(level);
        line.set_text(text);
        lines_.push_back(std::move(line));
        if (lines_.size() > capacity_)
            lines_.pop_front();
    }
    changed_.notify_all();
}

v1::LogBatch LogRing::readAfter(uint64_t after, std::chrono::milliseconds wait, uint64_t* last) const
{
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, wait, [&] { return closed_ || newest_ > after; });
    v1::LogBatch batch;
    *last = std::min(after, newest_);
    if (newest_ <= after)
        return batch;
    const uint64_t first = newest_ - lines_.size() + 1;
    uint64_t from = std::max(after + 1, first);
    batch.set_missed(from - (after + 1));
    for (size_t i = static_cast<size_t>(from - first); i < lines_.size(); ++i)
        *batch.add_lines() = lines_[i];
    *last = newest_;
    return batch;
}

void LogRing::close()
{
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    changed_.notify_all();
}

std::shared_ptr<spdlog::sinks::sink> LogRing::sink()
{
    return std::make_shared<RingSink>(*this);
}

}  // namespace redirect::service
