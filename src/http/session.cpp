#include "http/session.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "core/api_error.hpp"
#include "core/log.hpp"
#include "http/access_log.hpp"
#include "http/http_metrics.hpp"
#include "http/request_head.hpp"
#include "http/request_id.hpp"
#include "http/field_value.hpp"
#include "http/websocket_session.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::use_awaitable;

constexpr auto kTuple = asio::as_tuple(use_awaitable);

// async_write's default condition (transfer_all) hands the socket at most 64 KiB a call, so a
// body write of 64 KiB plus its chunk framing took two sendmsg calls (and woke the client
// twice). This one offers the whole write; the kernel takes what fits, the rest follows.
struct TransferAllAtOnce {
  std::size_t operator()(const beast::error_code& ec, std::size_t /*written*/) const {
    return ec ? 0 : std::size_t{4} << 20;
  }
};
constexpr std::string_view kCancelled = "cancelled";

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The session runs over a plain TCP stream or over TLS on one (explicit instantiations below:
// beast::tcp_stream and TlsStream). What differs: a plain stream writes small answers with one
// non-blocking sendmsg(2) and stored files with sendfile(2); TLS encrypts in user space.
template <typename Stream>
constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

// Stored files over TLS are read and written in pieces this large.
constexpr std::size_t kFileCopyChunk = 256 * 1024;
// How often a TLS connection with unread bytes is checked for the peer's FIN (see PeerWatch).
constexpr std::chrono::milliseconds kTlsRecheck{200};

// Notices a peer that closes while a response is produced: the socket turns readable and a
// peek reads end-of-file (or fails). Then it cancels the connection's coroutine (terminal, like
// the end of the shutdown grace), so whatever the handler awaits fails with operation_aborted
// and its destructors stop its work; a pipelined request (the peek finds bytes) cannot be told
// from a departure until it is read, so the watch ends there.
// Armed lazily: only once the handler has let the I/O thread run something else (a post made
// before it starts runs then). A handler that answers without waiting on anything but the
// socket (a small response) never arms it, which saves the socket's epoll_ctl(2) and a
// handler's round trip per request; one that waits would only have been watched from then on
// anyway, since the watch cannot run on this thread before the handler suspends.
// A connection upgraded to a WebSocket is watched by the WebSocket's own reads instead:
// `upgraded` (with the socket's pending wait cancelled) ends the watch.
// Over TLS a readable socket may hold a close_notify alert (TLS 1.3 encrypts it: it cannot be
// told from a pipelined request by its bytes): there, unread bytes end the watch only while the
// peer has not also sent its FIN (the socket's TCP state is not CLOSE_WAIT); the socket is
// checked again every kTlsRecheck until the response ends.
// Per connection, shared with its callbacks, which may run after the connection's frame is
// gone (they then do nothing). Only on the connection's executor.
struct PeerWatch {
  asio::cancellation_signal cancel;     // the connection coroutine's (the group's, passed on)
  asio::cancellation_signal stop_wait;  // cancels the pending wait once a response is done
  asio::ip::tcp::socket* socket = nullptr;  // null once the connection ended
  std::uint64_t request = 0;  // the request watched: callbacks of an earlier one do nothing
  bool gone = false;          // the client left during this request
  bool upgraded = false;      // this request's connection became a WebSocket
  bool tls = false;           // the connection speaks TLS
  std::unique_ptr<asio::steady_timer> recheck;  // TLS: the next look at the TCP state
};

void arm_peer_watch(const std::shared_ptr<PeerWatch>& watch, std::uint64_t request);

// The peer sent its FIN (or the connection is gone): unread bytes before it are no request that
// will be answered.
bool peer_finished(int fd) {
  tcp_info info{};
  socklen_t size = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return true;
  return info.tcpi_state == TCP_CLOSE_WAIT || info.tcpi_state == TCP_LAST_ACK ||
         info.tcpi_state == TCP_CLOSE;
}

void recheck_later(const std::shared_ptr<PeerWatch>& watch, std::uint64_t request);

void peer_readable(const std::shared_ptr<PeerWatch>& watch, std::uint64_t request,
                   const beast::error_code& ec) {
  if (watch->request != request || watch->socket == nullptr || watch->upgraded) return;
  if (ec == asio::error::operation_aborted) return;  // the response is done, or shutdown
  if (!ec) {
    char byte = 0;
    const ssize_t got = ::recv(watch->socket->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    // A pipelined request, read after this response: nothing more can be told until then.
    // Over TLS, perhaps a close_notify: gone once the FIN that follows it arrives.
    if (got > 0) {
      if (!watch->tls) return;
      if (!peer_finished(watch->socket->native_handle())) {
        recheck_later(watch, request);
        return;
      }
    }
    // A readiness report with nothing to read (an edge left over from the read that took the
    // request, delivered late under load) is not a departure.
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      arm_peer_watch(watch, request);
      return;
    }
  }
  // 0 = the peer closed; an error = reset, or the socket failed under us.
  watch->gone = true;
  watch->cancel.emit(asio::cancellation_type::terminal);
}

void arm_peer_watch(const std::shared_ptr<PeerWatch>& watch, std::uint64_t request) {
  if (watch->request != request || watch->socket == nullptr || watch->upgraded) return;
  watch->socket->async_wait(
      asio::ip::tcp::socket::wait_read,
      asio::bind_cancellation_slot(watch->stop_wait.slot(),
                                   [watch, request](const beast::error_code& ec) {
                                     peer_readable(watch, request, ec);
                                   }));
}

void recheck_later(const std::shared_ptr<PeerWatch>& watch, std::uint64_t request) {
  if (!watch->recheck) watch->recheck = std::make_unique<asio::steady_timer>(watch->socket->get_executor());
  watch->recheck->expires_after(kTlsRecheck);
  watch->recheck->async_wait(
      asio::bind_cancellation_slot(watch->stop_wait.slot(),
                                   [watch, request](const beast::error_code& ec) {
                                     if (!ec) peer_readable(watch, request, ec);
                                   }));
}

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// How a response's body is delimited.
enum class Framing { kNone, kLength, kChunked };

// The status line and header fields of a response, byte for byte as Beast's serializer wrote
// them from an http::response built with set(): Server, X-Request-Id, then the handler's
// headers (a later field of the same name replaces an earlier one, in its place), then the
// framing, which is the responder's alone (a handler's Content-Length, Transfer-Encoding or
// Connection is ignored): Connection: close when the connection ends after this response,
// Content-Length or Transfer-Encoding: chunked. Written by hand: Beast's fields (a node
// allocated per field) and its serializer's buffer views cost more than the rest of a small
// response.
std::string response_head(int status, std::string_view request_id, const Headers& headers,
                          bool keep_alive, Framing framing, std::uint64_t content_length) {
  std::string head;
  head.reserve(256);
  head += "HTTP/1.1 ";
  const int code = std::clamp(status, 0, 999);
  head += static_cast<char>('0' + code / 100);
  head += static_cast<char>('0' + code / 10 % 10);
  head += static_cast<char>('0' + code % 10);
  head += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(code));
  head.append(reason.data(), reason.size());
  head += "\r\n";
  auto field = [&head](std::string_view name, std::string_view value) {
    head += name;
    head += ": ";
    head += trim_ows(value);
    head += "\r\n";
  };
  auto replaced_after = [&headers](std::size_t index, std::string_view name) {
    for (std::size_t later = index; later < headers.size(); ++later) {
      if (same_name(headers[later].first, name)) return true;
    }
    return false;
  };
  if (!replaced_after(0, "Server")) field("Server", "sluice");
  if (!replaced_after(0, "X-Request-Id")) field("X-Request-Id", request_id);
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const auto& [name, value] = headers[i];
    if (same_name(name, "Content-Length") || same_name(name, "Transfer-Encoding") ||
        same_name(name, "Connection") || replaced_after(i + 1, name)) {
      continue;
    }
    field(name, value);
  }
  if (!keep_alive) field("Connection", "close");
  if (framing == Framing::kLength) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, content_length).ptr;
    field("Content-Length", std::string_view(digits, static_cast<std::size_t>(end - digits)));
  } else if (framing == Framing::kChunked) {
    field("Transfer-Encoding", "chunked");
  }
  head += "\r\n";
  return head;
}

