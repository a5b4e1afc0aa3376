// What the first client bytes say about the destination: TLS SNI or HTTP Host.
#pragma once

#include <string>
#include <string_view>

namespace redirect::engine {

/// Server name from a TLS ClientHello (SNI) or an HTTP/1.x request (Host header);
/// "" when the bytes are neither or too short. Never reads past `bytes`.
std::string peekHost(std::string_view bytes);

}  // namespace redirect::engine
