#include "http/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <stdexcept>
#include <string>

#include "core/tls_files.hpp"

namespace sluice {
namespace {

namespace ssl = boost::asio::ssl;

// Mozilla's "intermediate" configuration (TLS 1.2 suites; TLS 1.3's are OpenSSL's defaults).
constexpr const char* kCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// ALPN: http/1.1 when the client offers it; a client that offers only others (h2) goes on
// without ALPN rather than failing.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned int offered_length, void* /*arg*/) {
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, kHttp11, sizeof kHttp11, offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

[[noreturn]] void fail(std::string_view key, const std::string& problem) {
  throw std::runtime_error("server.tls." + std::string(key) + ": " + problem);
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const TlsConfig& config) {
  // The files' own problems in the config loader's words (which key, which file) first.
  if (auto problem = check_tls_files(config.certificate, config.key)) {
    fail(problem->in_key ? "key" : "certificate", problem->message);
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                       ssl::context::single_dh_use);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(native, kCiphers) != 1) {
    ERR_clear_error();
    throw std::runtime_error("server.tls: OpenSSL accepts none of the configured ciphers");
  }
  SSL_CTX_set_alpn_select_cb(native, select_alpn, nullptr);
  boost::system::error_code ec;
  context->use_certificate_chain_file(config.certificate.string(), ec);
  if (ec) fail("certificate", config.certificate.string() + ": " + ec.message());
  context->use_private_key_file(config.key.string(), ssl::context::pem, ec);
  if (ec) fail("key", config.key.string() + ": " + ec.message());
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    fail("key", "the key in " + config.key.string() + " does not belong to the certificate in " +
                    config.certificate.string());
  }
  return context;
}

}  // namespace sluice
