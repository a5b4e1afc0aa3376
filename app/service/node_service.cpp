#include "node_service.h"

#include <set>

#include <spdlog/spdlog.h>

#include "flow_proto.h"
#include "rules.h"

namespace redirect::service {

namespace {

constexpr size_t kBatchMax = 2000;                  // flows per message: well under gRPC's 4 MiB
constexpr auto kBatchWait = std::chrono::milliseconds(100);  // a live batch at most this late

std::string onOff(bool enabled)
{
    return enabled ? "enabled" : "disabled";
}

}  // namespace

NodeService::NodeService(engine::Engine& engine, FlowJournal& journal, LogRing& log, AuditLog& audit, NodeInfo info,
                         std::function<Caller(const grpc::ServerContext&)> callerOf, const FlowHistory* history)
    : engine_(engine), journal_(journal), log_(log), audit_(audit), info_(std::move(info)), callerOf_(std::move(callerOf)),
      history_(history)
{
}

grpc::Status NodeService::check(const grpc::ServerContext& context, Right needed, Caller* out) const
{
    Caller caller = callerOf_(context);
    if (out)
        *out = caller;
    if (caller.right >= needed)
        return grpc::Status::OK;
    std::string reason = caller.reason.empty() ? "this connection's caller is unknown" : caller.reason;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, reason);
}

grpc::Status NodeService::GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest*, v1::NodeStatus* reply)
{
    Caller caller;
    if (auto s = check(*context, Right::View, &caller); !s.ok())
        return s;
    const engine::EngineStats st = engine_.stats();
    reply->set_version(info_.version);
    reply->set_hostname(info_.hostname);
    reply->set_scope(engine_.scope());
    reply->set_instance(info_.instance);
    reply->set_started_unix_ns(info_.startedNs);
    for (const engine::RedirectorStatus& r : engine_.redirectors())
        toProto(r, reply->add_redirectors());
    reply->set_classified(st.callout[CALLOUT_STAT_CLASSIFIED]);
    reply->set_redirected(st.callout[CALLOUT_STAT_REDIRECTED]);
    reply->set_hop_cap(st.callout[CALLOUT_STAT_HOP_CAP]);
    reply->set_records_missing(st.callout[CALLOUT_STAT_RECORDS_MISSING]);
    reply->set_stalled(st.callout[CALLOUT_STAT_STALLED]);
    reply->set_unverified(st.callout[CALLOUT_STAT_UNVERIFIED]);
    reply->set_callout_event_drops(st.callout[CALLOUT_STAT_EVENT_DROPS]);
    reply->set_queue_drops(st.queueDrops);
    reply->set_journal_drops(journal_.missedTotal());
    reply->set_evicted(st.evicted);
    reply->set_flows(st.flows);
    reply->set_open_flows(st.openFlows);
    reply->set_flow_sequence(journal_.newest());
    reply->set_clients(watchers_.load());
    reply->set_epoch(info_.epoch);
    reply->set_rights(rightName(caller.right));
    reply->set_history(info_.history);
    reply->set_history_drops(history_ ? history_->dropped() : 0);
    return grpc::Status::OK;
}

bool NodeService::sendSnapshot(grpc::ServerContext* context, grpc::ServerWriter<v1::FlowBatch>* writer, uint64_t* last,
                               uint64_t missed)
{
    // The sequence first, then the table: every update up to it is in the table already (the drain
    // thread appends after the engine applied it), and later ones follow as live batches.
    *last = journal_.newest();
    const std::vector<engine::Flow> flows = engine_.snapshot();
    size_t i = 0;
    do {
        v1::FlowBatch batch;
        batch.set_snapshot(true);
        batch.set_last_sequence(*last);
        batch.set_epoch(info_.epoch);
        if (i == 0)
            batch.set_missed(missed);
        for (size_t n = 0; n < kBatchMax && i < flows.size(); ++n, ++i)
            toProto(flows[i], batch.add_flows());
        if (context->IsCancelled() || !writer->Write(batch))
            return false;
    } while (i < flows.size());
    return true;
}

