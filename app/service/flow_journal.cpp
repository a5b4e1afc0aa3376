#include "flow_journal.h"

#include "flow_proto.h"

namespace redirect::service {

FlowJournal::FlowJournal(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

v1::Flow FlowJournal::decode(const Update& update)
{
    v1::Flow flow;
    flow.ParseFromString(*update);
    return flow;
}

void FlowJournal::append(const std::vector<engine::Flow>& flows)
{
    if (flows.empty())
        return;
    // Converted outside the lock: readers are not held up by the writer's work.
    std::vector<Update> converted;
    converted.reserve(flows.size());
    v1::Flow message;
    for (const engine::Flow& f : flows) {
        message.Clear();
        toProto(f, &message);
        converted.push_back(std::make_shared<const std::string>(message.SerializeAsString()));
    }
    {
        std::lock_guard lock(mutex_);
        for (Update& u : converted) {
            ring_.push_back(std::move(u));
            ++newest_;
            if (ring_.size() > capacity_)
                ring_.pop_front();
        }
    }
    changed_.notify_all();
}

FlowJournal::Read FlowJournal::readAfter(uint64_t after, size_t max, std::chrono::milliseconds wait) const
{
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, wait, [&] { return closed_ || newest_ > after; });
    Read r;
    r.last = std::min(after, newest_);
    if (newest_ <= after)
        return r;
    const uint64_t first = newest_ - ring_.size() + 1;  // oldest held
    uint64_t from = after + 1;
    if (from < first) {
        r.missed = first - from;
        missedTotal_ += r.missed;
        from = first;
    }
    const size_t begin = static_cast<size_t>(from - first);
    const size_t count = std::min(max, ring_.size() - begin);
    r.flows.assign(ring_.begin() + static_cast<std::ptrdiff_t>(begin),
                   ring_.begin() + static_cast<std::ptrdiff_t>(begin + count));
    r.last = from + count - 1;
    return r;
}

uint64_t FlowJournal::newest() const
{
    std::lock_guard lock(mutex_);
    return newest_;
}

uint64_t FlowJournal::oldest() const
{
    std::lock_guard lock(mutex_);
    return newest_ - ring_.size() + 1;
}

uint64_t FlowJournal::missedTotal() const
{
    std::lock_guard lock(mutex_);
    return missedTotal_;
}

void FlowJournal::close()
{
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    changed_.notify_all();
}

bool FlowJournal::closed() const
{
    std::lock_guard lock(mutex_);
    return closed_;
}

}  // namespace redirect::service
