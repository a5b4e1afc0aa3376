// --demo: a self-contained sandbox with live traffic, so a newcomer sees
// redirected flows at once without touching the machine's own connections.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "engine.h"
#include "rules.h"

namespace redirect::app {

/**
 * A private network namespace (loopback only) and a private child cgroup
 * that this process joins, so the callout attached there sees only the demo.
 * In the namespace: a real HTTP server (python3 http.server, dual-stack :8080),
 * a TCP echo server (:7007), a DNS responder (UDP :53), and a third-party SDK proxy (redirect-sdk-proxy,
 * :18080) declared as the external redirector "vendor-x". Two chains:
 * HTTP goes app -> inspector -> dlp -> server; echo goes app -> vendor-x ->
 * inspector -> server; DNS goes app -> inspector -> responder over UDP. The traffic generator
 * runs curl, raw TCP clients and DNS queries, with some connections to a closed port (refused)
 * and to a bypassed one.
 * Everything stops and is removed on destruction.
 */
class DemoSandbox {
public:
    DemoSandbox();
    ~DemoSandbox();
    DemoSandbox(const DemoSandbox&) = delete;
    DemoSandbox& operator=(const DemoSandbox&) = delete;

    const std::string& cgroup() const { return cgroup_; }
    int netnsFd() const { return netnsFd_; }
    const std::string& instance() const { return instance_; }
    /// The demo's rules (redirectors inspector, dlp and vendor-x, six rules, one of them for UDP).
    engine::RuleSet rules() const;

    void startTraffic(engine::Engine& engine);
    void stopTraffic();

private:
    void setUp();
    void tearDown();
    int spawn(const std::vector<std::string>& argv, int* stdoutFd);
    void echoServer();
    void dnsServer();
    void generator();

    std::string cgroup_;
    std::string originalCgroup_;
    std::string instance_;
    std::string webRoot_;
    int netnsFd_ = -1;
    int echoFd_ = -1;
    std::vector<int> children_;
    std::atomic<bool> stopping_{false};
    std::thread echo_;
    int trafficPid_ = -1;
};

}  // namespace redirect::app
