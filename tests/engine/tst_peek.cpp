// The peek of the first client bytes: TLS SNI from a real client's ClientHello
// (curl), HTTP Host, and nothing from other bytes or cut input.
#include <QProcess>
#include <QtTest>

#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include "peek.h"
#include "redirector.h"

using namespace redirect::engine;

class TestPeek : public QObject {
    Q_OBJECT

private slots:
    void sniFromCurlClientHello();
    void parse_data();
    void parse();
};

void TestPeek::sniFromCurlClientHello()
{
    uint16_t port = 0;
    int listener = listenLoopback(AF_INET, 0, false, false, &port);
    QProcess curl;
    curl.start("curl", {"-sk", "--max-time", "3", "--resolve",
                        QString("shop.example.test:%1:127.0.0.1").arg(port),
                        QString("https://shop.example.test:%1/").arg(port)});
    pollfd p{listener, POLLIN, 0};
    QCOMPARE(::poll(&p, 1, 5000), 1);
    int c = ::accept(listener, nullptr, nullptr);
    std::string hello;
    char buf[4096];
    auto recordEnd = [&] { return size_t(5) + ((size_t(uint8_t(hello[3])) << 8) | uint8_t(hello[4])); };
    while (hello.size() < 5 || hello.size() < recordEnd()) {
        pollfd q{c, POLLIN, 0};
        QCOMPARE(::poll(&q, 1, 5000), 1);
        ssize_t n = ::read(c, buf, sizeof(buf));
        QVERIFY(n > 0);
        hello.append(buf, static_cast<size_t>(n));
    }
    ::close(c);
    ::close(listener);
    curl.waitForFinished(5000);
    QCOMPARE(peekHost(hello), std::string("shop.example.test"));
    // Every cut of the hello parses without reading past it; most cuts lose the name.
    for (size_t cut = 0; cut < hello.size(); ++cut) {
        std::string name = peekHost(std::string_view(hello).substr(0, cut));
        QVERIFY(name.empty() || name == "shop.example.test");
    }
}

void TestPeek::parse_data()
{
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("host");
    QTest::newRow("http host") << QByteArray("GET / HTTP/1.1\r\nHost: www.example.org\r\nAccept: */*\r\n\r\n")
                               << "www.example.org";
    QTest::newRow("host with port, lower case key")
        << QByteArray("POST /x HTTP/1.1\r\nUser-Agent: a\r\nhost:  api.test:8443 \r\n\r\n") << "api.test:8443";
    QTest::newRow("no host header") << QByteArray("GET / HTTP/1.0\r\n\r\n") << "";
    QTest::newRow("header cut by the peek") << QByteArray("GET / HTTP/1.1\r\nHost: www.exa") << "";
    QTest::newRow("not http") << QByteArray("SSH-2.0-OpenSSH_9.2\r\n") << "";
    QTest::newRow("binary") << QByteArray("\x00\x01\x02\x03", 4) << "";
    QTest::newRow("tls record, not a hello") << QByteArray("\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", 10) << "";
    QTest::newRow("injected characters") << QByteArray("GET / HTTP/1.1\r\nHost: a<b>\r\n\r\n") << "";
    QTest::newRow("empty") << QByteArray() << "";
}

void TestPeek::parse()
{
    QFETCH(QByteArray, bytes);
    QFETCH(QString, host);
    QCOMPARE(QString::fromStdString(peekHost(std::string_view(bytes.constData(), static_cast<size_t>(bytes.size())))),
             host);
}

QTEST_GUILESS_MAIN(TestPeek)
#include "tst_peek.moc"
