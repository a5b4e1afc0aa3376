// Remote consoles: the service's API on TCP with mutual TLS only. Certificates made here with the
// openssl command line, as the README tells an administrator: a client without a certificate is
// refused, one from another CA is refused, the right one works with the right its OU gives, and the
// audit log names its certificate's subject.
#include <fstream>

#include <QTemporaryDir>
#include <QtTest>

#include "fd_handle.h"
#include "node_client.h"
#include "pki.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;
using client::NodeClient;
using client::NodeState;

namespace {

client::NodeEndpoint remote(uint16_t port, const std::string& ca, const std::string& cert, const std::string& key)
{
    return {"remote", "127.0.0.1:" + std::to_string(port), ca, cert, key};
}

}  // namespace

class TestTls : public QObject {
    Q_OBJECT

private slots:
    void onlyTheRightCertificateGetsIn();
};

void TestTls::onlyTheRightCertificateGetsIn()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    Pki pki(dir, "node"), other(dir, "other");
    QVERIFY2(pki.ok() && other.ok(), "openssl could not make the test CAs");
    QVERIFY(pki.issue("server", "/CN=node", "127.0.0.1"));
    QVERIFY(pki.issue("admin", "/CN=alice/OU=redirect-admin"));
    QVERIFY(pki.issue("viewer", "/CN=bob/OU=redirect-view"));
    QVERIFY(other.issue("intruder", "/CN=mallory/OU=redirect-admin"));

    uint16_t port = 0;
    {
        engine::FdHandle reserved(reservePort(AF_INET, &port));  // a free port, let go just before
        QVERIFY(reserved.valid());
    }
    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port(), {"--listen", "127.0.0.1:" + std::to_string(port), "--tls-cert",
                                             pki.file("server.pem"), "--tls-key", pki.file("server.key"), "--tls-ca",
                                             pki.file("ca.pem"), "--view-group", "redirect-view", "--admin-group",
                                             "redirect-admin"});
    QVERIFY2(service.ready(), "the service's API never answered");

    // The right certificate: connected, with the right its OU gives; its change is audited by subject.
    NodeClient admin(remote(port, pki.file("ca.pem"), pki.file("admin.pem"), pki.file("admin.key")));
    admin.start();
    QTRY_VERIFY_WITH_TIMEOUT(admin.view().state == NodeState::Connected && admin.view().haveStatus, 10000);
    QCOMPARE(admin.view().status.rights(), std::string("change"));
    NodeClient::Result r = admin.setRuleEnabled("r", false);
    QVERIFY2(r.ok, r.error.c_str());
    QVERIFY(eventually(server, true));
    const std::string audit = readAll(service.path("audit.log"));
    // gRPC gives the subject in RFC 2253 order (last RDN first).
    QVERIFY2(audit.find(R"("who":"certificate OU=redirect-admin,CN=alice")") != std::string::npos, audit.c_str());
    QVERIFY2(audit.find(R"("uid":-1)") != std::string::npos, audit.c_str());

    NodeClient viewer(remote(port, pki.file("ca.pem"), pki.file("viewer.pem"), pki.file("viewer.key")));
    viewer.start();
    QTRY_VERIFY_WITH_TIMEOUT(viewer.view().haveStatus, 10000);
    QCOMPARE(viewer.view().status.rights(), std::string("view"));
    r = viewer.setRuleEnabled("r", true);
    QVERIFY(!r.ok);
    QVERIFY2(r.error.find("may view this node but not change it") != std::string::npos, r.error.c_str());

    // No client certificate, or one from another CA: the handshake fails, nothing is answered.
    NodeClient anonymous(remote(port, pki.file("ca.pem"), {}, {}));
    NodeClient intruder(remote(port, pki.file("ca.pem"), other.file("intruder.pem"), other.file("intruder.key")));
    for (NodeClient* c : {&anonymous, &intruder}) {
        std::string error;
        QVERIFY(!c->rules(&error).has_value());
        QVERIFY2(!error.empty(), "refused without a reason");
        // At the handshake, not by a call's rights check: no call of theirs reached the node.
        QVERIFY2(error.find("may not use this node") == std::string::npos, error.c_str());
        r = c->setRuleEnabled("r", true);
        QVERIFY(!r.ok);
    }
    QVERIFY(eventually(server, true));  // the rule stayed off
    admin.stop();
    viewer.stop();
}

REDIRECT_KERNEL_TEST_MAIN(TestTls)
#include "tst_tls.moc"