// The TCP stream under a session's stream (itself when plain).
template <typename Stream>
beast::tcp_stream& tcp_of(Stream& stream) {
  return beast::get_lowest_layer(stream);
}

// The request as Beast parsed it, and the bytes read past it, for a WebSocket upgrade.
struct ParsedRequest {
  const http::request<http::string_body>* message = nullptr;
  const beast::flat_buffer* buffered = nullptr;
};

// Answers one request over the session's stream; also the chunked-body sink of a stream, and
// what a WebSocket accepted from the request reports to (for the access log).
template <typename Stream>
class SessionResponder final : public HttpResponder, public ByteSink, public WebSocketObserver {
 public:
  SessionResponder(Stream& stream, const HttpRequest& request, bool keep_alive,
                   const SessionContext& context, PeerWatch& watch, ParsedRequest parsed = {})
      : stream_(stream),
        request_(request),
        keep_alive_(keep_alive),
        head_only_(request.method == "HEAD"),
        config_(context.config),
        stopping_(context.stopping),
        watch_(watch),
        parsed_(parsed) {}

  bool client_gone() const override { return watch_.gone || peer_left_; }

  asio::awaitable<std::unique_ptr<WebSocket>> accept_websocket(
      const HttpRequest& request) override {
    if (started_) throw std::logic_error("accept_websocket after the response started");
    if (parsed_.message == nullptr || !is_websocket_upgrade(request)) {
      throw std::logic_error("accept_websocket for a request that is no WebSocket upgrade");
    }
    check_websocket_handshake(request);
    // RFC 6455 4.1: the client sends nothing more before it has the answer.
    if (parsed_.buffered != nullptr && parsed_.buffered->size() != 0) {
      throw ApiError(400, "bad_request",
                     "data followed the WebSocket upgrade request before the handshake");
    }
    // The connection belongs to the WebSocket from here on: the peer watch stops peeking (its
    // pending wait, the socket's only operation now, is cancelled), the stream's timeouts give
    // way to the WebSocket's, and the connection ends with the handler.
    watch_.upgraded = true;
    beast::error_code ignored;
    tcp_of(stream_).socket().cancel(ignored);
    tcp_of(stream_).expires_never();
    keep_alive_ = false;
    started_ = true;
    upgraded_ = true;
    auto socket = co_await open_websocket(stream_, *parsed_.message, request_.request_id,
                                          config_.write_timeout, *this);
    co_return socket;
  }

