#include "http/websocket_session.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>

#include "core/api_error.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxMessage = 64 * 1024;  // read_message_max
constexpr std::chrono::seconds kCloseWait{5};   // for the peer's close frame after ours
constexpr std::size_t kMaxCloseReason = 123;    // RFC 6455 5.5: 125 bytes with the code

// Sets a flag for as long as an operation that may be pending only once at a time runs.
class Busy {
 public:
  explicit Busy(bool& flag) : flag_(flag) { flag_ = true; }
  ~Busy() { flag_ = false; }
  Busy(const Busy&) = delete;
  Busy& operator=(const Busy&) = delete;

 private:
  bool& flag_;
};

// `text` cut to at most `limit` bytes, never inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U) --end;
  return text.substr(0, end);
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// The peer broke the protocol or sent a message over the limit (Beast has failed the
// connection with the matching close code).
bool is_violation(const beast::error_code& ec) {
  return ec == websocket::condition::protocol_violation || ec == websocket::error::message_too_big;
}

bool is_peer_gone(const beast::error_code& ec) {
  return ec == websocket::error::closed || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == asio::error::not_connected;
}

// Adds the server's fields to the handshake's answer and reports its status.
struct Decorate {
  std::string request_id;
  WebSocketObserver* observer;

  void operator()(websocket::response_type& response) const {
    response.set(http::field::server, "sluice");
    response.set("X-Request-Id", request_id);
    observer->websocket_answered(static_cast<int>(response.result_int()));
  }
};

template <typename Stream>
class SessionWebSocket;

// What a completion handler holds instead of the WebSocket: a handler that runs after the
// WebSocket is gone (its operation was cancelled when the socket closed) finds `self` null.
template <typename Stream>
struct Link {
  SessionWebSocket<Stream>* self = nullptr;
};

// Beast's rules (one read, one write and one close pending at a time) are kept here: the one
// read is this object's own read-ahead, started by a plain completion handler, never by the
// handler's coroutine, so a cancelled receive() leaves the stream usable (close() still sends
// its frame) and the peer's control frames are answered even while no receive() waits.
// send_text() and receive() each refuse a second call while one is pending.
// Over a plain TCP stream or over TLS (beast::ssl_stream): both instantiated below.
template <typename Stream>
class SessionWebSocket final : public WebSocket {
 public:
  SessionWebSocket(Stream& stream, std::chrono::milliseconds write_timeout,
                   WebSocketObserver& observer)
      : stream_(stream),
        ws_(stream),
        write_timeout_(write_timeout),
        observer_(observer),
        write_timer_(beast::get_lowest_layer(stream).get_executor()),
        wake_(beast::get_lowest_layer(stream).get_executor()) {}

  SessionWebSocket(const SessionWebSocket&) = delete;
  SessionWebSocket& operator=(const SessionWebSocket&) = delete;

  ~SessionWebSocket() override {
    link_->self = nullptr;
    // Closing the socket cancels Beast's pending operations before the buffers they use go:
    // their handlers run later, find the stream gone and touch nothing.
    drop();
  }

