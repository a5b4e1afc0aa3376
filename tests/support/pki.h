// A test's own certificate authority, made with the openssl command line as the README tells an
// administrator: a CA, and certificates it signs, under a directory of the test's.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <QTemporaryDir>

#include "kernel_test.h"

namespace redirect::test {

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

}  // namespace redirect::test
