// A client of one node's control API (app/api/redirect_console.proto), for the console and tests.
// No Qt: it runs its own threads, keeps the streams open and reconnects by itself; callers take
// what arrived when they like (the console's bridge, ten times a second) and never wait on the wire.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flow.h"
#include "redirect_console.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace redirect::client {

struct NodeEndpoint {
    std::string name;    ///< what the console calls this node ("local", a host name)
    std::string target;  ///< "unix:/run/redirect-console/api.sock", or "host:port" with TLS
    std::string caCert;  ///< TLS: paths of PEM files, all three or none (a Unix socket)
    std::string clientCert;
    std::string clientKey;
};

enum class NodeState { Connecting, Connected, Reconnecting, Refused };
const char* nodeStateName(NodeState state);

struct NodeView {
    NodeState state = NodeState::Connecting;
    std::string reason;           ///< why refused, or the last connection error
    bool haveStatus = false;
    v1::NodeStatus status;        ///< the last status the node sent
    double flowsPerSecond = 0;    ///< new connections classified per second, from the last two statuses
    uint64_t reconnects = 0;      ///< times the flow stream was opened again after a loss
    uint64_t epochChanges = 0;    ///< times the node was a new run (it restarted)
    uint64_t missed = 0;          ///< flow updates the node no longer held when this client asked
    uint64_t dropped = 0;         ///< updates this client dropped because nobody took them in time
    bool haveRules = false;
    v1::RuleSet rules;            ///< the node's rules and their hits, refreshed with the status
};

class NodeClient {
public:
    explicit NodeClient(NodeEndpoint endpoint, size_t bufferLimit = 200000);
    ~NodeClient();
    NodeClient(const NodeClient&) = delete;
    NodeClient& operator=(const NodeClient&) = delete;

    /// Starts the streams; a certificate file that cannot be read leaves the node Refused, saying why.
    void start();
    void stop();
    const NodeEndpoint& endpoint() const { return endpoint_; }

    /// Flow updates received since the last call, oldest first (at most `max`).
    size_t takeFlows(std::vector<engine::Flow>& out, size_t max = static_cast<size_t>(-1));
    /// Log lines received since the last call.
    std::vector<v1::LogLine> takeLog();
    NodeView view() const;

    /// Commands; they wait for the node's answer (bounded), so call them off the GUI thread.
    struct Result {
        bool ok = false;
        std::string error;  ///< the node's reason, or the transport's
        uint32_t line = 0;  ///< ApplyRules: where in the JSON text
        uint32_t column = 0;
    };
    Result setRuleEnabled(const std::string& ruleId, bool enabled);
    Result applyRules(const std::string& json);
    Result reorderRules(const std::vector<std::string>& ruleIds);
    std::optional<v1::RuleSet> rules(std::string* error);
    /// The node's dry run of `json` (PreviewRules); nullopt with the transport's reason.
    std::optional<v1::RulesPreview> previewRules(const std::string& json, uint32_t windowSeconds, uint32_t maxExamples,
                                                 std::string* error);
    /// Who else is on the node's callout hooks (GetCoexistence); nullopt with the reason.
    std::optional<v1::Coexistence> getCoexistence(std::string* error);

    /// Ended flows from the node's history, converted as the flow stream's are.
    struct History {
        bool ok = false;
        std::string error;              ///< the node's reason (no history kept, bad range), or the transport's
        std::vector<engine::Flow> flows;  ///< in the order they ended
        std::string cursor;             ///< after the last flow: pass as `after` for the next page
    };
    /// The flows whose lifetime overlaps [fromNs, toNs] (unix ns, 0: unbounded), at most `limit`
    /// (0: all), after the cursor `after` of an earlier call. Waits for the whole answer (bounded,
    /// cancelled by stop()): call it off the GUI thread.
    History queryHistory(int64_t fromNs, int64_t toNs, uint64_t limit = 0, const std::string& after = {});

private:
    void flowLoop();
    void statusLoop();
    void logLoop();
    /// Sleeps up to `ms` unless stop() comes first; false when stopping.
    bool pause(int ms);
    void setState(NodeState state, const std::string& reason);
    /// After a change of ours: the node's rules now, so that a caller never sees the old ones.
    void refreshRules();
    void setContext(grpc::ClientContext** slot, grpc::ClientContext* context);

    NodeEndpoint endpoint_;
    const size_t bufferLimit_;
    std::string setupError_;  // a certificate file that cannot be read: the node is never asked
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<v1::Node::Stub> stub_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    NodeView view_;
    std::deque<engine::Flow> flows_;
    std::vector<v1::LogLine> log_;
    grpc::ClientContext* flowContext_ = nullptr;  // the open streams, cancelled by stop()
    grpc::ClientContext* logContext_ = nullptr;
    std::vector<grpc::ClientContext*> queryContexts_;  // history queries under way
    std::vector<std::thread> threads_;
};

}  // namespace redirect::client
