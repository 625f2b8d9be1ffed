#pragma once

// Internal to src/http: the WebSocket that the session's responder hands to a handler
// (HttpResponder::accept_websocket). Only session.cpp includes this header: Beast's websocket
// stays inside src/http.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "http/handler.hpp"

namespace sluice {

// What the connection's responder learns from its WebSocket, for the access log and
// client_gone(). Called on the connection's thread.
class WebSocketObserver {
 public:
  // The status of the handshake's answer, as it is about to be written (101).
  virtual void websocket_answered(int status) = 0;
  // A text message of `bytes` bytes was taken by the socket.
  virtual void websocket_sent(std::size_t bytes) = 0;
  // Why the connection failed, in plain words ("the client left", "cancelled"...).
  virtual void websocket_failed(std::string_view reason) = 0;
  // The peer closed the connection (close frame, EOF, reset) or stopped answering pings.
  virtual void websocket_peer_left() = 0;

 protected:
  ~WebSocketObserver() = default;
};

// Throws ApiError unless the upgrade request's Sec-WebSocket-Version is 13 (else 426 with
// `Sec-WebSocket-Version: 13`) and its Sec-WebSocket-Key is 16 bytes in base64 (else 400).
void check_websocket_handshake(const HttpRequest& request);

// Answers `request` (an upgrade request that check_websocket_handshake() accepted) with 101
// over `stream` and returns the open WebSocket, which already reads ahead. The stream's own
// timeouts must be off (expires_never): the WebSocket has its own (idle pings; `write_timeout`
// per send). Nothing else may read from or write to `stream` from then on; destroying the
// WebSocket closes the socket. Throws system_error when the handshake cannot be written.
boost::asio::awaitable<std::unique_ptr<WebSocket>> open_websocket(
    boost::beast::tcp_stream& stream,
    const boost::beast::http::request<boost::beast::http::string_body>& request,
    std::string request_id, std::chrono::milliseconds write_timeout, WebSocketObserver& observer);
// The same over TLS ([server.tls]).
boost::asio::awaitable<std::unique_ptr<WebSocket>> open_websocket(
    boost::beast::ssl_stream<boost::beast::tcp_stream>& stream,
    const boost::beast::http::request<boost::beast::http::string_body>& request,
    std::string request_id, std::chrono::milliseconds write_timeout, WebSocketObserver& observer);

}  // namespace sluice