  void websocket_answered(int status) override { status_ = status; }
  void websocket_sent(std::size_t bytes) override { body_bytes_ += bytes; }
  void websocket_failed(std::string_view reason) override {
    if (failure_.empty()) failure_ = reason;
  }
  void websocket_peer_left() override { peer_left_ = true; }

  asio::awaitable<void> send(int status, Headers headers, std::string body) override {
    refuse_after_upgrade();
    // A 304 has no body and must not claim Content-Length: 0 (RFC 9110 8.6: it would have to be
    // the length a 200 would have).
    const bool bodiless = status == 304;
    const std::string head =
        response_head(status, request_.request_id, headers, keep_alive_,
                      bodiless ? Framing::kNone : Framing::kLength, body.size());
    started_ = true;
    status_ = status;
    const std::uint64_t length = head_only_ || bodiless ? 0 : body.size();
    // Head and body in one write (one sendmsg with two pieces).
    std::array<asio::const_buffer, 2> pieces{asio::buffer(head), asio::buffer(body.data(), length)};
    if (!send_now(pieces)) co_await write_rest(pieces);
    body_bytes_ += length;
  }

  asio::awaitable<ByteSink*> start_stream(int status, Headers headers) override {
    refuse_after_upgrade();
    // HTTP/1.0 knows no chunked encoding: the body ends when the connection closes.
    until_close_ = request_.version < 11;
    if (until_close_) keep_alive_ = false;
    const std::string head =
        response_head(status, request_.request_id, headers, keep_alive_,
                      until_close_ ? Framing::kNone : Framing::kChunked, 0);
    started_ = true;
    status_ = status;
    std::array<asio::const_buffer, 2> pieces{asio::buffer(head), asio::const_buffer()};
    if (!send_now(pieces)) co_await write_rest(pieces);
    co_return this;
  }

  asio::awaitable<ByteSink*> start_body(int status, Headers headers,
                                        std::uint64_t content_length) override {
    refuse_after_upgrade();
    const std::string head = response_head(status, request_.request_id, headers, keep_alive_,
                                           Framing::kLength, content_length);
    started_ = true;
    status_ = status;
    fixed_length_ = content_length;
    std::array<asio::const_buffer, 2> pieces{asio::buffer(head), asio::const_buffer()};
    if (!send_now(pieces)) co_await write_rest(pieces);
    co_return this;
  }

  asio::awaitable<void> write(std::string_view bytes) override {
    if (head_only_ || bytes.empty()) co_return;
    tcp_of(stream_).expires_after(config_.write_timeout);
    asio::const_buffer buffer(bytes.data(), bytes.size());
    if (fixed_length_ && body_bytes_ + bytes.size() > *fixed_length_) {
      throw std::logic_error("response body exceeds its Content-Length");
    }
    // What the socket took counts even when the write then fails (the client left half-way):
    // the access log's bytes are never fewer than the client received.
    beast::error_code ec;
    std::size_t framing = 0;  // the chunk header in front of the body bytes
    std::size_t written = 0;
    if (fixed_length_ || until_close_) {
      std::tie(ec, written) =
          co_await asio::async_write(stream_, buffer, TransferAllAtOnce{}, kTuple);
    } else {
      const http::chunk_header header(bytes.size());
      framing = asio::buffer_size(header);
      std::tie(ec, written) =
          co_await asio::async_write(stream_, http::make_chunk(buffer), TransferAllAtOnce{}, kTuple);
    }
    body_bytes_ += std::min(bytes.size(), written > framing ? written - framing : 0);
    if (ec) {
      note_failure(ec);
      throw beast::system_error(ec);
    }
  }

