// Shared by the SDK tests (tst_sio, tst_sio_errors): owned descriptors, one redirect_ioctl() call
// as a comparable result, records blobs as sio.h documents them, and a loaded callout that
// redirects this process's connections to its own listeners.
#pragma once

#include <cerrno>
#include <cstring>
#include <utility>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel_test.h"
#include "redirect/sio.h"

namespace sio_test {

using namespace redirect;
using namespace redirect::test;

inline constexpr uint32_t kRedirectorId = 501;
inline constexpr uint32_t kOtherId = 4242;  // a redirector of another product, earlier in the chain
inline constexpr uint64_t kFlowId = 0x1122334455667788ull;
inline constexpr size_t kUnset = 0xDEADBEEF;  // proves *bytes_returned was written
inline constexpr size_t kRecords1 = REDIRECT_RECORDS_SIZE(1);
inline constexpr size_t kContext = REDIRECT_CONTEXT_HEADER_SIZE;
inline constexpr uint32_t kQueryRecords = SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS;
inline constexpr uint32_t kQueryContext = SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT;
inline constexpr uint32_t kSet = SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS;

// Owned descriptor; negative values (the sandbox helpers' -errno) are "none".
struct Fd {
    int fd;
    explicit Fd(int f = -1) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    Fd& operator=(Fd&& o) noexcept
    {
        reset();
        fd = std::exchange(o.fd, -1);
        return *this;
    }
    ~Fd() { reset(); }
    int get() const { return fd; }
    bool valid() const { return fd >= 0; }
    void reset()
    {
        if (fd >= 0)
            ::close(std::exchange(fd, -1));
    }
};

inline Fd tcpSocket(int family = AF_INET) { return Fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

// Outcome of one redirect_ioctl(): compared as a whole so a failure prints all three.
struct Result {
    int rc;
    int error;  // errno when rc == -1, else 0
    size_t bytes;
    bool operator==(const Result&) const = default;
};

inline char* toString(const Result& r)
{
    return QTest::toString(QString("rc=%1 errno=%2(%3) bytes=%4")
                               .arg(r.rc)
                               .arg(r.error ? strerrorname_np(r.error) : "0")
                               .arg(r.error)
                               .arg(r.bytes == kUnset ? QString("unset") : QString::number(r.bytes)));
}

inline Result sio(int fd, uint32_t code, const void* in, size_t inSize, void* out, size_t outSize)
{
    size_t bytes = kUnset;
    errno = 0;
    int rc = redirect_ioctl(fd, code, in, inSize, out, outSize, &bytes, nullptr, nullptr);
    return {rc, rc == 0 ? 0 : errno, bytes};
}

inline Result sioSet(int fd, const QByteArray& blob)
{
    return sio(fd, kSet, blob.constData(), size_t(blob.size()), nullptr, 0);
}

inline void put(QByteArray& blob, qsizetype offset, const auto& value)
{
    std::memcpy(blob.data() + offset, &value, sizeof(value));
}

// A records blob as sio.h documents it; the last hop is the redirector that took the flow.
inline QByteArray recordsBlob(uint64_t flowId, const QList<uint32_t>& ids)
{
    QByteArray blob(qsizetype(REDIRECT_RECORDS_SIZE(ids.size())), '\0');
    put(blob, 0, uint32_t(REDIRECT_RECORDS_MAGIC));
    put(blob, 4, uint16_t(REDIRECT_RECORDS_VERSION));
    put(blob, 6, uint16_t(ids.size()));
    put(blob, 8, flowId);
    for (qsizetype i = 0; i < ids.size(); ++i) {
        put(blob, 16 + 8 * i, ids[i]);
        blob[16 + 8 * i + 4] = char(i == 0 ? REDIRECT_STATE_NOT_REDIRECTED : REDIRECT_STATE_REDIRECTED_BY_OTHER);
    }
    return blob;
}

inline uint64_t socketCookie(int fd)
{
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    return ::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 ? cookie : 0;
}

inline int connectTo(int fd, int family, uint16_t port)
{
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(family, port, &len);
    return ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
}

// Bounded: a connection that was not redirected never reaches the proxy listener.
inline Fd acceptWithin(int listener, int timeoutMs = 3000)
{
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) != 1)
        return Fd();
    return Fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

// A loaded callout redirecting TCP to 127.0.0.1:destPort(4) and [::1]:destPort(6) to
// listeners of this process, whose accepted sockets carry the callout's records.
struct Redirection {
    LoadedCallout callout;
    uint16_t proxyPort4 = 0, proxyPort6 = 0, destPort4 = 0, destPort6 = 0;
    Fd proxy4{listenLoopback(AF_INET, &proxyPort4)};
    Fd proxy6{listenLoopback(AF_INET6, &proxyPort6)};
    Fd dest4{listenLoopback(AF_INET, &destPort4)};
    Fd dest6{listenLoopback(AF_INET6, &destPort6)};

    Redirection()
    {
        // Owner pid 0: the clients are this process, which must not get its records "repaired".
        callout->setRedirector(0, makeRedirector(kRedirectorId, proxyPort4, proxyPort6, 0, sandbox().netnsCookie()));
        callout_rule rules[] = {makeRedirectRule(1, 0, destPort4, destPort4), makeRedirectRule(2, 0, destPort6, destPort6)};
        callout->setRules(rules);
    }
    bool ok() const { return proxy4.valid() && proxy6.valid() && dest4.valid() && dest6.valid(); }
    uint16_t destPort(int family) const { return family == AF_INET ? destPort4 : destPort6; }
    int proxy(int family) const { return family == AF_INET ? proxy4.get() : proxy6.get(); }
    int dest(int family) const { return family == AF_INET ? dest4.get() : dest6.get(); }

    /// Connect `client` to the redirected destination; the proxy's accepted socket, or invalid.
    Fd redirect(int client, int family = AF_INET)
    {
        return connectTo(client, family, destPort(family)) == 0 ? acceptWithin(proxy(family)) : Fd();
    }
    /// One redirected connection of this process: `app` its end, `accepted` the proxy's.
    bool connectApp() { return ok() && (accepted = redirect(app.get())).valid(); }
    Fd app = tcpSocket(), accepted;
};

inline Result queryRecords(int fd, redirect_records_info* info)
{
    unsigned char blob[REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS)];
    Result r = sio(fd, kQueryRecords, nullptr, 0, blob, sizeof(blob));
    if (r.rc == 0 && redirect_records_decode(blob, r.bytes, info) != 0)
        r.error = errno;  // makes the comparison fail and say why
    return r;
}

}  // namespace sio_test
