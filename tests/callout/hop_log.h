// Thread-safe collection of the hop reports of in-process redirectors.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "thread_redirector.h"

namespace redirect::test {

class HopLog {
public:
    ThreadRedirector::HopHandler handler()
    {
        return [this](const engine::HopReport& hop) {
            std::lock_guard lock(mutex_);
            hops_.push_back(hop);
            cv_.notify_all();
        };
    }
    /// Wait (bounded) until at least n hops were reported; returns them.
    std::vector<engine::HopReport> waitFor(size_t n, int timeoutMs = 5000)
    {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, std::chrono::milliseconds(timeoutMs), [&] { return hops_.size() >= n; });
        return hops_;
    }
    std::vector<engine::HopReport> hops()
    {
        std::lock_guard lock(mutex_);
        return hops_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<engine::HopReport> hops_;
};

}  // namespace redirect::test