  // sendfile(2) straight from the page cache to the socket: archives of stored files send
  // their data without copying it through user space.
  asio::awaitable<void> write_file(int fd, std::uint64_t offset, std::uint64_t length) override {
    if (head_only_ || length == 0) co_return;
    if (fixed_length_ && body_bytes_ + length > *fixed_length_) {
      throw std::logic_error("response body exceeds its Content-Length");
    }
    const bool chunked = !fixed_length_ && !until_close_;
    tcp_of(stream_).expires_after(config_.write_timeout);
    if (chunked) {
      co_await guarded(asio::async_write(stream_, http::chunk_header(length), use_awaitable));
    }
    if constexpr (kTls<Stream>) {
      co_await guarded(copy_file(fd, static_cast<off_t>(offset), length));
    } else {
      co_await guarded(send_file(fd, static_cast<off_t>(offset), length));
    }
    if (chunked) {
      tcp_of(stream_).expires_after(config_.write_timeout);
      co_await guarded(asio::async_write(stream_, http::chunk_crlf(), use_awaitable));
    }
  }

  asio::awaitable<void> finish() override {
    if (head_only_ || until_close_) co_return;
    if (fixed_length_) {
      if (body_bytes_ != *fixed_length_) {
        throw std::logic_error("response body is shorter than its Content-Length");
      }
      co_return;
    }
    tcp_of(stream_).expires_after(config_.write_timeout);
    if (trailers_.empty()) {
      co_await guarded(asio::async_write(stream_, http::make_chunk_last(), use_awaitable));
      co_return;
    }
    http::fields fields;
    for (const auto& [name, value] : trailers_) fields.set(name, value);
    co_await guarded(asio::async_write(stream_, http::make_chunk_last(fields), use_awaitable));
  }

  bool trailers_accepted() const override {
    return request_.version >= 11 && !head_only_ && !fixed_length_ && !until_close_ &&
           request_.has_token("TE", "trailers");
  }
  void set_trailers(const Headers& trailers) override {
    if (trailers_accepted()) trailers_ = trailers;
  }

  void abort(std::string_view reason) noexcept override {
    if (!aborted_) {
      aborted_ = true;
      try {
        abort_reason_ = why(reason);
      } catch (...) {  // out of memory: a reason is not worth an exception here
      }
    }
    beast::error_code ignored;
    // Over TLS too the TCP connection is cut under the TLS layer: no close_notify, which would
    // tell the client that the data so far was all there is.
    auto& tcp = tcp_of(stream_);
    if (until_close_ && started_) {
      // An HTTP/1.0 body ends when the connection closes, so an orderly close would make a cut
      // download look whole: reset the connection instead (SO_LINGER 0), which every client
      // reports as an error.
      tcp.socket().set_option(asio::socket_base::linger(true, 0), ignored);
    } else {
      tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    }
    tcp.close();
  }

  bool started() const override { return started_; }
  bool keep_alive() const { return keep_alive_; }
  bool aborted() const { return aborted_; }
  int status() const override { return status_; }
  std::uint64_t body_bytes() const override { return body_bytes_; }
  std::string_view abort_reason() const override { return abort_reason_; }

 private:
  void refuse_after_upgrade() const {
    if (upgraded_) {
      throw std::logic_error("an HTTP response on a connection upgraded to a WebSocket");
    }
  }

  // Awaits a write, noting why it failed (for the log) before the error travels on.
  template <typename Operation>
  asio::awaitable<void> guarded(Operation operation) {
    try {
      co_await std::move(operation);
    } catch (const boost::system::system_error& error) {
      note_failure(error.code());
      throw;
    }
  }

  void note_failure(const beast::error_code& ec) {
    if (!failure_.empty()) return;
    if (ec == asio::error::operation_aborted) {
      failure_ = kCancelled;
    } else if (ec == beast::error::timeout) {
      failure_ = "a write stalled for longer than write_timeout_ms (" +
                 std::to_string(config_.write_timeout.count()) + " ms)";
    } else if (ec == asio::error::broken_pipe || ec == asio::error::connection_reset ||
               ec == asio::error::eof || ec == asio::error::not_connected) {
      failure_ = "the client left";
    } else {
      failure_ = "write failed: " + ec.message();
    }
  }

  // The reason to log for an abort: what this responder saw beats what the handler says.
  std::string why(std::string_view reason) const {
    if (watch_.gone || peer_left_) return "the client left";
    std::string_view said = !failure_.empty() ? std::string_view(failure_) : reason;
    if (said == kCancelled || said.empty()) return stopping_.load() ? "shutdown" : std::string(kCancelled);
    return std::string(said);
  }

