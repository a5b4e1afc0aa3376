// NodeService::PreviewRules: the dry run of a rule change (engine/rules_preview.h) on the flows
// this node holds.
#include "flow_proto.h"
#include "node_service.h"
#include "rules_preview.h"

namespace redirect::service {

namespace {

constexpr uint32_t kDefaultWindowSeconds = 600;
constexpr uint32_t kDefaultExamples = 20;
constexpr uint32_t kMostExamples = 1000;

void setError(v1::RulesPreview* reply, const engine::RuleError& error)
{
    reply->set_ok(false);
    reply->mutable_error()->set_line(static_cast<uint32_t>(std::max(0, error.line)));
    reply->mutable_error()->set_column(static_cast<uint32_t>(std::max(0, error.column)));
    reply->mutable_error()->set_message(error.message);
}

}  // namespace

grpc::Status NodeService::PreviewRules(grpc::ServerContext* context, const v1::PreviewRulesRequest* request,
                                       v1::RulesPreview* reply)
{
    if (auto s = check(*context, Right::View); !s.ok())
        return s;
    const uint32_t window = request->window_seconds() ? request->window_seconds() : kDefaultWindowSeconds;
    const uint32_t examples =
        std::min(request->max_examples() ? request->max_examples() : kDefaultExamples, kMostExamples);
    reply->set_window_seconds(window);
    engine::RulesResult parsed = engine::parseRules(request->json());
    if (!parsed.ok()) {
        setError(reply, parsed.error);
        return grpc::Status::OK;
    }
    std::string error;
    const int64_t since = engine::wallNowNs() - int64_t(window) * 1'000'000'000;
    std::optional<engine::RulesPreview> preview = engine::previewRules(
        engine_.rules(), parsed.rules, engine_.snapshot(), since, examples, engine::ownIdentity(), &error);
    if (!preview) {
        setError(reply, {0, 0, error});
        return grpc::Status::OK;
    }
    reply->set_ok(true);
    reply->set_considered(preview->considered);
    reply->set_changed(preview->changed);
    for (const engine::RulesPreview::Example& e : preview->examples) {
        v1::RouteChange* change = reply->add_examples();
        toProto(e.flow, change->mutable_flow());
        change->set_before(e.before.text());
        change->set_after(e.after.text());
        change->set_rule_before(e.before.rule);
        change->set_rule_after(e.after.rule);
    }
    return grpc::Status::OK;
}

}  // namespace redirect::service
