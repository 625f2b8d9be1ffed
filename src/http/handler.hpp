#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/api_error.hpp"
#include "core/byte_sink.hpp"

namespace sluice {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Caller;  // core/access.hpp

// A request as handlers see it: Beast-free, with the target already split and decoded.
struct HttpRequest {
  std::string method;                                   // "GET", "HEAD", ...
  std::string target;                                   // raw request target
  bool target_ok = true;                                // false: malformed (answered 400)
  std::vector<std::string> segments;                    // decoded path segments
  std::vector<std::pair<std::string, std::string>> params;  // decoded query parameters
  Headers headers;
  std::string body;
  std::string request_id;
  std::string remote;  // the client's address, "127.0.0.1:51234"
  int version = 11;    // HTTP/1.1 = 11, HTTP/1.0 = 10
  // Who sent it (set by the authentication step): null without access control (no [auth]),
  // else the token's caller or the anonymous one. See http/auth.hpp may() / require_scope().
  std::shared_ptr<const Caller> caller;

  // The value of header `name` (case-insensitive), or "" when absent.
  std::string_view header(std::string_view name) const;
  // Whether a comma-separated list header (every field named `name`) holds `token`, compared
  // case-insensitively and ignoring parameters: has_token("TE", "trailers").
  bool has_token(std::string_view name, std::string_view token) const;
};

// Whether `request` asks to become a WebSocket (RFC 6455 4.1): a GET over HTTP/1.1 whose
// Connection lists "upgrade" and whose Upgrade lists "websocket".
bool is_websocket_upgrade(const HttpRequest& request);

// A WebSocket connection accepted from an HTTP/1.1 upgrade request (HttpResponder::
// accept_websocket). Text messages only; a received message is at most 64 KiB.
// The server answers the peer's pings, pings a peer silent for 150 s and drops one silent for
// 300 s. It reads one message ahead of receive() from the start, so
// a handler that only sends still notices a peer that closes (its next send_text throws).
// Not thread-safe: used by the handler's coroutine(s) on the connection's thread. At most one
// send_text() and one receive() may be pending at a time, and they may be pending together
// (one coroutine sends while another waits in receive(): `co_await (sender() || ws->receive())`
// with awaitable operators, whose || completes with the first to *succeed*: when the peer
// closes, receive() returns nothing even if the sender threw first). It must not outlive the
// handler's call; when it is destroyed the connection closes (without a close frame unless
// close() ran).
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Sends one text message (valid UTF-8); completes when the kernel took it. Throws
  // (system_error) when the peer is gone, the connection was closed, or the write stalled
  // past the server's write_timeout (the connection is then closed).
  virtual boost::asio::awaitable<void> send_text(std::string text) = 0;
  // The next text message from the peer, or nothing once the connection ended: the peer closed
  // it (close frame or EOF), stopped answering pings, or close() ran. Control frames
  // (ping/pong/close) are handled inside. Throws system_error when the peer broke the protocol
  // or sent a message over 64 KiB (the connection is closed with the matching close code) or
  // when a send_text() stalled (timeout: this side cut the connection), std::runtime_error when
  // the peer sent a binary message (closed with 1003). A cancelled receive() loses nothing: the
  // message it would have returned goes to the next call.
  virtual boost::asio::awaitable<std::optional<std::string>> receive() = 0;
  // Sends a close frame (1000 normal closure, with `reason`, cut to 123 bytes) and waits
  // briefly (at most 5 s) for the peer's; then the TCP connection is closed. Does nothing when
  // the connection already ended; never throws for a peer that left.
  virtual boost::asio::awaitable<void> close(std::string reason = {}) = 0;
};