  asio::awaitable<void> send_file(int fd, off_t offset, std::uint64_t length) {
    // sendfile has no MSG_NOSIGNAL: a peer that left must give EPIPE, not kill the server.
    static const bool sigpipe_ignored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
    (void)sigpipe_ignored;
    auto& socket = tcp_of(stream_).socket();
    socket.native_non_blocking(true);
    while (length > 0) {
      const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(length, 1u << 30));
      const ssize_t sent = ::sendfile(socket.native_handle(), fd, &offset, chunk);
      if (sent > 0) {
        length -= static_cast<std::uint64_t>(sent);
        body_bytes_ += static_cast<std::uint64_t>(sent);  // counted as the socket takes them
        continue;
      }
      if (sent == 0) throw std::runtime_error("file ended before the bytes to send");
      if (errno == EINTR) continue;
      if (errno != EAGAIN) throw beast::system_error(beast::error_code(errno, beast::system_category()));
      co_await wait_writable();
    }
  }

  // A stored file over TLS (no sendfile through user-space encryption): read in large pieces
  // and written like any body bytes, each write under write_timeout.
  asio::awaitable<void> copy_file(int fd, off_t offset, std::uint64_t length) {
    std::vector<char> piece(static_cast<std::size_t>(std::min<std::uint64_t>(length, kFileCopyChunk)));
    while (length > 0) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(length, piece.size()));
      const ssize_t got = ::pread(fd, piece.data(), want, offset);
      if (got < 0) {
        if (errno == EINTR) continue;
        throw beast::system_error(beast::error_code(errno, beast::system_category()));
      }
      if (got == 0) throw std::runtime_error("file ended before the bytes to send");
      const auto size = static_cast<std::size_t>(got);
      tcp_of(stream_).expires_after(config_.write_timeout);
      auto [ec, written] = co_await asio::async_write(stream_, asio::buffer(piece.data(), size), kTuple);
      body_bytes_ += written;  // counted as the socket takes them
      if (ec) throw beast::system_error(ec);
      offset += got;
      length -= size;
    }
  }

  // Waits until the socket takes more bytes, at most write_timeout (like every other write).
  asio::awaitable<void> wait_writable() {
    using namespace asio::experimental::awaitable_operators;
    auto& socket = tcp_of(stream_).socket();
    asio::steady_timer timer(socket.get_executor(), config_.write_timeout);
    auto done = co_await (socket.async_wait(asio::ip::tcp::socket::wait_write, kTuple) ||
                          timer.async_wait(kTuple));
    if (done.index() == 1) throw beast::system_error(beast::error::timeout);
    if (auto [ec] = std::get<0>(done); ec) throw beast::system_error(ec);
  }

  // Hands `pieces` to the socket without waiting, and drops from them what it took: true when
  // that was everything (a small response on a connection whose client reads), so the caller
  // awaits nothing at all (no asynchronous write, no timer, no handler to run: most of what a
  // small response cost). Throws, having noted why, when the socket failed.
  // Over TLS nothing is sent here (the bytes must be encrypted first): write_rest() does it.
  bool send_now(std::array<asio::const_buffer, 2>& pieces) {
    if constexpr (kTls<Stream>) return pieces[0].size() + pieces[1].size() == 0;
    std::array<iovec, 2> vectors{};
    std::size_t count = 0;
    for (const asio::const_buffer& piece : pieces) {
      if (piece.size() == 0) continue;
      vectors[count].iov_base = const_cast<void*>(piece.data());  // (sendmsg only reads it)
      vectors[count].iov_len = piece.size();
      ++count;
    }
    if (count == 0) return true;
    msghdr message{};
    message.msg_iov = vectors.data();
    message.msg_iovlen = count;
    ssize_t sent = 0;
    for (;;) {
      sent = ::sendmsg(tcp_of(stream_).socket().native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (sent >= 0) break;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        sent = 0;
        break;
      }
      const beast::error_code ec(errno, beast::system_category());
      note_failure(ec);
      throw beast::system_error(ec);
    }
    auto taken = static_cast<std::size_t>(sent);
    for (asio::const_buffer& piece : pieces) {
      const std::size_t skipped = std::min(taken, piece.size());
      piece += skipped;
      taken -= skipped;
    }
    return pieces[0].size() + pieces[1].size() == 0;
  }

  // What send_now() left, written asynchronously under write_timeout like every other write.
  asio::awaitable<void> write_rest(std::array<asio::const_buffer, 2> pieces) {
    tcp_of(stream_).expires_after(config_.write_timeout);
    co_await guarded(asio::async_write(stream_, pieces, use_awaitable));
  }

  Stream& stream_;
  const HttpRequest& request_;
  bool keep_alive_;
  bool head_only_;
  const ServerConfig& config_;
  const std::atomic<bool>& stopping_;
  bool started_ = false;
  bool aborted_ = false;
  int status_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::optional<std::uint64_t> fixed_length_;  // set by start_body
  bool until_close_ = false;                    // an HTTP/1.0 stream: no chunks
  Headers trailers_;                            // sent with the last chunk
  PeerWatch& watch_;
  ParsedRequest parsed_;
  bool upgraded_ = false;     // accept_websocket() took the connection
  bool peer_left_ = false;    // ... and its WebSocket saw the peer leave
  std::string failure_;       // why a write failed
  std::string abort_reason_;  // why the transfer was cut
};

