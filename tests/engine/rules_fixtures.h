// Shared by the rules tests (tst_rules, tst_rules_compile): the DESIGN.md example and small
// rule files built around one rule or one redirector.
#pragma once

#include <cstdint>
#include <string_view>

#include <QByteArray>
#include <QtGlobal>

#include "rules.h"

namespace rules_test {

inline constexpr int64_t kSecond = 1000000000;

// DESIGN.md section 6, verbatim.
inline constexpr const char* kDesignExample = R"({
  "version": 1,
  "redirectors": [
    { "id": "inspector", "name": "Web inspector" },
    { "id": "dlp", "name": "DLP agent", "listen": ["127.0.0.1:15002", "[::1]:15002"] },
    { "id": "vendor-x", "name": "Vendor X proxy", "external": true, "listen": ["127.0.0.1:18080"] }
  ],
  "rules": [
    { "id": "no-ssh", "action": "bypass", "protocol": "tcp", "ports": "22" },
    { "id": "web", "enabled": true, "action": "redirect", "redirector": "inspector",
      "protocol": "tcp", "destination": ["0.0.0.0/0", "::/0"], "ports": "80,443,8000-8999" },
    { "id": "curl-dlp", "action": "redirect", "redirector": "dlp", "process": "curl",
      "expires": "2026-12-31T00:00:00Z" }
  ]
}
)";

// A file with one redirector "a" and one rule whose members are `body`; the body starts at 3:13.
inline QByteArray inRule(const char* body)
{
    return QByteArray("{\"version\": 1,\n \"redirectors\": [{\"id\": \"a\"}],\n \"rules\": [{") + body + "}]}";
}

// A file with one redirector whose members are `body`; the body starts at 2:19.
inline QByteArray inRedirector(const char* body)
{
    return QByteArray("{\"version\": 1,\n \"redirectors\": [{") + body + "}]}";
}

inline redirect::engine::RuleSet parseOk(const QByteArray& text)
{
    using namespace redirect::engine;
    RulesResult r = parseRules(std::string_view(text.constData(), size_t(text.size())));
    if (!r.ok())
        qWarning("unexpected error: %s", r.error.str().c_str());
    return r.rules;
}

}  // namespace rules_test
