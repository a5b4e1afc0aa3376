// In-process chains: when a hop's upstream connect() is redirected to another redirector of this
// relay, the connection between the two hops is made for real (the callout classifies it,
// records and context grow, the next hop QUERYs what it always would), and the next hop then
// moves to the first hop's worker, which carries the bytes between the application and the
// last hop's upstream itself. The connection between the hops stays idle: the bytes cross
// loopback once instead of once per hop.
//
// The first hop (A) registers (flow id, its hop count) before its upstream connect() and asks
// the callout afterwards where the connect went. The next hop (B) takes the entry when it
// accepts, so exactly one of the two orders happens:
//   - A's connect went to a redirector of ours: A waits (moves no byte) until B arrives on
//     its worker and B's own upstream is connected; then A moves the bytes. A failure before
//     that ends the hops as over loopback: B resets its client, which A sees as its upstream.
//   - it did not: A removes its entry and relays as always.
#include <algorithm>

#include <unistd.h>

#include "redirect/sio.h"
#include "relay_worker.h"

namespace redirect::engine {

void ChainRegistry::add(uint64_t key, Entry entry)
{
    std::lock_guard lock(mutex_);
    entries_[key] = entry;
}

bool ChainRegistry::take(uint64_t key, Entry* entry)
{
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end())
        return false;
    *entry = it->second;
    entries_.erase(it);
    return true;
}

void ChainRegistry::remove(uint64_t key, const void* connection)
{
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end() && it->second.connection == connection)
        entries_.erase(it);
}

void ChainRegistry::setOurs(uint32_t redirectorId, bool ours)
{
    std::lock_guard lock(mutex_);
    auto it = std::find(ours_.begin(), ours_.end(), redirectorId);
    if (ours && it == ours_.end())
        ours_.push_back(redirectorId);
    else if (!ours && it != ours_.end())
        ours_.erase(it);
    count_.store(ours_.size(), std::memory_order_relaxed);
}

bool ChainRegistry::ours(uint32_t redirectorId) const
{
    std::lock_guard lock(mutex_);
    return redirectorId && std::find(ours_.begin(), ours_.end(), redirectorId) != ours_.end();
}

namespace {

uint32_t hopCountOf(const HopReport& hop)
{
    redirect_records_info info{};
    return redirect_records_decode(hop.records.data(), hop.records.size(), &info) == 0 ? info.hop_count : 0;
}

}  // namespace

// On the accepting worker: the previous hop of ours waits for this connection? Then its worker
// takes it over, and true.
bool Relay::Worker::handOver(FdHandle& client, HopReport& hop, const std::shared_ptr<RedirectorRuntime>& runtime)
{
    if (!options_.inProcessChains || !chains_.possible())
        return false;
    uint32_t hops = hopCountOf(hop);
    ChainRegistry::Entry entry;
    if (hops < 2 || !chains_.take(ChainRegistry::key(hop.flowId, hops - 1), &entry))
        return false;
    entry.worker->adopt(std::move(client), std::move(hop), runtime, entry);
    return true;
}

void Relay::Worker::adopt(FdHandle client, HopReport hop, std::shared_ptr<RedirectorRuntime> runtime,
                          const ChainRegistry::Entry& entry)
{
    {
        std::lock_guard lock(inboxMutex_);
        inbox_.push_back({std::move(client), std::move(hop), std::move(runtime), entry});
    }
    inboxPending_.store(true, std::memory_order_release);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.fd(), &one, sizeof(one));  // fails only when already signalled
}

void Relay::Worker::takeAdopted()
{
    uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(wake_.fd(), &count, sizeof(count));
    std::vector<Adopted> adopted;
    {
        std::lock_guard lock(inboxMutex_);
        adopted.swap(inbox_);
    }
    for (auto& a : adopted) {
        Connection& c = open(std::move(a.client), a.runtime, std::move(a.hop));
        // The hop that waits for it may have ended meanwhile: then this one runs on its own.
        auto* prev = static_cast<Connection*>(a.entry.connection);
        if (handlerFor(a.entry.token) == &prev->clientSide && prev->awaitingNext && !prev->next) {
            prev->next = &c;
            c.prev = prev;
        }
        connectUpstream(c);
    }
}

void Relay::Worker::registerChain(Connection& c)
{
    if (!options_.inProcessChains || !options_.redirectedTo || !chains_.possible())
        return;
    c.chainKey = ChainRegistry::key(c.hop.flowId, hopCountOf(c.hop));
    chains_.add(c.chainKey, {this, &c, c.clientSide.token});
}

// After the upstream connect(): where did the callout send it?
void Relay::Worker::checkChain(Connection& c)
{
    if (!c.chainKey)
        return;
    if (chains_.ours(options_.redirectedTo(c.upstream.fd()))) {
        c.awaitingNext = true;
        return;
    }
    chains_.remove(c.chainKey, &c);
    c.chainKey = 0;
}

Relay::Worker::Connection& Relay::Worker::headOf(Connection& c)
{
    Connection* h = &c;
    while (h->prev)
        h = h->prev;
    return *h;
}

Relay::Worker::Connection& Relay::Worker::tailOf(Connection& c)
{
    Connection* t = &c;
    while (t->next)
        t = t->next;
    return *t;
}

// The tail's upstream is connected and nothing waits further: the head moves the bytes now.
void Relay::Worker::linkUp(Connection& tail)
{
    Connection& head = headOf(tail);
    for (Connection* h = &head; h; h = h->next) {
        h->awaitingNext = false;
        h->linked = true;
    }
    // Whatever the application sent while the hops connected is read now; the upstream's
    // readiness so far was the tail's.
    head.up.srcReady = true;
    head.down.srcReady = true;
    head.down.srcHup = tail.down.srcHup;
    relay(head);
}

// A chain ends as one: every hop with the head's reason and byte counts.
void Relay::Worker::finishChain(Connection& c, EndReason reason, bool reset)
{
    Connection& head = headOf(c);
    bool carried = head.linked;
    std::vector<Connection*> hops;
    for (Connection* h = &head; h; h = h->next)
        hops.push_back(h);
    for (Connection* h : hops) {
        h->prev = h->next = nullptr;
        h->linked = false;
        if (carried) {
            h->hop.inProcess = true;
            h->up.moved = head.up.moved;
            h->down.moved = head.down.moved;
            if (h->hop.host.empty())
                h->hop.host = head.hop.host;
        }
    }
    if (!carried) {
        // Not linked yet: only this hop ends; the others see its sockets end, as over loopback.
        finish(c, reason, reset);
        return;
    }
    for (Connection* h : hops)
        finish(*h, reason, reset);
}

}  // namespace redirect::engine