std::string remote_of(beast::tcp_stream& stream) {
  beast::error_code ec;
  const auto endpoint = stream.socket().remote_endpoint(ec);
  if (ec) return "-";
  std::string host = endpoint.address().to_string();
  if (endpoint.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

HttpRequest to_request(http::request<http::string_body>& message) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  for (const auto& field : message) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  request.version = static_cast<int>(message.version());
  return request;
}

// The status for a request that could not be read, or 0 to close without answering.
int read_error_status(const beast::error_code& ec) {
  if (ec == http::error::header_limit) return 431;
  if (ec == http::error::body_limit) return 413;
  if (ec == beast::error::timeout || ec == http::error::partial_message ||
      ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::operation_aborted) {
    return 0;
  }
  // Every other parser error (bad method, target, version, field, chunk...) is the client's.
  if (ec.category() == beast::error_code(http::error::bad_method).category()) return 400;
  return 0;
}

template <typename Stream>
asio::awaitable<void> send_read_error(Stream& stream, int status,
                                      const SessionContext& context, const std::string& remote,
                                      std::string_view message = {}) {
  HttpRequest request;
  request.request_id = make_request_id({});
  request.remote = remote;
  PeerWatch watch;  // (never armed: nothing runs beside an error answer)
  const auto wall = std::chrono::system_clock::now();
  SessionResponder<Stream> responder(stream, request, false, context, watch);
  static constexpr std::pair<int, std::pair<const char*, const char*>> kErrors[] = {
      {431, {"headers_too_large", "request headers exceed the server's limit"}},
      {413, {"body_too_large", "request body exceeds the server's limit"}},
      {400, {"bad_request", "malformed HTTP request"}},
  };
  for (const auto& [code_status, error] : kErrors) {
    if (code_status == status) {
      co_await responder.send_error(status, error.first,
                                    message.empty() ? std::string_view(error.second) : message,
                                    request.request_id);
    }
  }
  http_metrics().responses_of(status).add();
  log_access(AccessRecord{wall, request.remote, "-", "-", responder.status(),
                          responder.body_bytes(), std::chrono::microseconds(0),
                          request.request_id, {}},
             stream.get_executor());
}

// Reads until the whole request head is in `buffer`, so that it can be checked as it was sent
// (Beast's parser folds obs-fold away). 0 when it is there and acceptable; 431 or 400 (with
// `problem`) to refuse it; -1 when the connection ended or timed out.
template <typename Stream>
asio::awaitable<int> read_request_head(Stream& stream, beast::flat_buffer& buffer,
                                       std::size_t limit, std::string& problem) {
  for (;;) {
    const auto data = buffer.data();
    const std::string_view received(static_cast<const char*>(data.data()), data.size());
    const std::size_t end = request_head_end(received);
    if (end != std::string_view::npos) {
      if (auto refused = raw_head_problem(received.substr(0, end))) {
        problem = std::move(*refused);
        co_return 400;
      }
      co_return 0;
    }
    if (received.size() > limit) co_return 431;
    auto [ec, bytes] = co_await stream.async_read_some(
        buffer.prepare(std::min<std::size_t>(limit + 4 - received.size(), 16 * 1024)), kTuple);
    buffer.commit(bytes);
    if (ec) co_return -1;
  }
}

// Waits for the start of the next request under the idle timeout. What arrives is read at once,
// within the head's limit as read_request_head reads it (a small request is then read whole by
// one read).
template <typename Stream>
asio::awaitable<bool> await_request_start(Stream& stream, beast::flat_buffer& buffer,
                                          const ServerConfig& config) {
  if (buffer.size() != 0) co_return true;
  tcp_of(stream).expires_after(config.idle_timeout);
  auto [ec, bytes] = co_await stream.async_read_some(
      buffer.prepare(std::min<std::size_t>(config.max_header_bytes + 4, 16 * 1024)), kTuple);
  buffer.commit(bytes);
  co_return !ec;
}

// How a connection goes on after a request.
enum class After {
  kNext,   // keep-alive: the next request
  kClose,  // the response is complete and the connection ends (Connection: close, HTTP/1.0)
  kCut,    // aborted, or the client left: the connection just closes
};

// Answers one request through the request path.
template <typename Stream>
asio::awaitable<After> serve_request(Stream& stream, http::request<http::string_body>& message,
                                     const beast::flat_buffer& buffer,
                                     const SessionContext& context, const std::string& remote,
                                     const std::shared_ptr<PeerWatch>& watch) {
  const bool keep_alive = message.keep_alive() && !context.stopping.load();
  HttpRequest request = to_request(message);
  request.remote = remote;
  request.target_ok = parse_target(request);
  watch->gone = false;
  watch->upgraded = false;
  const std::uint64_t watched = ++watch->request;
  SessionResponder<Stream> responder(stream, request, keep_alive, context, *watch,
                                     ParsedRequest{&message, &buffer});
  // The watch starts once the handler waits for something (see PeerWatch) and ends with the
  // response, whether it completed or threw.
  asio::post(stream.get_executor(), [watch, watched] { arm_peer_watch(watch, watched); });
  struct EndWatch {
    PeerWatch& watch;
    ~EndWatch() {
      ++watch.request;
      watch.stop_wait.emit(asio::cancellation_type::all);
    }
  } end_watch{*watch};
  co_await context.path.handle(request, responder);
  if (responder.aborted() || watch->gone || watch->upgraded) co_return After::kCut;
  co_return responder.keep_alive() ? After::kNext : After::kClose;
}

// Server side of the TLS handshake, under read_timeout (a client that connects and sends
// nothing costs a coroutine for that long, no more). A failure (plain HTTP to the TLS port, an
// old protocol, no shared cipher, a client that refuses the certificate) is logged in one line.
asio::awaitable<bool> tls_handshake(TlsStream& stream, const ServerConfig& config,
                                    const std::string& remote) {
  tcp_of(stream).expires_after(config.read_timeout);
  auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
  if (!ec) co_return true;
  std::string why;
  if (ec == beast::error::timeout) {
    why = "timed out (read_timeout_ms)";
  } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
             ec == asio::error::connection_reset) {
    why = "the client closed the connection";
  } else if (ec == asio::error::operation_aborted) {
    co_return false;  // shed or shutdown: not the client's doing
  } else if (ec.category() == asio::error::get_ssl_category() &&
             ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST) {
    why = "plain HTTP sent to the HTTPS port";
  } else {
    why = ec.message();
  }
  log_event("TLS handshake with " + remote + " failed: " + why);
  co_return false;
}

