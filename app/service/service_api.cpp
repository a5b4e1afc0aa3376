#include "service_api.h"

#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <cstring>
#include <stdexcept>
#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "access.h"
#include "audit_log.h"
#include "callout_paths.h"
#include "flow_journal.h"
#include "log_ring.h"
#include "node_service.h"
#include "redirector.h"

namespace redirect::service {

namespace {

constexpr size_t kJournalUpdates = 16384;  // about 4 s of updates at 2,000 new flows/s
constexpr size_t kLogLines = 2000;

std::string readPem(const char* option, const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().find("-----BEGIN ") == std::string::npos)
        throw std::runtime_error(std::string(option) + " " + path + ": " +
                                 (in ? "not a PEM file" : std::strerror(errno)));
    return text.str();
}

std::string hostName()
{
    char name[256] = {};
    ::gethostname(name, sizeof(name) - 1);
    return name;
}

// The socket's and the audit log's directory, made when missing (0755: clients must reach the
// socket in it; the files in it carry their own modes).
// The real uid of a process, from /proc (a setuid parent such as pkexec would show root as its
// effective uid; the console's user is the real one). Throws when it cannot be read.
uid_t realUidOf(pid_t pid)
{
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("Uid:", 0) == 0)
            return static_cast<uid_t>(std::stoul(line.substr(4)));
    throw std::runtime_error("cannot read the user of process " + std::to_string(pid));
}

void makeParent(const std::string& path)
{
    auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0)
        return;
    const std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw std::runtime_error("cannot make " + dir + ": " + std::strerror(errno));
}

}  // namespace

std::string historyPath(const app::CommandLine& cl)
{
    if (cl.history == "off")
        return {};
    // The demo is a sandbox that leaves nothing behind, but its console may still look back: a
    // file of its own next to its socket, in the runtime directory (tmpfs, root only).
    if (cl.demo && cl.history == app::CommandLine{}.history) {
        const std::string path = std::string(CALLOUT_RUN_DIR "/demo-") + std::to_string(::getpid()) + ".history.sqlite";
        makeParent(path);
        return path;
    }
    return cl.history;
}

std::string apiSocketPath(const app::CommandLine& cl)
{
    if (cl.apiSocket == "none")
        return {};
    if (cl.forConsole)  // its parent is the console (runService checked it)
        return std::string(CALLOUT_RUN_DIR "/demo-console-") + std::to_string(::getppid()) + ".sock";
    if (cl.demo && cl.apiSocket == app::CommandLine{}.apiSocket)
        return std::string(CALLOUT_RUN_DIR "/demo-") + std::to_string(::getpid()) + ".sock";
    return cl.apiSocket;
}

ServiceApi::ServiceApi(const app::CommandLine& cl)
    : options_(cl), socketPath_(apiSocketPath(cl)), access_{cl.viewGroup, cl.adminGroup}
{
    if (cl.forConsole)
        access_.adminUid = realUidOf(::getppid());
    if (!cl.listen.empty()) {
        tlsCert_ = readPem("--tls-cert", cl.tlsCert);
        tlsKey_ = readPem("--tls-key", cl.tlsKey);
        tlsCa_ = readPem("--tls-ca", cl.tlsCa);
    }
    journal_ = std::make_unique<FlowJournal>(kJournalUpdates);
    log_ = std::make_unique<LogRing>(kLogLines);
    audit_ = std::make_unique<AuditLog>();
    // The demo's changes are audited in its log only: it is a sandbox that leaves nothing behind.
    const std::string auditPath = cl.demo && cl.auditLog == app::CommandLine{}.auditLog ? "" : cl.auditLog;
    std::string error;
    if (!auditPath.empty())
        makeParent(auditPath);
    if (!audit_->open(auditPath, &error))
        throw std::runtime_error("cannot write the audit log: " + error);
    if (socketPath_.empty())
        return;  // no local socket (remote clients only, or no API)
    makeParent(socketPath_);
    acceptor_ = std::make_unique<UnixAcceptor>(socketPath_, access_);
    groupsText_ = "view: group " + cl.viewGroup + ", change: group " + cl.adminGroup + " or root" +
                  (cl.forConsole ? " or uid " + std::to_string(access_.adminUid) + " (the console's user)" : "");
    auto sink = log_->sink();
    spdlog::default_logger()->sinks().push_back(sink);
    sinkHandle_ = sink;
}

ServiceApi::~ServiceApi()
{
    stop();
}

void ServiceApi::start(engine::Engine& engine, const std::string& instance, const FlowHistory* history,
                       const std::string& historyState)
{
    if (!acceptor_ && options_.listen.empty())
        return;
    if (!sinkHandle_) {  // remote only: the log stream still needs the lines
        auto sink = log_->sink();
        spdlog::default_logger()->sinks().push_back(sink);
        sinkHandle_ = sink;
    }
    NodeInfo info;
    info.version = REDIRECT_VERSION;
    info.hostname = hostName();
    info.instance = instance;
    info.startedNs = engine::wallNowNs();
    info.epoch = std::random_device{}() | (uint64_t(std::random_device{}()) << 32);
    info.history = historyState;
    UnixAcceptor* acceptor = acceptor_.get();
    const AccessGroups groups = access_;
    // Calls on a descriptor handed over by the acceptor are local; any other came over TLS.
    service_ = std::make_unique<NodeService>(engine, *journal_, *log_, *audit_, info,
                                             [acceptor, groups](const grpc::ServerContext& c) {
                                                 if (acceptor && c.peer().rfind("fd:", 0) == 0)
                                                     return acceptor->callerOf(c);
                                                 return tlsCaller(c, groups);
                                             },
                                             history);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    int tlsPort = 0;
    if (!options_.listen.empty()) {
        grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
        tls.pem_root_certs = tlsCa_;
        tls.pem_key_cert_pairs.push_back({tlsKey_, tlsCert_});
        builder.AddListeningPort(options_.listen, grpc::SslServerCredentials(tls), &tlsPort);
    }
    server_ = builder.BuildAndStart();
    if (!server_ || (!options_.listen.empty() && tlsPort == 0))
        throw std::runtime_error(options_.listen.empty() ? "the API server did not start"
                                                         : "the API cannot listen on " + options_.listen);
    if (acceptor_) {
        acceptor_->serve(server_.get());
        spdlog::info("control API on {} ({})", socketPath_, groupsText_);
    }
    if (tlsPort)
        spdlog::info("control API for remote consoles on {} (mutual TLS; client certificates of {}, OU {} views, "
                     "OU {} changes)", options_.listen, options_.tlsCa, options_.viewGroup, options_.adminGroup);
}

void ServiceApi::publish(const std::vector<engine::Flow>& flows)
{
    if (server_)
        journal_->append(flows);
}

void ServiceApi::audit(const std::string& who, const std::string& action, const std::string& what,
                       const std::string& outcome)
{
    audit_->record(who, -1, action, what, outcome);
}

uint64_t ServiceApi::journalDrops() const
{
    return journal_->missedTotal();
}

void ServiceApi::stop()
{
    if (acceptor_)
        acceptor_->stop();  // no new clients
    journal_->close();      // streams end
    log_->close();
    if (server_) {
        server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
        server_->Wait();
        server_.reset();
    }
    if (sinkHandle_) {
        auto& sinks = spdlog::default_logger()->sinks();
        std::erase_if(sinks, [&](const auto& sink) { return sink.get() == sinkHandle_.get(); });
        sinkHandle_.reset();
    }
}

}  // namespace redirect::service
