// Reading what an HTTP server on loopback serves: the metrics page and Prometheus' query API.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace redirect::test {

struct HttpReply {
    int status = 0;     ///< 0: no reply (see error)
    std::string body;   ///< chunked bodies decoded
    std::string error;  ///< why there is no reply
};

/// GET http://127.0.0.1:port<target> (HTTP/1.1, Connection: close), bounded in time.
HttpReply httpGet(uint16_t port, const std::string& target, int timeoutMs = 5000);

/// Prometheus text exposition: each sample line as series text -> value, e.g.
/// "redirect_flows_total{redirector=\"A\",verdict=\"redirect\"}" -> 20 (labels as served).
std::map<std::string, double> parseExposition(const std::string& text);

/// Percent-encoding of a query string value.
std::string urlEncoded(const std::string& text);

}  // namespace redirect::test
