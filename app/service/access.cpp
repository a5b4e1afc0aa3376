#include "access.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/server.h>
#include <grpcpp/server_context.h>
#include <grpcpp/server_posix.h>
#include <spdlog/spdlog.h>

namespace redirect::service {

namespace {

std::string userName(uid_t uid)
{
    passwd pw{}, *found = nullptr;
    char buf[4096];
    if (::getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
        return found->pw_name;
    return {};
}

// The gid of a group name; nothing when the group does not exist here.
bool groupId(const std::string& name, gid_t* gid)
{
    group gr{}, *found = nullptr;
    std::vector<char> buf(16384);
    if (name.empty() || ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
        return false;
    *gid = found->gr_gid;
    return true;
}

std::string addCommand(const std::string& group, const std::string& user)
{
    return "usermod -aG " + group + " " + (user.empty() ? "USER" : user) + ", then log in again";
}

}  // namespace

const char* rightName(Right right)
{
    switch (right) {
    case Right::Change: return "change";
    case Right::View: return "view";
    default: return "none";
    }
}

Caller localCaller(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const AccessGroups& access)
{
    Caller c;
    c.uid = uid;
    const std::string user = userName(uid);
    c.who = "uid " + std::to_string(uid) + (user.empty() ? "" : " (" + user + ")");
    auto member = [&](const std::string& name) {
        gid_t g = 0;
        return groupId(name, &g) && (g == gid || std::find(groups.begin(), groups.end(), g) != groups.end());
    };
    if (uid == 0 || uid == access.adminUid || member(access.admin)) {
        c.right = Right::Change;
    } else if (member(access.view)) {
        c.right = Right::View;
        c.reason = c.who + " may view this node but not change it: changes need group " + access.admin + " (" +
                   addCommand(access.admin, user) + ")";
    } else {
        c.right = Right::None;
        c.reason = c.who + " may not use this node: viewing needs group " + access.view + ", changing group " +
                   access.admin + " (" + addCommand(access.view, user) + ")";
    }
    return c;
}

Caller certificateCaller(const std::string& subject, const AccessGroups& access)
{
    Caller c;
    c.who = "certificate " + subject;
    // RFC 2253: "CN=alice,OU=redirect-admin,O=Example"; an escaped comma ("\\,") is part of a value.
    std::vector<std::string> units;
    std::string part;
    for (size_t i = 0; i <= subject.size(); ++i) {
        if (i == subject.size() || (subject[i] == ',' && (i == 0 || subject[i - 1] != '\\'))) {
            if (part.rfind("OU=", 0) == 0)
                units.push_back(part.substr(3));
            part.clear();
        } else {
            part += subject[i];
        }
    }
    auto has = [&](const std::string& unit) { return std::find(units.begin(), units.end(), unit) != units.end(); };
    if (has(access.admin)) {
        c.right = Right::Change;
    } else if (has(access.view)) {
        c.right = Right::View;
        c.reason = c.who + " may view this node but not change it: changes need a certificate with OU=" + access.admin;
    } else {
        c.reason = c.who + " may not use this node: its certificate needs OU=" + access.view + " (view) or OU=" +
                   access.admin + " (change), signed by this node's --tls-ca";
    }
    return c;
}

Caller tlsCaller(const grpc::ServerContext& context, const AccessGroups& access)
{
    auto auth = context.auth_context();
    if (!auth || !auth->IsPeerAuthenticated())
        return {Right::None, static_cast<uid_t>(-1), "unauthenticated peer", "no verified client certificate"};
    std::string subject;
    for (const auto& v : auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME))
        subject.assign(v.data(), v.size());
    return certificateCaller(subject, access);
}

UnixAcceptor::UnixAcceptor(const std::string& path, AccessGroups access) : path_(path), access_(std::move(access))
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path))
        throw std::runtime_error("API socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    // Only a socket of ours may be replaced: never a file someone put there.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::runtime_error("API socket " + path + ": something else is there; remove it first");
        int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
        ::close(probe);
        if (live)
            throw std::runtime_error("API socket " + path + ": another service answers there");
        ::unlink(path.c_str());
    }
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_ < 0)
        throw std::runtime_error(std::string("API socket: ") + std::strerror(errno));
    // Bound and listening under a temporary name, then renamed into place: a client that sees the
    // path can connect (between bind and listen it would be refused).
    const std::string temporary = path + ".new-" + std::to_string(::getpid());
    sockaddr_un tmp{};
    tmp.sun_family = AF_UNIX;
    if (temporary.size() >= sizeof(tmp.sun_path)) {
        ::close(listen_);
        throw std::runtime_error("API socket path too long: " + path);
    }
    std::memcpy(tmp.sun_path, temporary.c_str(), temporary.size());
    ::unlink(temporary.c_str());
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&tmp), sizeof(tmp)) != 0 || ::chmod(temporary.c_str(), 0666) != 0 ||
        ::listen(listen_, 64) != 0 || ::rename(temporary.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::close(listen_);
        ::unlink(temporary.c_str());
        throw std::runtime_error("API socket " + path + ": " + std::strerror(e));
    }
    if (::pipe2(wake_, O_CLOEXEC) != 0) {
        int e = errno;
        ::close(listen_);
        ::unlink(path.c_str());
        throw std::runtime_error(std::string("API socket: ") + std::strerror(e));
    }
}

UnixAcceptor::~UnixAcceptor()
{
    stop();
}

void UnixAcceptor::serve(grpc::Server* server)
{
    server_ = server;
    thread_ = std::thread([this] { acceptLoop(); });
}

void UnixAcceptor::stop()
{
    if (stopping_.exchange(true))
        return;
    if (wake_[1] >= 0) {
        char c = 0;
        [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
    }
    if (thread_.joinable())
        thread_.join();
    for (int fd : {listen_, wake_[0], wake_[1]})
        if (fd >= 0)
            ::close(fd);
    listen_ = -1;
    ::unlink(path_.c_str());
}

void UnixAcceptor::acceptLoop()
{
    while (!stopping_) {
        pollfd p[2] = {{wake_[0], POLLIN, 0}, {listen_, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            spdlog::error("API socket: poll: {}", std::strerror(errno));
            return;
        }
        if (p[0].revents)
            return;
        int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                spdlog::warn("API socket: {}; new clients wait", std::strerror(errno));
                ::poll(p, 1, 250);  // the listener stays readable: do not spin
            }
            continue;
        }
        ucred cred{};
        socklen_t len = sizeof(cred);
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
            ::close(fd);
            continue;
        }
        std::vector<gid_t> groups(64);
        len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0 && errno == ERANGE) {
            groups.resize(len / sizeof(gid_t));
            len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
            if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0)
                len = 0;
        }
        groups.resize(len / sizeof(gid_t));
        {
            std::lock_guard lock(mutex_);
            callers_[fd] = localCaller(cred.uid, cred.gid, groups, access_);
        }
        grpc::AddInsecureChannelFromFd(server_, fd);  // gRPC owns the descriptor from here
    }
}

Caller UnixAcceptor::callerOf(const grpc::ServerContext& context) const
{
    const std::string peer = context.peer();
    if (peer.rfind("fd:", 0) != 0)
        return {};
    int fd = -1;
    try {
        fd = std::stoi(peer.substr(3));
    } catch (const std::exception&) {
        return {};
    }
    std::lock_guard lock(mutex_);
    auto it = callers_.find(fd);
    return it == callers_.end() ? Caller{} : it->second;
}

}  // namespace redirect::service