  asio::awaitable<void> accept(const http::request<http::string_body>& request,
                               const std::string& request_id) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(Decorate{request_id, &observer_}));
    ws_.read_message_max(kMaxMessage);
    ws_.text(true);
    auto [ec] = co_await ws_.async_accept(request, kTuple);
    if (ec) {
      const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
      observer_.websocket_failed(describe(ec, is_cancelled(state)));
      throw beast::system_error(ec);
    }
    // Beast's handshake timeout also bounds a closing handshake: how long to wait for the
    // peer's close frame after ours, or for its TCP close after its close frame.
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.handshake_timeout = kCloseWait;
    ws_.set_option(timeouts);
    read_ahead();
  }

  asio::awaitable<void> send_text(std::string text) override {
    if (sending_) throw std::logic_error("WebSocket::send_text while another one is pending");
    const Busy busy(sending_);
    beast::error_code ec;
    if (closing_ || dropped_ || !ws_.is_open()) {
      ec = websocket::error::closed;  // by us, or the peer's close frame is being answered
    } else {
      // A write the peer does not take within write_timeout closes the connection (Beast's own
      // timer only watches the peer's silence, and the tcp_stream's would also cut the read).
      const std::uint64_t write = ++writes_;
      write_timer_.expires_after(write_timeout_);
      write_timer_.async_wait([link = link_, write](const beast::error_code& timer) {
        if (!timer && link->self != nullptr) link->self->write_stalled(write);
      });
      auto [written_ec, written] = co_await ws_.async_write(asio::buffer(text), kTuple);
      (void)written;
      write_timer_.cancel();
      ec = stalled_ ? beast::error::timeout : written_ec;
    }
    if (!ec) {
      observer_.websocket_sent(text.size());
      co_return;
    }
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    observer_.websocket_failed(describe(ec, is_cancelled(state)));
    throw beast::system_error(ec);
  }

  asio::awaitable<std::optional<std::string>> receive() override {
    if (receiving_) throw std::logic_error("WebSocket::receive while another one is pending");
    const Busy busy(receiving_);
    while (!message_ && !ended_) {
      if (!reading_) read_ahead();
      // Woken (the wait cancelled) by the read's completion, or by the coroutine's cancellation.
      wake_.expires_at(asio::steady_timer::time_point::max());
      auto [woken] = co_await wake_.async_wait(kTuple);
      (void)woken;
      // A message that arrived together with the cancellation stays for the next receive().
      const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
      if (is_cancelled(state)) {
        observer_.websocket_failed("cancelled");
        throw beast::system_error(asio::error::operation_aborted);
      }
    }
    if (message_) {
      std::optional<std::string> message = std::move(message_);
      message_.reset();
      if (!ended_) read_ahead();
      co_return message;
    }
    if (binary_) {
      throw std::runtime_error("the client sent a binary message; this WebSocket takes text only");
    }
    if (violation_) throw beast::system_error(violation_);
    // Not "the peer closed": this side cut the connection because a send stalled. (Beside a
    // sender that threw for it, this keeps `sender() || receive()` from returning as if the
    // peer had closed: awaitable operators' || waits for the first to succeed.)
    if (stalled_) throw beast::system_error(beast::error::timeout);
    co_return std::nullopt;
  }

  asio::awaitable<void> close(std::string reason) override {
    if (closing_ || dropped_ || !ws_.is_open()) co_return;
    closing_ = true;
    const websocket::close_reason why(websocket::close_code::normal,
                                      utf8_prefix(reason, kMaxCloseReason));
    // Beast sends the frame (after a pending send_text), takes the read over until the peer's
    // close frame arrives (the read-ahead then ends) and shuts the socket down.
    auto [ec] = co_await ws_.async_close(why, kTuple);
    // A peer that left or did not answer in time: the connection is over either way.
    (void)ec;
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (is_cancelled(state)) {
      drop();
      observer_.websocket_failed("cancelled");
      throw beast::system_error(asio::error::operation_aborted);
    }
  }

 private:
  // Whether the coroutine was cancelled. Read from this_coro::cancellation_state in the
  // coroutine itself: co_await of another awaitable throws once the coroutine is cancelled.
  static bool is_cancelled(const asio::cancellation_state& state) {
    return state.cancelled() != asio::cancellation_type::none;
  }

  // Reads the next message; its completion stores it for receive() and wakes a waiting one.
  void read_ahead() {
    reading_ = true;
    ws_.async_read(inbox_, [link = link_](const beast::error_code& ec, std::size_t) {
      if (link->self != nullptr) link->self->on_read(ec);
    });
  }

  void on_read(const beast::error_code& ec) {
    reading_ = false;
    if (!ec && ws_.got_text()) {
      message_ = beast::buffers_to_string(inbox_.data());
      inbox_.consume(inbox_.size());
    } else if (!ec) {
      inbox_.consume(inbox_.size());
      ended_ = true;
      binary_ = true;
      observer_.websocket_failed("the client sent a binary message");
      refuse_binary();
    } else {
      ended_ = true;
      if (is_violation(ec)) {
        violation_ = ec;
        observer_.websocket_failed(describe(ec, false));
      } else if (!closing_ && !dropped_) {
        // A close frame, EOF, a reset, or silence past the idle timeout.
        peer_left_ = true;
        observer_.websocket_peer_left();
      }
    }
    wake_.cancel();
  }

  // 1003 (unsupported data), without waiting for it in any coroutine.
  void refuse_binary() {
    if (closing_ || dropped_ || !ws_.is_open()) return;
    closing_ = true;
    ws_.async_close(
        websocket::close_reason(websocket::close_code::unknown_data, "text messages only"),
        [](const beast::error_code&) {});
  }

  void write_stalled(std::uint64_t write) {
    if (!sending_ || write != writes_) return;  // that write ended meanwhile
    stalled_ = true;
    drop();
  }

  // Closes the TCP connection at once: every pending operation fails.
  void drop() noexcept {
    dropped_ = true;
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  std::string describe(const beast::error_code& ec, bool cancelled) const {
    if (cancelled) return "cancelled";
    if (stalled_) {
      return "a write stalled for longer than write_timeout_ms (" +
             std::to_string(write_timeout_.count()) + " ms)";
    }
    if (ec == beast::error::timeout) return "the client stopped answering pings";
    if (closing_ || dropped_) return "the WebSocket was closed";
    if (ec == websocket::error::message_too_big) {
      return "the client sent a message over " + std::to_string(kMaxMessage) + " bytes";
    }
    if (is_violation(ec)) return "WebSocket protocol error: " + ec.message();
    if (peer_left_ || is_peer_gone(ec)) return "the client left";
    return "WebSocket failed: " + ec.message();
  }

  Stream& stream_;
  websocket::stream<Stream&> ws_;
  std::chrono::milliseconds write_timeout_;
  WebSocketObserver& observer_;
  asio::steady_timer write_timer_;
  asio::steady_timer wake_;  // a receive() waits on it; a completed read cancels it
  beast::flat_buffer inbox_;
  std::optional<std::string> message_;  // read ahead, not yet received
  beast::error_code violation_;
  std::uint64_t writes_ = 0;
  bool reading_ = false;
  bool ended_ = false;  // no message will come any more
  bool binary_ = false;
  bool peer_left_ = false;
  bool closing_ = false;  // a close frame went (or is going) out from here
  bool dropped_ = false;  // the socket was closed from here
  bool stalled_ = false;  // ... because a write stalled
  bool sending_ = false;
  bool receiving_ = false;
  std::shared_ptr<Link<Stream>> link_ = std::make_shared<Link<Stream>>(Link<Stream>{this});
};

}  // namespace

