#include "s3/s3_connection.hpp"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "s3/s3_client.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadBytes = 64 * 1024;  // Beast's largest read of a message

[[noreturn]] void fail_io(const beast::error_code& ec, const char* step) {
  if (ec == beast::error::timeout) {
    throw S3Error(0, "Timeout", std::string("S3 endpoint: no progress while ") + step);
  }
  throw S3Error(0, "ConnectionLost",
                std::string("S3 endpoint: connection lost while ") + step + ": " + ec.message());
}

template <typename Stream>
class Connection final : public S3Connection {
 public:
  Connection(Stream stream, std::chrono::milliseconds io_timeout)
      : stream_(std::move(stream)), io_timeout_(io_timeout) {
    // Beast reads as much as the buffer's free capacity (at least 512 bytes): body bytes are
    // copied out to the caller, so without room here every read would be 512 bytes.
    buffer_.reserve(kReadBytes);
  }

  asio::awaitable<void> send(S3HttpRequest& request, S3HttpParser& parser) override {
    reusable_ = false;
    parser.body_limit(boost::none);
    // A HEAD answer announces a body it does not carry.
    if (request.method() == http::verb::head) parser.skip(true);
    tcp().expires_after(io_timeout_);
    auto [written, unused] = co_await http::async_write(stream_, request, kTuple);
    if (written) fail_io(written, "sending a request");
    tcp().expires_after(io_timeout_);
    auto [read, bytes] = co_await http::async_read_header(stream_, buffer_, parser, kTuple);
    if (read) fail_io(read, "reading an answer");
    note_if_done(parser);
  }

  asio::awaitable<std::size_t> read_body(S3HttpParser& parser, std::span<char> into) override {
    while (!parser.is_done()) {
      parser.get().body().data = into.data();
      parser.get().body().size = into.size();
      tcp().expires_after(io_timeout_);
      auto [ec, unused] = co_await http::async_read_some(stream_, buffer_, parser, kTuple);
      if (ec && ec != http::error::need_buffer) fail_io(ec, "reading an answer's body");
      const std::size_t got = into.size() - parser.get().body().size;
      note_if_done(parser);
      if (got > 0) co_return got;  // chunk headers alone give nothing: read on
    }
    co_return 0;
  }

  asio::any_io_executor executor() override { return tcp().get_executor(); }
  bool reusable() const override { return reusable_; }
  void close() noexcept override {
    reusable_ = false;
    beast::error_code ignored;
    tcp().socket().close(ignored);
  }

 private:
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }
  void note_if_done(const S3HttpParser& parser) {
    if (parser.is_done()) reusable_ = parser.keep_alive();
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::chrono::milliseconds io_timeout_;
  bool reusable_ = false;
};

asio::awaitable<tcp::resolver::results_type> resolve(const S3Endpoint& endpoint,
                                                     std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  asio::steady_timer deadline(executor, timeout);
  bool expired = false;
  // The handler looks at nothing but `ec` when the wait was cancelled (the frame may be gone).
  deadline.async_wait([&resolver, &expired](const boost::system::error_code& ec) {
    if (ec) return;
    expired = true;
    resolver.cancel();
  });
  auto [ec, results] =
      co_await resolver.async_resolve(endpoint.connect_host, endpoint.port, kTuple);
  deadline.cancel();
  if (expired)
    throw S3Error(0, "Timeout", "S3 endpoint: resolving " + endpoint.connect_host + " timed out");
  if (ec) {
    throw S3Error(0, "DnsError",
                  "S3 endpoint: cannot resolve " + endpoint.connect_host + ": " + ec.message());
  }
  co_return results;
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

asio::awaitable<std::unique_ptr<S3Connection>> S3Connection::open(
    const S3Endpoint& endpoint, ssl::context* tls, std::chrono::milliseconds connect_timeout,
    std::chrono::milliseconds io_timeout) {
  const tcp::resolver::results_type addresses = co_await resolve(endpoint, connect_timeout);
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(connect_timeout);
  auto [connected, unused] = co_await stream.async_connect(addresses, kTuple);
  if (connected) {
    throw S3Error(0, connected == beast::error::timeout ? "Timeout" : "ConnectError",
                  "S3 endpoint: cannot connect to " + endpoint.connect_host + ":" + endpoint.port +
                      ": " + connected.message());
  }
  stream.socket().set_option(tcp::no_delay(true));
  if (!endpoint.tls || tls == nullptr) {
    co_return std::make_unique<Connection<beast::tcp_stream>>(std::move(stream), io_timeout);
  }
  beast::ssl_stream<beast::tcp_stream> secure(std::move(stream), *tls);
  // SNI names the host (not for an address); the certificate must name it too.
  if (!is_ip_address(endpoint.connect_host) &&
      SSL_set_tlsext_host_name(secure.native_handle(), endpoint.connect_host.c_str()) != 1) {
    throw S3Error(0, "TlsError", "S3 endpoint: cannot set the TLS server name");
  }
  secure.set_verify_mode(ssl::verify_peer);
  secure.set_verify_callback(ssl::host_name_verification(endpoint.connect_host));
  beast::get_lowest_layer(secure).expires_after(connect_timeout);
  auto [shook] = co_await secure.async_handshake(ssl::stream_base::client, kTuple);
  if (shook) {
    throw S3Error(
        0, shook == beast::error::timeout ? "Timeout" : "TlsError",
        "S3 endpoint: TLS handshake with " + endpoint.connect_host + " failed: " + shook.message());
  }
  co_return std::make_unique<Connection<beast::ssl_stream<beast::tcp_stream>>>(std::move(secure),
                                                                               io_timeout);
}

}  // namespace sluice
