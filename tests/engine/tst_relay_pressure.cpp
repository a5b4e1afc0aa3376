// The splice path under the two loads the kernel fast path failed (issue 10; the DESIGN note in
// callout/fastpath.bpf.c): a server reset in the middle of a 16 MiB transfer, and a slow reader.
// Real sockets on loopback through the engine's redirectors, in the test's own cgroup and netns.
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QTest>

#include "engine_fixture.h"
#include "fd_handle.h"

using namespace redirect;
using namespace redirect::test;
using engine::FdHandle;

namespace {

constexpr size_t kChunk = 1 << 20;

// Byte i of a stream: what the reader checks, so a lost, doubled or misplaced chunk shows.
char patternAt(uint64_t offset) { return char((offset * 7 + offset / 4093) & 0xff); }

void fillPattern(std::vector<char>& buf, uint64_t offset)
{
    for (size_t i = 0; i < buf.size(); ++i)
        buf[i] = patternAt(offset + i);
}

// One connection: writes `total` pattern bytes as fast as the peer takes them, counting what
// each write() handed to the kernel; then closes, or resets after `resetAfter` bytes (0: never).
class StreamServer {
public:
    StreamServer(uint64_t total, uint64_t resetAfter) : total_(total), resetAfter_(resetAfter)
    {
        fd_ = FdHandle(listenLoopback(AF_INET, &port_));
        thread_ = std::thread([this] { serve(); });
    }
    ~StreamServer()
    {
        ::shutdown(fd_.fd(), SHUT_RDWR);  // ends a wait in accept()
        stop_ = true;
        thread_.join();
    }
    uint16_t port() const { return port_; }
    uint64_t written() const { return written_.load(); }
    bool reset() const { return reset_.load(); }

private:
    void serve()
    {
        FdHandle c(::accept4(fd_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c.valid())
            return;
        std::vector<char> buf(kChunk);
        const uint64_t end = resetAfter_ ? resetAfter_ : total_;
        while (!stop_ && written_ < end) {
            fillPattern(buf, written_);
            size_t want = size_t(std::min<uint64_t>(buf.size(), end - written_));
            ssize_t n = ::send(c.fd(), buf.data(), want, MSG_NOSIGNAL);
            if (n <= 0)
                return;
            written_ += uint64_t(n);
        }
        if (resetAfter_) {
            linger lg{1, 0};
            ::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            reset_ = true;
        }
    }

    FdHandle fd_;
    uint16_t port_ = 0;
    uint64_t total_, resetAfter_;
    std::atomic<uint64_t> written_{0};
    std::atomic<bool> reset_{false}, stop_{false};
    std::thread thread_;
};

std::string oneRedirector(uint16_t port)
{
    return R"({"version":1,"redirectors":[{"id":"a","name":"A"}],"rules":[{"id":"ra","action":"redirect",)"
           R"("redirector":"a","ports":")" +
           std::to_string(port) + R"("}]})";
}

uint64_t sysctlMax(const char* path)  // the third number of tcp_rmem / tcp_wmem
{
    uint64_t lo = 0, def = 0, max = 0;
    std::ifstream(path) >> lo >> def >> max;
    return max;
}

uint64_t rssBytes()
{
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0)
            return std::stoull(line.substr(6)) * 1024;
    return 0;
}

}  // namespace

class TestRelayPressure : public QObject {
    Q_OBJECT

private slots:
    void serverResetMidTransfer_data();
    void serverResetMidTransfer();
    void slowReaderHoldsBackTheServer();
};

void TestRelayPressure::serverResetMidTransfer_data()
{
    QTest::addColumn<bool>("chain");
    QTest::addColumn<bool>("inProcess");
    QTest::newRow("one redirector") << false << true;
    QTest::newRow("chain of two, in-process") << true << true;
    QTest::newRow("chain of two, over loopback") << true << false;
}