grpc::Status NodeService::WatchFlows(grpc::ServerContext* context, const v1::WatchFlowsRequest* request,
                                     grpc::ServerWriter<v1::FlowBatch>* writer)
{
    if (auto s = check(*context, Right::View); !s.ok())
        return s;
    struct Count {
        std::atomic<uint32_t>& n;
        explicit Count(std::atomic<uint32_t>& c) : n(c) { ++n; }
        ~Count() { --n; }
    } count(watchers_);

    uint64_t last = 0;
    const bool sameEpoch = request->epoch() == info_.epoch && request->after_sequence() > 0;
    if (request->live_only()) {
        last = journal_.newest();
    } else if (sameEpoch && request->after_sequence() <= journal_.newest() &&
               request->after_sequence() + 1 >= journal_.oldest()) {
        last = request->after_sequence();  // resume without a gap
    } else {
        last = 0;  // below: the whole table
    }
    if (request->live_only() || last > 0) {
        // An empty batch at once: the client knows it is connected, and to which run of the node.
        v1::FlowBatch hello;
        hello.set_last_sequence(last);
        hello.set_epoch(info_.epoch);
        if (!writer->Write(hello))
            return grpc::Status::OK;
    } else {
        // Fell behind the ring (say how far), or a first or other-epoch start: the whole table.
        uint64_t missed = 0;
        if (sameEpoch && request->after_sequence() + 1 < journal_.oldest())
            missed = journal_.oldest() - request->after_sequence() - 1;
        if (!sendSnapshot(context, writer, &last, missed))
            return grpc::Status::OK;
    }
    while (!context->IsCancelled() && !journal_.closed()) {
        FlowJournal::Read r = journal_.readAfter(last, kBatchMax, kBatchWait);
        if (r.missed > 0) {
            // This client is slower than the node: the table again, then on from there.
            if (!sendSnapshot(context, writer, &last, r.missed))
                break;
            continue;
        }
        if (r.flows.empty())
            continue;
        v1::FlowBatch batch;
        batch.set_last_sequence(r.last);
        batch.set_epoch(info_.epoch);
        for (const auto& f : r.flows)
            batch.add_flows()->ParseFromString(*f);
        if (!writer->Write(batch))
            break;
        last = r.last;
    }
    return grpc::Status::OK;
}

grpc::Status NodeService::GetRules(grpc::ServerContext* context, const v1::GetRulesRequest*, v1::RuleSet* reply)
{
    if (auto s = check(*context, Right::View); !s.ok())
        return s;
    const engine::RuleSet rules = engine_.rules();
    const auto hits = engine_.ruleHits();
    reply->set_json(engine::rulesToJson(rules));
    for (const engine::RuleSpec& r : rules.rules) {
        v1::RuleState* st = reply->add_rules();
        st->set_id(r.id);
        st->set_enabled(r.enabled);
        if (auto it = hits.find(r.id); it != hits.end()) {
            st->set_redirected(it->second.redirected);
            st->set_bypassed(it->second.bypassed);
        }
    }
    return grpc::Status::OK;
}

grpc::Status NodeService::ApplyRules(grpc::ServerContext* context, const v1::ApplyRulesRequest* request,
                                     v1::ApplyRulesReply* reply)
{
    Caller caller;
    if (auto s = check(*context, Right::Change, &caller); !s.ok()) {
        audit_.record(caller.who, caller.auditUid(), "apply_rules", "a rule set", "refused: " + s.error_message());
        return s;
    }
    std::lock_guard lock(changeMutex_);
    engine::RulesResult parsed = engine::parseRules(request->json());
    engine::RuleError error = parsed.ok() ? engine_.applyRules(parsed.rules) : parsed.error;
    reply->set_applied(error.message.empty());
    if (!error.message.empty()) {
        reply->mutable_error()->set_line(static_cast<uint32_t>(std::max(0, error.line)));
        reply->mutable_error()->set_column(static_cast<uint32_t>(std::max(0, error.column)));
        reply->mutable_error()->set_message(error.message);
    }
    const std::string what = std::to_string(parsed.rules.redirectors.size()) + " redirectors, " +
                             std::to_string(parsed.rules.rules.size()) + " rules";
    audit_.record(caller.who, caller.auditUid(), "apply_rules", what, error.message.empty() ? "applied" : "rejected: " + error.str());
    return grpc::Status::OK;
}

