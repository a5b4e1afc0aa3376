#include "node_client.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "flow_proto.h"

namespace redirect::client {

namespace {

constexpr int kStatusEveryMs = 1000;
constexpr int kRetryMs = 250;          // a node that went away is asked again this often
constexpr int kRefusedRetryMs = 5000;  // a node that refused us: rights change rarely
constexpr auto kCallDeadline = std::chrono::seconds(10);
constexpr auto kHistoryDeadline = std::chrono::minutes(5);  // a million flows at a slow link

// A PEM file's text; empty with the reason in *error when it cannot be read.
std::string readPem(const char* what, const std::string& path, std::string* error)
{
    std::ifstream in(path);
    std::stringstream s;
    if (in)
        s << in.rdbuf();
    if (!in || s.str().empty()) {
        if (error->empty())
            *error = std::string("cannot read the ") + what + " " + path + (in ? ": empty" : ": " + std::string(std::strerror(errno)));
        return {};
    }
    return s.str();
}

std::shared_ptr<grpc::Channel> makeChannel(const NodeEndpoint& e, std::string* error)
{
    grpc::ChannelArguments args;
    // gRPC's default backoff grows to two minutes; a console must notice a restarted node at once.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kRetryMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // Not the backoff: gRPC takes this as the time one connection attempt may take to its first
    // SETTINGS frame. At 250 ms a node still starting (or a loaded machine) never got there and the
    // console stayed "connecting" for good.
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
    args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    if (e.caCert.empty() && e.clientCert.empty() && e.clientKey.empty()) {
        credentials = grpc::InsecureChannelCredentials();
    } else {
        // A file named but unreadable: the node is never asked. (Without a client certificate the
        // node refuses at the handshake: remote nodes take mutual TLS only.)
        grpc::SslCredentialsOptions tls;
        tls.pem_root_certs = readPem("CA certificate", e.caCert, error);
        if (!e.clientCert.empty() || !e.clientKey.empty()) {
            tls.pem_cert_chain = readPem("client certificate", e.clientCert, error);
            tls.pem_private_key = readPem("client key", e.clientKey, error);
        }
        credentials = grpc::SslCredentials(tls);
    }
    return grpc::CreateCustomChannel(e.target, credentials, args);
}

// One call with the commands' deadline: the transport's or the node's refusal, or nothing.
template <typename Call>
std::optional<std::string> callFailed(Call call)
{
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    grpc::Status s = call(&context);
    return s.ok() ? std::nullopt : std::optional<std::string>(s.error_message());
}

}  // namespace

const char* nodeStateName(NodeState state)
{
    switch (state) {
    case NodeState::Connected: return "connected";
    case NodeState::Reconnecting: return "reconnecting";
    case NodeState::Refused: return "refused";
    default: return "connecting";
    }
}

NodeClient::NodeClient(NodeEndpoint endpoint, size_t bufferLimit)
    : endpoint_(std::move(endpoint)), bufferLimit_(bufferLimit), channel_(makeChannel(endpoint_, &setupError_)),
      stub_(v1::Node::NewStub(channel_))
{
}

NodeClient::~NodeClient()
{
    stop();
}

void NodeClient::start()
{
    if (!setupError_.empty()) {  // nothing to ask with: say why, and stay so
        setState(NodeState::Refused, setupError_);
        return;
    }
    threads_.emplace_back([this] { flowLoop(); });
    threads_.emplace_back([this] { statusLoop(); });
    threads_.emplace_back([this] { logLoop(); });
}

void NodeClient::stop()
{
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        for (grpc::ClientContext* c : {flowContext_, logContext_})
            if (c)
                c->TryCancel();
        for (grpc::ClientContext* c : queryContexts_)
            c->TryCancel();
    }
    wake_.notify_all();
    for (auto& t : threads_)
        t.join();
    threads_.clear();
}

bool NodeClient::pause(int ms)
{
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
    return !stopping_;
}

void NodeClient::setState(NodeState state, const std::string& reason)
{
    std::lock_guard lock(mutex_);
    view_.state = state;
    view_.reason = reason;
}

void NodeClient::setContext(grpc::ClientContext** slot, grpc::ClientContext* context)
{
    std::lock_guard lock(mutex_);
    *slot = context;
    if (context && stopping_)
        context->TryCancel();
}