// How a handler answers. Either send() once, or start_stream() once and then write the body
// through the returned sink. Every response carries X-Request-Id. The framing fields
// (Content-Length, Transfer-Encoding, Connection) are the responder's: a handler's are ignored.
// Not thread-safe: used by the one coroutine that handles the request.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  virtual boost::asio::awaitable<void> send(int status, Headers headers, std::string body) = 0;
  // Sends the status and headers of a chunked response; the sink writes its chunks and
  // finish() writes the last chunk. After a failure the caller must call abort().
  virtual boost::asio::awaitable<ByteSink*> start_stream(int status, Headers headers) = 0;
  // Sends the status and headers of a response whose body is exactly `content_length` bytes,
  // written through the returned sink (no chunked encoding: for Range/Content-Length
  // downloads). finish() throws if fewer bytes were written; so does a write past the length.
  // For HEAD requests the sink discards the body.
  virtual boost::asio::awaitable<ByteSink*> start_body(int status, Headers headers,
                                                      std::uint64_t content_length) = 0;
  // Ends a started stream without its last chunk and closes the connection, so the client
  // sees a truncated transfer rather than a short file that looks whole (an HTTP/1.0 body,
  // which ends at the close, is reset instead). `reason`, in plain words, goes to the access
  // log; what the responder saw itself (the client left, a write timed out, shutdown) wins.
  virtual void abort(std::string_view reason = {}) noexcept = 0;
  virtual bool started() const = 0;
  // What went out so far, for the access log: the status (0 before any), the body bytes the
  // socket took, and why the transfer was cut ("" when it was not).
  virtual int status() const { return 0; }
  virtual std::uint64_t body_bytes() const { return 0; }
  virtual std::string_view abort_reason() const { return {}; }
  // Whether a stream may end with trailer fields: an HTTP/1.1 chunked response to a request
  // whose TE header lists "trailers" (RFC 9110 6.5.1, 10.1.4).
  virtual bool trailers_accepted() const { return false; }
  // Fields that the stream's finish() sends after the last chunk; name them in a `Trailer`
  // header of start_stream(). Ignored unless trailers_accepted().
  virtual void set_trailers(const Headers& /*trailers*/) {}

  // Whether the client closed its side while the response was being produced. Noticed even
  // while no byte is written (a query that has not found its first row yet): the session then
  // cancels the handler's coroutine, so whatever it awaits fails with operation_aborted and its
  // destructors stop the database work.
  virtual bool client_gone() const = 0;

  // Completes the WebSocket handshake (101 Switching Protocols) and hands the connection over:
  // afterwards the responder sends nothing else, and the connection ends when the handler
  // returns (call close() first). The access log shows 101, the bytes of the text messages
  // sent and the whole connection's duration. The connection counts as answering a request
  // (never shed at max_connections); at shutdown the handler runs until the grace period ends,
  // then it is cancelled like a download (its awaits fail with operation_aborted, the socket
  // closes without a close frame, the log says "shutdown").
  // REQUIRES: is_websocket_upgrade(request) and nothing sent yet (else std::logic_error).
  // Throws ApiError 400 for a bad Sec-WebSocket-Key (or data sent before the handshake
  // finished) and 426 for a Sec-WebSocket-Version other than 13, before anything is sent.
  // The default implementation throws std::logic_error (a responder without a connection).
  virtual boost::asio::awaitable<std::unique_ptr<WebSocket>> accept_websocket(
      const HttpRequest& request);

  // A JSON error body as in DESIGN.md.
  boost::asio::awaitable<void> send_error(int status, std::string_view code,
                                          std::string_view message, std::string_view request_id,
                                          Headers extra = {});
};

using Handler = std::function<boost::asio::awaitable<void>(const HttpRequest&, HttpResponder&)>;

// A failure in plain words for HttpResponder::abort(): a system error's message without Boost's
// source location ("Connection reset by peer"), "cancelled" for a cancelled coroutine, else
// what().
std::string describe_failure(const std::exception& error);

// {"error": {"code": ..., "message": ..., "request_id": ...}}
std::string json_error_body(std::string_view code, std::string_view message,
                            std::string_view request_id, const ErrorFields& fields = {});

}  // namespace sluice