// The server resets after 8 of 16 MiB: the client sees the reset, not a clean end, and the flow
// ends "reset" with the bytes it carried.
void TestRelayPressure::serverResetMidTransfer()
{
    QFETCH(bool, chain);
    QFETCH(bool, inProcess);
    StreamServer server(16 << 20, 8 << 20);
    auto eng = startEngine(5000, inProcess);
    QVERIFY(eng->applyRules(rulesFor(chain ? chainRules(server.port()) : oneRedirector(server.port()))).message.empty());

    FdHandle c(connectLoopback(AF_INET, server.port()));
    QVERIFY(c.valid());
    timeval tv{30, 0};  // a relay that never ends the connection fails the test, not hangs it
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::vector<char> buf(kChunk), want(kChunk);
    uint64_t got = 0;
    bool intact = true;
    ssize_t n;
    while ((n = ::read(c.fd(), buf.data(), buf.size())) > 0) {
        want.resize(size_t(n));
        fillPattern(want, got);
        intact = intact && std::memcmp(buf.data(), want.data(), size_t(n)) == 0;
        got += uint64_t(n);
    }
    const int error = n < 0 ? errno : 0;
    QVERIFY(server.reset());
    QCOMPARE(error, ECONNRESET);  // not EOF: a reset must not pass for a complete transfer
    QVERIFY(intact);
    QVERIFY(got <= server.written());

    auto ended = waitEnded(*eng, 1);
    QCOMPARE(ended.size(), size_t(1));
    const engine::Flow& f = ended.begin()->second;
    QCOMPARE(QString(engine::endReasonName(f.reason)), QString("reset"));
    QCOMPARE(f.hops.size(), size_t(chain ? 2 : 1));  // one per redirector
    QVERIFY(f.bytesDown >= got);
    QVERIFY(f.bytesDown <= server.written());
}

// 1 GiB through one redirector to a reader at 10 MiB/s (about 100 s). Back-pressure holds the
// server back: what it has written but the reader has not read never exceeds what the sockets'
// buffers and the relay's pipe can hold, and the process (the engine runs in it) does not grow.
void TestRelayPressure::slowReaderHoldsBackTheServer()
{
    constexpr uint64_t kTotal = 1ull << 30, kRate = 10ull << 20;
    StreamServer server(kTotal, 0);
    auto eng = startEngine();
    QVERIFY(eng->applyRules(rulesFor(oneRedirector(server.port()))).message.empty());
    // Four socket buffers at the kernel's most (the server's send, the relay's two, the reader's
    // receive), the relay's pipe (1 MiB at most) and a chunk read in between.
    const uint64_t rmem = sysctlMax("/proc/sys/net/ipv4/tcp_rmem"), wmem = sysctlMax("/proc/sys/net/ipv4/tcp_wmem");
    QVERIFY(rmem && wmem);
    const uint64_t bound = 2 * rmem + 2 * wmem + 2 * kChunk;

    FdHandle c(connectLoopback(AF_INET, server.port()));
    QVERIFY(c.valid());
    timeval tv{30, 0};
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::vector<char> buf(kChunk), want(kChunk);
    uint64_t got = 0, rssAt64 = 0;
    int64_t ahead = 0;  // a write() still under way has handed part of its chunk on: got may lead
    bool intact = true;
    const auto start = std::chrono::steady_clock::now();
    for (ssize_t n; got < kTotal && (n = ::read(c.fd(), buf.data(), buf.size())) > 0;) {
        want.resize(size_t(n));
        fillPattern(want, got);
        intact = intact && std::memcmp(buf.data(), want.data(), size_t(n)) == 0;
        got += uint64_t(n);
        ahead = std::max(ahead, int64_t(server.written()) - int64_t(got));
        if (!rssAt64 && got >= (64u << 20))
            rssAt64 = rssBytes();  // every buffer in the path has grown to its size by now
        std::this_thread::sleep_until(start + std::chrono::microseconds(got * 1000000 / kRate));
    }
    const uint64_t rssEnd = rssBytes();
    QCOMPARE(got, kTotal);
    QVERIFY(intact);
    QVERIFY2(ahead <= int64_t(bound), qPrintable(QString("the server ran %1 bytes ahead of the reader; the buffers hold %2")
                                             .arg(ahead).arg(bound)));
    QVERIFY2(rssEnd <= rssAt64 + (16u << 20),
             qPrintable(QString("RSS %1 MiB after 64 MiB, %2 MiB after 1 GiB").arg(rssAt64 >> 20).arg(rssEnd >> 20)));
    qInfo("server ahead of the reader at most %llu KiB (buffers hold %llu KiB); RSS %llu -> %llu KiB",
          (unsigned long long)(uint64_t(ahead) >> 10), (unsigned long long)(bound >> 10),
          (unsigned long long)(rssAt64 >> 10), (unsigned long long)(rssEnd >> 10));

    c.close();
    auto ended = waitEnded(*eng, 1);
    QCOMPARE(ended.size(), size_t(1));
    const engine::Flow& f = ended.begin()->second;
    QCOMPARE(f.bytesDown, kTotal);
}

REDIRECT_KERNEL_TEST_MAIN(TestRelayPressure)
#include "tst_relay_pressure.moc"
