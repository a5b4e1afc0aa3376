// Pieces shared by the engine's source files (engine.cpp, engine_apply.cpp, engine_verify.cpp).
#pragma once

#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include <sched.h>

#include "engine.h"

namespace redirect::engine {

struct Engine::Running {
    RedirectorSpec spec;
    RedirectorStatus status;
    std::shared_ptr<RedirectorRuntime> runtime;  // null for external redirectors
    // External only: listener sockets (inodes) we marked for the callout, and the ones we refused
    // with the reason, so an endpoint is looked at in /proc only when its listeners change.
    std::set<unsigned long> marked;
    std::map<unsigned long, std::string> refused;
};

inline int64_t clockNs(clockid_t id)
{
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/// Run fn on a short-lived thread inside the network namespace (sockets and sock_diag follow it);
/// on this thread when netnsFd < 0. Exceptions reach the caller.
template <typename Fn>
void inNetns(int netnsFd, Fn&& fn)
{
    if (netnsFd < 0) {
        fn();
        return;
    }
    std::exception_ptr error;
    std::thread t([&] {
        try {
            if (::setns(netnsFd, CLONE_NEWNET) != 0)
                throw std::runtime_error(std::string("enter network namespace: ") + std::strerror(errno));
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    t.join();
    if (error)
        std::rethrow_exception(error);
}

}  // namespace redirect::engine