void check_websocket_handshake(const HttpRequest& request) {
  if (request.header("Sec-WebSocket-Version") != "13") {
    // RFC 6455 4.4 (the versions this server speaks) and RFC 9110 15.5.22 (Upgrade on a 426).
    throw ApiError(426, "upgrade_required", "this server speaks WebSocket version 13 only")
        .with_header("Sec-WebSocket-Version", "13")
        .with_header("Upgrade", "websocket");
  }
  const std::string_view key = request.header("Sec-WebSocket-Key");
  const bool key_ok = key.size() == 24 && key.substr(22) == "==" &&
                      std::all_of(key.begin(), key.begin() + 22, is_base64_char);
  if (!key_ok) {
    throw ApiError(400, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64");
  }
}

namespace {

template <typename Stream>
asio::awaitable<std::unique_ptr<WebSocket>> open_on(
    Stream& stream, const http::request<http::string_body>& request,
    std::string request_id, std::chrono::milliseconds write_timeout, WebSocketObserver& observer) {
  auto socket = std::make_unique<SessionWebSocket<Stream>>(stream, write_timeout, observer);
  co_await socket->accept(request, request_id);
  std::unique_ptr<WebSocket> opened = std::move(socket);
  co_return opened;
}

}  // namespace

asio::awaitable<std::unique_ptr<WebSocket>> open_websocket(
    beast::tcp_stream& stream, const http::request<http::string_body>& request,
    std::string request_id, std::chrono::milliseconds write_timeout, WebSocketObserver& observer) {
  return open_on(stream, request, std::move(request_id), write_timeout, observer);
}

asio::awaitable<std::unique_ptr<WebSocket>> open_websocket(
    beast::ssl_stream<beast::tcp_stream>& stream, const http::request<http::string_body>& request,
    std::string request_id, std::chrono::milliseconds write_timeout, WebSocketObserver& observer) {
  return open_on(stream, request, std::move(request_id), write_timeout, observer);
}

}  // namespace sluice