// Ends a TLS connection whose last response is complete with close_notify, so that a body that
// ends with the connection (HTTP/1.0) is known to be whole; bounded by write_timeout (at most
// 2 s): the client's own close_notify or its close ends the wait.
asio::awaitable<void> say_goodbye(TlsStream& stream, const ServerConfig& config) {
  tcp_of(stream).expires_after(std::min<std::chrono::milliseconds>(config.write_timeout,
                                                                   std::chrono::seconds(2)));
  auto [ec] = co_await stream.async_shutdown(kTuple);
  (void)ec;  // the connection closes either way
}

// The connection's loop: reads requests and answers them (run_session's documentation).
template <typename Stream>
asio::awaitable<After> serve_requests(Stream& stream, const SessionContext& context,
                                      const ConnectionRegistry::Handle& entry,
                                      const std::shared_ptr<PeerWatch>& watch,
                                      const std::string& remote) {
  const ServerConfig& config = context.config;
  ConnectionRegistry& connections = context.connections;
  beast::flat_buffer buffer;
  while (!context.stopping.load() && tcp_of(stream).socket().is_open()) {
    connections.set(entry, ConnectionRegistry::State::kIdle);
    // Waiting for a request, a graceful shutdown (total cancellation) ends the wait at once.
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
    const bool started = co_await await_request_start(stream, buffer, config);
    // From here on only the end of the shutdown grace (terminal cancellation) stops the
    // request: a running download may finish.
    co_await asio::this_coro::reset_cancellation_state();
    if (!started) co_return After::kCut;
    connections.set(entry, ConnectionRegistry::State::kReading);
    tcp_of(stream).expires_after(config.read_timeout);
    std::string problem;
    const int refused = co_await read_request_head(stream, buffer, config.max_header_bytes, problem);
    if (refused < 0) co_return After::kCut;
    if (refused > 0) {
      co_await send_read_error(stream, refused, context, remote, problem);
      co_return After::kClose;
    }
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
    parser.body_limit(config.max_body_bytes);
    // The whole head is in the buffer: parsed here, without an asynchronous read (Beast's would
    // cost a handler's round trip through the event loop). Only a head Beast finds incomplete
    // all the same goes the asynchronous way.
    beast::error_code head_ec;
    buffer.consume(parser.put(buffer.data(), head_ec));
    if (head_ec == http::error::need_more) {
      head_ec = {};
      std::tie(head_ec, std::ignore) =
          co_await http::async_read_header(stream, buffer, parser, kTuple);
    }
    if (!head_ec) {
      const auto& head = parser.get();
      const RequestFraming framing{static_cast<int>(head.version()),
                                   static_cast<std::size_t>(head.count(http::field::host)),
                                   static_cast<std::size_t>(head.count(http::field::transfer_encoding)),
                                   parser.chunked()};
      if (auto wrong = framing_problem(framing)) {
        co_await send_read_error(stream, 400, context, remote, *wrong);
        co_return After::kClose;
      }
    }
    beast::error_code ec = head_ec;
    // A request without a body (most) is complete with its head.
    if (!ec && !parser.is_done()) {
      std::tie(ec, std::ignore) = co_await http::async_read(stream, buffer, parser, kTuple);
    }
    if (ec) {
      if (int status = read_error_status(ec)) {
        co_await send_read_error(stream, status, context, remote);
        co_return After::kClose;
      }
      co_return After::kCut;
    }
    connections.set(entry, ConnectionRegistry::State::kBusy);
    const After after = co_await serve_request(stream, parser.get(), buffer, context, remote, watch);
    if (after != After::kNext) co_return after;
  }
  co_return After::kCut;
}

