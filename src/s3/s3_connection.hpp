#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/span_body.hpp>
#include <chrono>
#include <memory>
#include <span>

#include "s3/s3_endpoint.hpp"

namespace sluice {

using S3HttpRequest = boost::beast::http::request<boost::beast::http::span_body<const char>>;
using S3HttpParser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;

// One HTTP/1.1 connection to the endpoint, plain or TLS (certificate and host name verified).
// Every step has a deadline: connect (resolve, TCP, handshake) `connect_timeout`, each read or
// write `io_timeout` without progress. Failures throw S3Error with status 0 (DnsError,
// ConnectError, TlsError, Timeout, ConnectionLost). Not thread-safe: one call at a time.
class S3Connection {
 public:
  virtual ~S3Connection() = default;

  // Resolves, connects and (https) handshakes on `executor`.
  static boost::asio::awaitable<std::unique_ptr<S3Connection>> open(
      const S3Endpoint& endpoint, boost::asio::ssl::context* tls,
      std::chrono::milliseconds connect_timeout, std::chrono::milliseconds io_timeout);

  // Sends the request, then reads the answer's head into a fresh parser (no body limit).
  virtual boost::asio::awaitable<void> send(S3HttpRequest& request, S3HttpParser& parser) = 0;
  // Reads up to into.size() bytes of the body; 0 when the body is complete.
  virtual boost::asio::awaitable<std::size_t> read_body(S3HttpParser& parser,
                                                        std::span<char> into) = 0;
  // The executor the connection's socket runs on.
  virtual boost::asio::any_io_executor executor() = 0;
  // True when it may carry another request: the last answer was read completely and kept the
  // connection alive, and no step failed.
  virtual bool reusable() const = 0;
  virtual void close() noexcept = 0;
};

}  // namespace sluice
