// The service's recent log lines, numbered, for WatchLog: an spdlog sink that keeps the last N.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>

#include "redirect_console.pb.h"

namespace redirect::service {

class LogRing {
public:
    explicit LogRing(size_t capacity) : capacity_(capacity) {}
    void add(int64_t unixNs, const std::string& level, const std::string& text);
    /// Lines after `after` (missed: lines that left the ring first); waits up to `wait` for one.
    v1::LogBatch readAfter(uint64_t after, std::chrono::milliseconds wait, uint64_t* last) const;
    void close();

    /// An spdlog sink that adds every line here.
    std::shared_ptr<spdlog::sinks::sink> sink();

private:
    const size_t capacity_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::deque<v1::LogLine> lines_;
    uint64_t newest_ = 0;
    bool closed_ = false;
};

}  // namespace redirect::service