grpc::Status NodeService::SetRuleEnabled(grpc::ServerContext* context, const v1::SetRuleEnabledRequest* request,
                                         v1::ChangeReply* reply)
{
    Caller caller;
    const std::string what = "rule " + request->rule_id() + " " + onOff(request->enabled());
    if (auto s = check(*context, Right::Change, &caller); !s.ok()) {
        audit_.record(caller.who, caller.auditUid(), "set_rule_enabled", what, "refused: " + s.error_message());
        return s;
    }
    std::lock_guard lock(changeMutex_);
    std::string error;
    bool ok = engine_.setRuleEnabled(request->rule_id(), request->enabled(), &error);
    reply->set_applied(ok);
    reply->set_error(error);
    audit_.record(caller.who, caller.auditUid(), "set_rule_enabled", what, ok ? "applied" : "failed: " + error);
    return grpc::Status::OK;
}

grpc::Status NodeService::ReorderRules(grpc::ServerContext* context, const v1::ReorderRulesRequest* request,
                                       v1::ChangeReply* reply)
{
    Caller caller;
    std::string what = "order";
    for (const std::string& id : request->rule_ids())
        what += " " + id;
    if (auto s = check(*context, Right::Change, &caller); !s.ok()) {
        audit_.record(caller.who, caller.auditUid(), "reorder_rules", what, "refused: " + s.error_message());
        return s;
    }
    std::lock_guard lock(changeMutex_);
    engine::RuleSet rules = engine_.rules();
    std::string error;
    std::set<std::string> seen;
    std::vector<engine::RuleSpec> ordered;
    for (const std::string& id : request->rule_ids()) {
        auto it = std::find_if(rules.rules.begin(), rules.rules.end(), [&](const engine::RuleSpec& r) { return r.id == id; });
        if (it == rules.rules.end()) {
            error = "no rule " + id;
            break;
        }
        if (!seen.insert(id).second) {
            error = "rule " + id + " named twice";
            break;
        }
        ordered.push_back(*it);
    }
    if (error.empty() && ordered.size() != rules.rules.size())
        error = "the new order names " + std::to_string(ordered.size()) + " of " + std::to_string(rules.rules.size()) +
                " rules; name each exactly once";
    if (error.empty()) {
        rules.rules = std::move(ordered);
        error = engine_.applyRules(rules).message;
    }
    reply->set_applied(error.empty());
    reply->set_error(error);
    audit_.record(caller.who, caller.auditUid(), "reorder_rules", what, error.empty() ? "applied" : "failed: " + error);
    return grpc::Status::OK;
}

grpc::Status NodeService::WatchLog(grpc::ServerContext* context, const v1::WatchLogRequest* request,
                                   grpc::ServerWriter<v1::LogBatch>* writer)
{
    if (auto s = check(*context, Right::View); !s.ok())
        return s;
    uint64_t last = request->after_sequence();
    while (!context->IsCancelled() && !journal_.closed()) {
        v1::LogBatch batch = log_.readAfter(last, kBatchWait * 5, &last);
        if (batch.lines_size() == 0 && batch.missed() == 0)
            continue;
        if (!writer->Write(batch))
            break;
    }
    return grpc::Status::OK;
}

grpc::Status NodeService::QueryHistory(grpc::ServerContext* context, const v1::QueryHistoryRequest* request,
                                       grpc::ServerWriter<v1::FlowBatch>* writer)
{
    if (auto s = check(*context, Right::View); !s.ok())
        return s;
    if (!history_)
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            info_.history == "off" ? "this node keeps no flow history (--history off)"
                                                   : "this node keeps no flow history: " + info_.history);
    HistoryQuery query;
    query.fromNs = request->from_unix_ns();
    query.toNs = request->to_unix_ns();
    query.limit = request->limit();
    query.after = request->after_cursor();
    query.batch = request->batch_size() == 0 ? kBatchMax : std::min<size_t>(request->batch_size(), 10000);
    if (std::string bad = FlowHistory::checkQuery(query); !bad.empty())
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, bad);
    std::string error;
    const bool ok = history_->query(
        query,
        [&](std::vector<std::string>&& flows, const std::string& cursor) {
            v1::FlowBatch batch;
            batch.set_history_cursor(cursor);
            for (const std::string& f : flows)
                batch.add_flows()->ParseFromString(f);
            return !context->IsCancelled() && writer->Write(batch);
        },
        &error);
    return ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::UNAVAILABLE, error);
}

}  // namespace redirect::service