void NodeClient::flowLoop()
{
    uint64_t last = 0, epoch = 0;
    bool opened = false;
    for (;;) {
        grpc::ClientContext context;
        setContext(&flowContext_, &context);
        v1::WatchFlowsRequest request;
        request.set_after_sequence(last);
        request.set_epoch(epoch);
        auto stream = stub_->WatchFlows(&context, request);
        v1::FlowBatch batch;
        bool first = true;
        while (stream->Read(&batch)) {
            if (first) {
                std::lock_guard lock(mutex_);
                view_.state = NodeState::Connected;
                view_.reason.clear();
                if (opened)
                    ++view_.reconnects;
                if (epoch != 0 && batch.epoch() != epoch)
                    ++view_.epochChanges;
                first = false;
                opened = true;
            }
            epoch = batch.epoch();
            last = batch.last_sequence();
            std::lock_guard lock(mutex_);
            view_.missed += batch.missed();
            for (const v1::Flow& f : batch.flows()) {
                if (flows_.size() >= bufferLimit_) {
                    flows_.pop_front();  // the oldest update: a newer one of the same flow may follow
                    ++view_.dropped;
                }
                flows_.push_back(service::fromProto(f));
            }
        }
        grpc::Status status = stream->Finish();
        setContext(&flowContext_, nullptr);
        {
            std::lock_guard lock(mutex_);
            if (stopping_)
                return;
        }
        if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
            setState(NodeState::Refused, status.error_message());
            if (!pause(kRefusedRetryMs))
                return;
            continue;
        }
        setState(opened ? NodeState::Reconnecting : NodeState::Connecting,
                 status.ok() ? "the node ended the stream" : status.error_message());
        if (!pause(kRetryMs))
            return;
    }
}

void NodeClient::statusLoop()
{
    uint64_t lastClassified = 0;
    auto lastAt = std::chrono::steady_clock::now();
    bool haveLast = false;
    do {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(kStatusEveryMs));
        v1::NodeStatus status;
        grpc::Status s = stub_->GetStatus(&context, v1::GetStatusRequest(), &status);
        if (!s.ok())
            continue;  // the flow stream says how the connection is; this only refreshes numbers
        grpc::ClientContext rulesContext;
        rulesContext.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(kStatusEveryMs));
        v1::RuleSet rules;
        const bool haveRules = stub_->GetRules(&rulesContext, v1::GetRulesRequest(), &rules).ok();
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(mutex_);
        if (haveLast && status.classified() >= lastClassified) {
            const double seconds = std::chrono::duration<double>(now - lastAt).count();
            view_.flowsPerSecond = seconds > 0 ? double(status.classified() - lastClassified) / seconds : 0;
        }
        lastClassified = status.classified();
        lastAt = now;
        haveLast = true;
        view_.status = std::move(status);
        view_.haveStatus = true;
        if (haveRules) {
            view_.rules = std::move(rules);
            view_.haveRules = true;
        }
    } while (pause(kStatusEveryMs));
}

void NodeClient::logLoop()
{
    uint64_t last = 0;
    for (;;) {
        grpc::ClientContext context;
        setContext(&logContext_, &context);
        v1::WatchLogRequest request;
        request.set_after_sequence(last);
        auto stream = stub_->WatchLog(&context, request);
        v1::LogBatch batch;
        while (stream->Read(&batch)) {
            std::lock_guard lock(mutex_);
            for (const v1::LogLine& line : batch.lines()) {
                last = line.sequence();
                if (log_.size() < 10000)
                    log_.push_back(line);
            }
        }
        stream->Finish();
        setContext(&logContext_, nullptr);
        if (!pause(kRetryMs))
            return;
    }
}

size_t NodeClient::takeFlows(std::vector<engine::Flow>& out, size_t max)
{
    std::lock_guard lock(mutex_);
    size_t n = 0;
    while (!flows_.empty() && n < max) {
        out.push_back(std::move(flows_.front()));
        flows_.pop_front();
        ++n;
    }
    return n;
}

std::vector<v1::LogLine> NodeClient::takeLog()
{
    std::lock_guard lock(mutex_);
    std::vector<v1::LogLine> out;
    out.swap(log_);
    return out;
}

