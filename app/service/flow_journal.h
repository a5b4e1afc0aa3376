// The service's memory of flow updates, numbered, so that clients stream them in order and a
// client that reconnects resumes where it stopped (or learns how much it missed).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flow.h"
#include "redirect_console.pb.h"

namespace redirect::service {

/**
 * A bounded ring of flow updates, each converted to its wire bytes once and shared by every
 * client that reads it. Sequence numbers start at 1 and never repeat within one epoch (one run of
 * the service). One writer (the service's drain thread), any number of readers.
 */
class FlowJournal {
public:
    /// One update as the bytes of its v1::Flow message: one allocation, where the message object
    /// with its separately allocated strings took four times the memory (a full ring of 16,384
    /// updates was 18 MB of the service's 68 MB with 10,000 open flows).
    using Update = std::shared_ptr<const std::string>;
    static v1::Flow decode(const Update& update);

    explicit FlowJournal(size_t capacity);

    /// Appends the engine's updates (oldest first), numbered, and wakes the readers.
    void append(const std::vector<engine::Flow>& flows);

    struct Read {
        std::vector<Update> flows;  ///< in sequence order
        uint64_t last = 0;          ///< sequence of the newest update read (== after when none)
        uint64_t missed = 0;        ///< updates after `after` that left the ring before this read
    };
    /// Up to `max` updates after sequence `after`; when there are none yet, waits up to `wait` for
    /// one (or for close()). A reader that fell behind the ring gets missed > 0 and the oldest held.
    Read readAfter(uint64_t after, size_t max, std::chrono::milliseconds wait) const;

    uint64_t newest() const;
    /// The oldest sequence still held (newest() + 1 when empty).
    uint64_t oldest() const;
    /// Updates that left the ring while a reader that asked later had not read them.
    uint64_t missedTotal() const;
    /// Wakes every waiting reader for good (service shutdown).
    void close();
    bool closed() const;

private:
    const size_t capacity_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::deque<Update> ring_;
    uint64_t newest_ = 0;
    mutable uint64_t missedTotal_ = 0;
    bool closed_ = false;
};

}  // namespace redirect::service
