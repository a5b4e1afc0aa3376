// Remote consoles: the service's API on TCP with mutual TLS only. Certificates made here with the
// openssl command line, as the README tells an administrator: a client without a certificate is
// refused, one from another CA is refused, the right one works with the right its OU gives, and the
// audit log names its certificate's subject.
#include <fstream>

#include <QTemporaryDir>
#include <QtTest>

#include "fd_handle.h"
#include "node_client.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;
using client::NodeClient;
using client::NodeState;

namespace {

// A CA, and certificates it signs, under `dir` (PEM files NAME.pem and NAME.key).
class Pki {
public:
    Pki(const QTemporaryDir& dir, const std::string& name) : dir_(dir.path().toStdString() + "/" + name + "-")
    {
        ok_ = openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                       file("ca.key"), "-out", file("ca.pem"), "-days", "1", "-subj", "/CN=" + name + " test CA"});
    }
    bool ok() const { return ok_; }
    std::string file(const std::string& name) const { return dir_ + name; }
    /// A certificate for `subject` ("/CN=alice/OU=redirect-admin"); `ip` adds it as subjectAltName.
    bool issue(const std::string& name, const std::string& subject, const std::string& ip = {})
    {
        std::ofstream(file(name + ".ext")) << (ip.empty() ? "extendedKeyUsage=clientAuth\n"
                                                          : "subjectAltName=IP:" + ip + "\nextendedKeyUsage=serverAuth\n");
        return openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                        file(name + ".key"), "-out", file(name + ".csr"), "-subj", subject}) &&
               openssl({"x509", "-req", "-in", file(name + ".csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
                        "-CAcreateserial", "-out", file(name + ".pem"), "-days", "1", "-extfile", file(name + ".ext")});
    }

private:
    static bool openssl(std::vector<std::string> args)
    {
        args.insert(args.begin(), "openssl");
        return run(args, 30000).first == 0;
    }
    std::string dir_;
    bool ok_ = false;
};

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
