// A blocking, thread-per-connection redirector for tests (see ThreadRedirector).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "redirector.h"

namespace redirect::test {

/**
 * The simplest redirector a vendor could write, for tests of the callout and the SDK without the
 * engine: accepts on 127.0.0.1 and [::1], QUERYs records and context on each accepted socket,
 * opens the outbound socket, SETs the records on it (unless config.skipSet), connects to the
 * original destination, and relays both ways with half-close. Blocking, one thread per
 * connection; the engine's relay (engine/relay.h) is the product.
 */
class ThreadRedirector {
public:
    using HopHandler = std::function<void(const engine::HopReport&)>;
    explicit ThreadRedirector(engine::RedirectorConfig config, HopHandler onHop = {});
    ~ThreadRedirector();
    ThreadRedirector(const ThreadRedirector&) = delete;
    ThreadRedirector& operator=(const ThreadRedirector&) = delete;

    uint32_t id() const { return config_.id; }
    uint16_t port4() const { return port4_; }
    uint16_t port6() const { return port6_; }
    void stop();

private:
    void acceptLoop();
    void serve(int client);

    engine::RedirectorConfig config_;
    HopHandler onHop_;
    int listen4_ = -1;
    int listen6_ = -1;
    int wake_[2] = {-1, -1};
    uint16_t port4_ = 0;
    uint16_t port6_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    std::mutex workersMutex_;
    std::vector<std::thread> workers_;
};

}  // namespace redirect::test