NodeView NodeClient::view() const
{
    std::lock_guard lock(mutex_);
    return view_;
}

NodeClient::Result NodeClient::setRuleEnabled(const std::string& ruleId, bool enabled)
{
    v1::SetRuleEnabledRequest request;
    request.set_rule_id(ruleId);
    request.set_enabled(enabled);
    v1::ChangeReply reply;
    if (auto e = callFailed([&](grpc::ClientContext* c) { return stub_->SetRuleEnabled(c, request, &reply); }))
        return {false, *e};
    refreshRules();
    return {reply.applied(), reply.error()};
}

NodeClient::Result NodeClient::applyRules(const std::string& json)
{
    v1::ApplyRulesRequest request;
    request.set_json(json);
    v1::ApplyRulesReply reply;
    if (auto e = callFailed([&](grpc::ClientContext* c) { return stub_->ApplyRules(c, request, &reply); }))
        return {false, *e};
    refreshRules();
    return {reply.applied(), reply.error().message(), reply.error().line(), reply.error().column()};
}

std::optional<v1::RulesPreview> NodeClient::previewRules(const std::string& json, uint32_t windowSeconds,
                                                         uint32_t maxExamples, std::string* error)
{
    v1::PreviewRulesRequest request;
    request.set_json(json);
    request.set_window_seconds(windowSeconds);
    request.set_max_examples(maxExamples);
    v1::RulesPreview reply;
    if (auto e = callFailed([&](grpc::ClientContext* c) { return stub_->PreviewRules(c, request, &reply); })) {
        if (error)
            *error = *e;
        return std::nullopt;
    }
    return reply;
}

NodeClient::Result NodeClient::reorderRules(const std::vector<std::string>& ruleIds)
{
    v1::ReorderRulesRequest request;
    for (const std::string& id : ruleIds)
        request.add_rule_ids(id);
    v1::ChangeReply reply;
    if (auto e = callFailed([&](grpc::ClientContext* c) { return stub_->ReorderRules(c, request, &reply); }))
        return {false, *e};
    refreshRules();
    return {reply.applied(), reply.error()};
}

void NodeClient::refreshRules()
{
    std::string error;
    if (auto r = rules(&error)) {
        std::lock_guard lock(mutex_);
        view_.rules = std::move(*r);
        view_.haveRules = true;
    }
}

std::optional<v1::RuleSet> NodeClient::rules(std::string* error)
{
    v1::RuleSet reply;
    if (auto e = callFailed([&](grpc::ClientContext* c) { return stub_->GetRules(c, v1::GetRulesRequest(), &reply); })) {
        if (error)
            *error = *e;
        return std::nullopt;
    }
    return reply;
}

std::optional<v1::Coexistence> NodeClient::getCoexistence(std::string* error)
{
    v1::Coexistence reply;
    if (auto e = callFailed(
            [&](grpc::ClientContext* c) { return stub_->GetCoexistence(c, v1::GetCoexistenceRequest(), &reply); })) {
        if (error)
            *error = *e;
        return std::nullopt;
    }
    return reply;
}

NodeClient::History NodeClient::queryHistory(int64_t fromNs, int64_t toNs, uint64_t limit, const std::string& after)
{
    History h;
    v1::QueryHistoryRequest request;
    request.set_from_unix_ns(fromNs);
    request.set_to_unix_ns(toNs);
    request.set_limit(limit);
    request.set_after_cursor(after);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kHistoryDeadline);
    {
        std::lock_guard lock(mutex_);
        if (stopping_)
            return {false, "stopped", {}, {}};
        queryContexts_.push_back(&context);
    }
    auto stream = stub_->QueryHistory(&context, request);
    v1::FlowBatch batch;
    while (stream->Read(&batch)) {
        for (const v1::Flow& f : batch.flows())
            h.flows.push_back(service::fromProto(f));
        h.cursor = batch.history_cursor();
    }
    const grpc::Status status = stream->Finish();
    {
        std::lock_guard lock(mutex_);
        std::erase(queryContexts_, &context);
    }
    h.ok = status.ok();
    h.error = status.error_message();
    if (!h.ok && h.error.empty())
        h.error = "the history query failed (gRPC status " + std::to_string(int(status.error_code())) + ")";
    return h;
}

}  // namespace redirect::client
