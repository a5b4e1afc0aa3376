// The control API served by one node (see app/api/redirect_console.proto): status, the flow stream,
// rules, the log stream. Every call checks its caller's right first; every change is audited.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "access.h"
#include "audit_log.h"
#include "engine.h"
#include "flow_history.h"
#include "flow_journal.h"
#include "log_ring.h"
#include "redirect_console.grpc.pb.h"

namespace redirect::service {

struct NodeInfo {
    std::string version;
    std::string hostname;
    std::string instance;
    int64_t startedNs = 0;
    uint64_t epoch = 0;  ///< random per run
    std::string history = "off";  ///< the history's file, "off", or "unavailable: reason"
};

class NodeService final : public v1::Node::Service {
public:
    /// `callerOf` names the caller of a call (the local acceptor, or the TLS identity); `history` may
    /// be null (none kept: QueryHistory says why, from info.history).
    NodeService(engine::Engine& engine, FlowJournal& journal, LogRing& log, AuditLog& audit, NodeInfo info,
                std::function<Caller(const grpc::ServerContext&)> callerOf, const FlowHistory* history = nullptr);

    grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                           v1::NodeStatus* reply) override;
    grpc::Status WatchFlows(grpc::ServerContext* context, const v1::WatchFlowsRequest* request,
                            grpc::ServerWriter<v1::FlowBatch>* writer) override;
    grpc::Status GetRules(grpc::ServerContext* context, const v1::GetRulesRequest* request,
                          v1::RuleSet* reply) override;
    grpc::Status ApplyRules(grpc::ServerContext* context, const v1::ApplyRulesRequest* request,
                            v1::ApplyRulesReply* reply) override;
    grpc::Status PreviewRules(grpc::ServerContext* context, const v1::PreviewRulesRequest* request,
                              v1::RulesPreview* reply) override;
    grpc::Status SetRuleEnabled(grpc::ServerContext* context, const v1::SetRuleEnabledRequest* request,
                                v1::ChangeReply* reply) override;
    grpc::Status ReorderRules(grpc::ServerContext* context, const v1::ReorderRulesRequest* request,
                              v1::ChangeReply* reply) override;
    grpc::Status WatchLog(grpc::ServerContext* context, const v1::WatchLogRequest* request,
                          grpc::ServerWriter<v1::LogBatch>* writer) override;
    /// In node_coexistence.cpp.
    grpc::Status GetCoexistence(grpc::ServerContext* context, const v1::GetCoexistenceRequest* request,
                                v1::Coexistence* reply) override;
    grpc::Status QueryHistory(grpc::ServerContext* context, const v1::QueryHistoryRequest* request,
                              grpc::ServerWriter<v1::FlowBatch>* writer) override;

private:
    /// OK, or PERMISSION_DENIED with the caller's reason.
    grpc::Status check(const grpc::ServerContext& context, Right needed, Caller* caller = nullptr) const;
    bool sendSnapshot(grpc::ServerContext* context, grpc::ServerWriter<v1::FlowBatch>* writer, uint64_t* last,
                      uint64_t missed);

    engine::Engine& engine_;
    FlowJournal& journal_;
    LogRing& log_;
    AuditLog& audit_;
    NodeInfo info_;
    std::function<Caller(const grpc::ServerContext&)> callerOf_;
    const FlowHistory* history_;
    std::mutex changeMutex_;  // one change at a time: audit lines in the order changes happened
    std::atomic<uint32_t> watchers_{0};
};

}  // namespace redirect::service
