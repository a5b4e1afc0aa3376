// Who may do what through the control API, and who is calling.
//
// Local clients connect to a Unix socket the service accepts on itself: it reads the caller's
// credentials from the kernel (SO_PEERCRED, SO_PEERGROUPS: the process's uid and groups when it
// connected) and only then hands the connection to gRPC (AddInsecureChannelFromFd). gRPC names such
// a connection's peer "fd:N", so each call finds its caller by that descriptor. The descriptor
// stays open until gRPC destroys the transport, which waits for the transport's calls, so a number
// cannot pass to a new connection while a call of the old one runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace grpc {
class Server;
class ServerContext;
}  // namespace grpc

namespace redirect::service {

enum class Right { None, View, Change };
const char* rightName(Right right);

struct Caller {
    Right right = Right::None;
    uid_t uid = static_cast<uid_t>(-1);
    std::string who;     ///< "uid 1000 (alice)" or "certificate CN=..,OU=.."
    std::string reason;  ///< when right < Change: what is missing and how to get it
    /// The uid for the audit log: -1 for a remote (certificate) or unknown caller.
    long auditUid() const { return uid == static_cast<uid_t>(-1) ? -1L : static_cast<long>(uid); }
};

struct AccessGroups {
    std::string view = "redirect-view";
    std::string admin = "redirect-admin";
    /// A user with Change besides root and the admin group: the user of the console that started
    /// this service (--for-console); -1 for none.
    uid_t adminUid = static_cast<uid_t>(-1);
};

/// The right of a local process with these credentials: root, the admin group and access.adminUid
/// have Change, the view group View, anyone else None (with the documented message in caller.reason).
Caller localCaller(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const AccessGroups& access);

/// The right of a remote client, from its verified TLS certificate's subject (RFC 2253, as gRPC
/// reports it): an OU equal to the admin group's name gives Change, the view group's View.
Caller certificateCaller(const std::string& subject, const AccessGroups& access);
/// The caller of a call over TLS (gRPC verified the certificate against --tls-ca already).
Caller tlsCaller(const grpc::ServerContext& context, const AccessGroups& access);

/**
 * Accepts on a Unix socket (mode 0666: every local user may ask; each call is then checked) and
 * hands each connection to `server` with its caller recorded. stop() closes the socket file.
 */
class UnixAcceptor {
public:
    /// Binds `path` (an existing socket file there is replaced; anything else there is refused)
    /// and starts accepting. Throws std::runtime_error with the reason.
    UnixAcceptor(const std::string& path, AccessGroups access);
    ~UnixAcceptor();
    UnixAcceptor(const UnixAcceptor&) = delete;
    UnixAcceptor& operator=(const UnixAcceptor&) = delete;

    /// Starts handing connections to `server` (started already).
    void serve(grpc::Server* server);
    /// The caller of a call that came through this acceptor; right None when unknown.
    Caller callerOf(const grpc::ServerContext& context) const;
    void stop();

private:
    void acceptLoop();

    std::string path_;
    AccessGroups access_;
    int listen_ = -1;
    int wake_[2] = {-1, -1};
    grpc::Server* server_ = nullptr;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    mutable std::mutex mutex_;
    std::map<int, Caller> callers_;  // by descriptor number handed to gRPC
};

}  // namespace redirect::service
