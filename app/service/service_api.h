// The control API as the service runs it: the flow journal and log ring it serves from, the audit
// log, the Unix socket acceptor and the gRPC server. Made before the engine starts (a socket or
// audit log that cannot be opened stops the service before it touches the callout).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "access.h"
#include "command_line.h"
#include "engine.h"

namespace grpc {
class Server;
}

namespace redirect::service {

class AuditLog;
class FlowHistory;
class FlowJournal;
class LogRing;
class NodeService;
class UnixAcceptor;

class ServiceApi {
public:
    /// Opens the audit log, binds the socket and starts collecting log lines. Throws
    /// std::runtime_error with the reason.
    explicit ServiceApi(const app::CommandLine& commandLine);
    ~ServiceApi();
    ServiceApi(const ServiceApi&) = delete;
    ServiceApi& operator=(const ServiceApi&) = delete;

    /// Starts serving `engine` and `history` (both outlive this object's stop(); history may be
    /// null, `historyState` then says why: "off" or "unavailable: reason").
    void start(engine::Engine& engine, const std::string& instance, const FlowHistory* history = nullptr,
               const std::string& historyState = "off");
    /// The engine's updates, for the clients' flow streams.
    void publish(const std::vector<engine::Flow>& flows);
    /// A change that did not come through the API (SIGHUP reload), for the audit log.
    void audit(const std::string& who, const std::string& action, const std::string& what, const std::string& outcome);
    /// Ends every stream and closes the socket; the engine may stop after this.
    void stop();
    const std::string& socketPath() const { return socketPath_; }
    /// Flow updates that left the journal before a client read them.
    uint64_t journalDrops() const;

private:
    app::CommandLine options_;
    std::string tlsCert_, tlsKey_, tlsCa_;  // PEM text, read before the engine starts
    std::string socketPath_;
    std::string groupsText_;
    AccessGroups access_;
    std::shared_ptr<void> sinkHandle_;  // the log ring's spdlog sink, removed again on stop
    std::unique_ptr<FlowJournal> journal_;
    std::unique_ptr<LogRing> log_;
    std::unique_ptr<AuditLog> audit_;
    std::unique_ptr<UnixAcceptor> acceptor_;
    std::unique_ptr<NodeService> service_;
    std::unique_ptr<grpc::Server> server_;
};

/// The flow history's database this command line asks for ("" for none): --history, or for --demo
/// with the default a file of its own in the runtime directory (the caller removes it at the end).
std::string historyPath(const app::CommandLine& commandLine);

/// The API socket this command line asks for: --api-socket, or for --demo with the default a
/// private one (/run/redirect-console/demo-PID.sock); "" for none.
std::string apiSocketPath(const app::CommandLine& commandLine);

}  // namespace redirect::service
