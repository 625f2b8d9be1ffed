#pragma once

// Internal to src/http: the server's TLS context ([server.tls]). Only server.cpp and
// tls_context.cpp see Asio's SSL headers.

#include <memory>

#include "core/config.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace sluice {

// A server context for `config`'s certificate (with its chain) and key: TLS 1.2 and 1.3 only,
// no compression, no renegotiation, the server's cipher order (Mozilla "intermediate" for
// TLS 1.2), ALPN http/1.1. Throws std::runtime_error naming the key (server.tls.certificate or
// server.tls.key) and the file when a file cannot be used.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const TlsConfig& config);

}  // namespace sluice
