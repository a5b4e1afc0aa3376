// Bounded multi-producer queue drained in batches; a full queue drops and counts.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace redirect::engine {

template <typename T>
class BoundedQueue {
public:
    explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

    /// False (and one more drop counted) when full: producers never block.
    bool push(T&& item)
    {
        std::lock_guard lock(mutex_);
        if (items_.size() >= capacity_) {
            drops_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        items_.push_back(std::move(item));
        return true;
    }

    /// Move up to `max` items into `out`; returns how many.
    size_t drain(std::vector<T>& out, size_t max = static_cast<size_t>(-1))
    {
        std::lock_guard lock(mutex_);
        size_t n = std::min(max, items_.size());
        for (size_t i = 0; i < n; ++i) {
            out.push_back(std::move(items_.front()));
            items_.pop_front();
        }
        return n;
    }

    uint64_t drops() const { return drops_.load(std::memory_order_relaxed); }
    size_t capacity() const { return capacity_; }

private:
    const size_t capacity_;
    std::mutex mutex_;
    std::deque<T> items_;
    std::atomic<uint64_t> drops_{0};
};

}  // namespace redirect::engine