// The connection's frame: its stream, registration, metrics and close; over TLS the handshake
// first and close_notify after a complete last response.
template <typename Stream>
asio::awaitable<void> serve_connection(Stream stream, const SessionContext& context,
                                       ConnectionRegistry::Handle entry,
                                       std::shared_ptr<PeerWatch> watch) {
  ConnectionRegistry& connections = context.connections;
  http_metrics().connections.add(1);
  beast::tcp_stream& tcp = tcp_of(stream);
  watch->socket = &tcp.socket();
  watch->tls = kTls<Stream>;
  struct Closer {
    beast::tcp_stream& tcp;
    ConnectionRegistry& connections;
    const ConnectionRegistry::Handle& entry;
    PeerWatch& watch;
    ~Closer() {
      watch.socket = nullptr;
      beast::error_code ignored;
      tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      tcp.close();
      connections.remove(entry);
      http_metrics().connections.sub(1);
    }
  } closer{tcp, connections, entry, *watch};
  // Shed to make room for a new connection (only while idle or reading a request): the pending
  // read fails and the loop below ends.
  connections.attach(entry, [&tcp] {
    beast::error_code ignored;
    tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    tcp.close();
  });
  // Once per connection: getpeername(2) and the formatting cost as much per request as the
  // access line itself.
  const std::string remote = remote_of(tcp);
  if constexpr (kTls<Stream>) {
    connections.set(entry, ConnectionRegistry::State::kReading);
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
    const bool secured = co_await tls_handshake(stream, context.config, remote);
    co_await asio::this_coro::reset_cancellation_state();
    if (!secured) co_return;
    const After after = co_await serve_requests(stream, context, entry, watch, remote);
    if (after == After::kClose && tcp.socket().is_open()) co_await say_goodbye(stream, context.config);
  } else {
    co_await serve_requests(stream, context, entry, watch, remote);
  }
}

// The connection's loop runs as a coroutine of its own under a signal the session owns, so
// that the peer watch can cancel a request whose client left (terminal: as the group would);
// the group's cancellation of this coroutine (shutdown: total, then terminal) is passed on to
// it, and the loop's own filters decide what it ends.
template <typename Stream>
asio::awaitable<void> run_watched(Stream stream, const SessionContext& context,
                                  ConnectionRegistry::Handle entry) {
  auto watch = std::make_shared<PeerWatch>();
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  const asio::cancellation_state group = co_await asio::this_coro::cancellation_state;
  group.slot().assign([watch](asio::cancellation_type type) { watch->cancel.emit(type); });
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  co_await asio::co_spawn(executor,
                          serve_connection(std::move(stream), context, std::move(entry), watch),
                          asio::bind_cancellation_slot(watch->cancel.slot(), use_awaitable));
}

}  // namespace

asio::awaitable<void> run_session(beast::tcp_stream stream, const SessionContext& context,
                                  ConnectionRegistry::Handle entry) {
  return run_watched(std::move(stream), context, std::move(entry));
}

asio::awaitable<void> run_tls_session(beast::tcp_stream stream,
                                      std::shared_ptr<asio::ssl::context> tls,
                                      const SessionContext& context,
                                      ConnectionRegistry::Handle entry) {
  // The SSL object holds its own reference to the context's SSL_CTX; `tls` is kept as well, for
  // as long as the connection lasts, so that a reload (SIGHUP) never frees what it uses.
  TlsStream secured(std::move(stream), *tls);
  co_await run_watched(std::move(secured), context, std::move(entry));
}

}  // namespace sluice
