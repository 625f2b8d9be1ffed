// WebSocket upgrades through a real HttpServer on 127.0.0.1:0 (one I/O thread), with Beast's
// websocket client on the test's own io_context.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "http/handler.hpp"
#include "http/http_metrics.hpp"
#include "http/router.hpp"
#include "http/server.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A server with one route, GET /ws, running on its own thread until stop() or destruction.
class TestServer {
 public:
  explicit TestServer(Handler handler,
                      std::chrono::milliseconds write_timeout = ServerConfig{}.write_timeout) {
    config_.threads = 1;
    config_.shutdown_grace = 300ms;
    config_.write_timeout = write_timeout;
    router_.add("GET", {"ws"}, std::move(handler));
    server_ = std::make_unique<HttpServer>(config_, router_);
    const std::string address = server_->listen("127.0.0.1:0");
    endpoint_ = tcp::endpoint(
        asio::ip::make_address("127.0.0.1"),
        static_cast<unsigned short>(std::stoi(address.substr(address.rfind(':') + 1))));
    thread_ = std::thread([this] { server_->run(); });
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
  }
  const tcp::endpoint& endpoint() const { return endpoint_; }

 private:
  ServerConfig config_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  tcp::endpoint endpoint_;
  std::thread thread_;
};

// Runs a client coroutine on a fresh io_context for at most 10 s; rethrows what it threw.
template <typename Client>
void run_client(Client client) {
  asio::io_context context;
  std::future<void> done = asio::co_spawn(context, std::move(client), asio::use_future);
  context.run_for(10s);
  ASSERT_EQ(done.wait_for(0s), std::future_status::ready) << "the client did not finish in 10 s";
  done.get();
}

asio::awaitable<void> connect(websocket::stream<beast::tcp_stream>& ws, const tcp::endpoint& to,
                              websocket::response_type& response) {
  co_await beast::get_lowest_layer(ws).async_connect(to, use_awaitable);
  co_await ws.async_handshake(response, "127.0.0.1", "/ws", use_awaitable);
}

asio::awaitable<std::string> read_text(websocket::stream<beast::tcp_stream>& ws) {
  beast::flat_buffer buffer;
  co_await ws.async_read(buffer, use_awaitable);
  EXPECT_TRUE(ws.got_text());
  std::string text = beast::buffers_to_string(buffer.data());
  co_return text;
}

// What a client sees after the messages it expects: the error that ended its next read.
asio::awaitable<beast::error_code> read_end(websocket::stream<beast::tcp_stream>& ws) {
  beast::flat_buffer buffer;
  auto [ec, bytes] = co_await ws.async_read(buffer, asio::as_tuple(use_awaitable));
  (void)bytes;
  co_return ec;
}

// What an await threw: the first failure inside the multiple_exceptions that awaitable
// operators throw when every branch failed.
beast::error_code code_of(std::exception_ptr error) {
  for (;;) {
    try {
      std::rethrow_exception(error);
    } catch (const asio::multiple_exceptions& several) {
      error = several.first_exception();
    } catch (const boost::system::system_error& failure) {
      return failure.code();
    } catch (...) {
      return asio::error::fault;
    }
  }
}

// The handler's side of the tests, reported to the test thread.
struct Outcome {
  std::promise<std::string> ended;  // how the handler ended
  std::future<std::string> future = ended.get_future();

  std::string wait() {
    if (future.wait_for(5s) != std::future_status::ready) return "handler still running after 5 s";
    return future.get();
  }
};

TEST(WebSocketTest, EchoesInOrderAndEndsWhenTheClientCloses) {
  Outcome outcome;
  TestServer server(
      [&outcome](const HttpRequest& request, HttpResponder& responder) -> asio::awaitable<void> {
        EXPECT_TRUE(is_websocket_upgrade(request));
        std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
        for (int i = 1; i <= 3; ++i) co_await ws->send_text("event " + std::to_string(i));
        for (;;) {
          std::optional<std::string> message = co_await ws->receive();
          if (!message) break;
          co_await ws->send_text("echo: " + *message);
        }
        outcome.ended.set_value("receive() returned nothing");
      });
  const std::uint64_t informational = http_metrics().responses_of(101).value();
  testing::internal::CaptureStderr();
  run_client([&]() -> asio::awaitable<void> {
    websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
    websocket::response_type response;
    co_await connect(ws, server.endpoint(), response);
    EXPECT_EQ(response.result_int(), 101u);
    EXPECT_EQ(response[http::field::server], "sluice");
    EXPECT_FALSE(response["X-Request-Id"].empty());
    for (int i = 1; i <= 3; ++i) {
      const std::string text = co_await read_text(ws);
      EXPECT_EQ(text, "event " + std::to_string(i));
    }
    const std::vector<std::string> sent{"hello", "", std::string(60 * 1024, 'x'), "w\xc3\xb6rld"};
    for (const std::string& text : sent) {
      co_await ws.async_write(asio::buffer(text), use_awaitable);
      const std::string echo = co_await read_text(ws);
      EXPECT_EQ(echo, "echo: " + text);
    }
    co_await ws.async_close(websocket::close_code::normal, use_awaitable);
  });
  EXPECT_EQ(outcome.wait(), "receive() returned nothing");
  server.stop();
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("\"GET /ws\" 101 "), std::string::npos) << log;
  EXPECT_EQ(log.find("aborted="), std::string::npos) << log;
  EXPECT_EQ(http_metrics().responses_of(101).value(), informational + 1);
}

// Sends "tick N" forever, `every` apart (0: as fast as the socket takes them).
asio::awaitable<void> tick(WebSocket& ws, std::chrono::milliseconds every) {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (int i = 0;; ++i) {
    co_await ws.send_text("tick " + std::to_string(i));
    if (every.count() == 0) continue;
    pause.expires_after(every);
    co_await pause.async_wait(use_awaitable);
  }
}

asio::awaitable<void> send_three(WebSocket& ws) {
  for (int i = 1; i <= 3; ++i) co_await ws.send_text("event " + std::to_string(i));
}

// The usual shape: one coroutine sends events while receive() waits for the peer's close.
// The `||` returns receive()'s nothing, also when the sender's next send fails first because
// the peer's close frame is being answered (a sender that never pauses).
TEST(WebSocketTest, SendingWhileReceivingEndsWhenTheClientCloses) {
  using namespace asio::experimental::awaitable_operators;
  for (const std::chrono::milliseconds every : {2ms, 0ms}) {
    SCOPED_TRACE("a tick every " + std::to_string(every.count()) + " ms");
    Outcome outcome;
    TestServer server([&outcome, every](const HttpRequest& request,
                                        HttpResponder& responder) -> asio::awaitable<void> {
      std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
      std::string what;
      try {
        std::variant<std::monostate, std::optional<std::string>> first =
            co_await (tick(*ws, every) || ws->receive());
        const bool closed = first.index() == 1 && !std::get<1>(first);
        what = closed ? "the peer closed while ticks were sent" : "unexpected end";
      } catch (const std::exception& error) {
        what = std::string("threw: ") + error.what();
      }
      outcome.ended.set_value(what);
    });
    run_client([&]() -> asio::awaitable<void> {
      websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
      websocket::response_type response;
      co_await connect(ws, server.endpoint(), response);
      for (int i = 0; i < 20; ++i) {
        const std::string text = co_await read_text(ws);
        EXPECT_EQ(text, "tick " + std::to_string(i));
      }
      co_await ws.async_close(websocket::close_code::going_away, use_awaitable);
    });
    EXPECT_EQ(outcome.wait(), "the peer closed while ticks were sent");
  }
}

// A peer whose close frame comes long before its TCP close: the sender's next send finds the
// connection closing while the read still waits for the TCP close; receive() still wins the `||`.
TEST(WebSocketTest, AClosingPeerEndsReceiveBeforeTheSenderThrows) {
  using namespace asio::experimental::awaitable_operators;
  Outcome outcome;
  TestServer server(
      [&outcome](const HttpRequest& request, HttpResponder& responder) -> asio::awaitable<void> {
        std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
        std::string what;
        try {
          std::variant<std::monostate, std::optional<std::string>> first =
              co_await (tick(*ws, 2ms) || ws->receive());
          const bool closed = first.index() == 1 && !std::get<1>(first);
          what = closed ? "the peer closed while ticks were sent" : "unexpected end";
        } catch (const std::exception& error) {
          what = std::string("threw: ") + error.what();
        }
        outcome.ended.set_value(what);
      });
  run_client([&]() -> asio::awaitable<void> {
    websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
    websocket::response_type response;
    co_await connect(ws, server.endpoint(), response);
    const std::string first = co_await read_text(ws);
    EXPECT_EQ(first, "tick 0");
    // A masked close frame (1000, mask key 0) written under Beast's client, which then neither
    // reads nor closes the TCP connection for 100 ms.
    static constexpr unsigned char kClose[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8};
    auto& socket = beast::get_lowest_layer(ws).socket();
    co_await asio::async_write(socket, asio::buffer(kClose), use_awaitable);
    asio::steady_timer pause(co_await asio::this_coro::executor, 100ms);
    co_await pause.async_wait(use_awaitable);
    socket.close();
  });
  EXPECT_EQ(outcome.wait(), "the peer closed while ticks were sent");
}

// A sender that finishes first cancels the pending receive(); close() still sends its frame.
TEST(WebSocketTest, CloseAfterACancelledReceiveSendsTheCloseFrame) {
  using namespace asio::experimental::awaitable_operators;
  Outcome outcome;
  TestServer server(
      [&outcome](const HttpRequest& request, HttpResponder& responder) -> asio::awaitable<void> {
        std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
        std::variant<std::monostate, std::optional<std::string>> first =
            co_await (send_three(*ws) || ws->receive());
        co_await ws->close("bye");
        std::optional<std::string> after = co_await ws->receive();
        outcome.ended.set_value(first.index() == 0 && !after ? "closed" : "unexpected end");
      });
  run_client([&]() -> asio::awaitable<void> {
    websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
    websocket::response_type response;
    co_await connect(ws, server.endpoint(), response);
    for (int i = 1; i <= 3; ++i) {
      const std::string text = co_await read_text(ws);
      EXPECT_EQ(text, "event " + std::to_string(i));
    }
    const beast::error_code end = co_await read_end(ws);
    EXPECT_EQ(end, websocket::error::closed);
    EXPECT_EQ(ws.reason().code, websocket::close_code::normal);
    EXPECT_EQ(std::string(ws.reason().reason.data(), ws.reason().reason.size()), "bye");
  });
  EXPECT_EQ(outcome.wait(), "closed");
}

TEST(WebSocketTest, AMessageOverTheLimitFailsTheConnection) {
  Outcome outcome;
  TestServer server(
      [&outcome](const HttpRequest& request, HttpResponder& responder) -> asio::awaitable<void> {
        std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
        std::string what = "receive() returned";
        try {
          (void)co_await ws->receive();
        } catch (const boost::system::system_error& error) {
          what = error.code() == websocket::error::message_too_big ? "too big" : error.what();
        }
        outcome.ended.set_value(what);
      });
  run_client([&]() -> asio::awaitable<void> {
    websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
    websocket::response_type response;
    co_await connect(ws, server.endpoint(), response);
    const std::string big(64 * 1024 + 1, 'x');
    co_await ws.async_write(asio::buffer(big), use_awaitable);
    const beast::error_code end = co_await read_end(ws);
    EXPECT_EQ(end, websocket::error::closed);
    EXPECT_EQ(ws.reason().code, websocket::close_code::too_big);
  });
  EXPECT_EQ(outcome.wait(), "too big");
}

// The TaskGroup's cancellation at the end of the shutdown grace ends a handler that sends and
// waits; the request path maps the multiple_exceptions of its || to "shutdown".
TEST(WebSocketTest, ShutdownEndsAWaitingHandler) {
  using namespace asio::experimental::awaitable_operators;
  Outcome outcome;
  std::promise<void> accepted;
  TestServer server(
      [&](const HttpRequest& request, HttpResponder& responder) -> asio::awaitable<void> {
        std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
        accepted.set_value();
        std::exception_ptr failure;
        try {
          (void)co_await (tick(*ws, 20ms) || ws->receive());
        } catch (...) {
          failure = std::current_exception();
        }
        const bool cancelled = failure && code_of(failure) == asio::error::operation_aborted;
        outcome.ended.set_value(cancelled ? "cancelled" : "not cancelled");
        if (failure) std::rethrow_exception(failure);
      });
  testing::internal::CaptureStderr();
  run_client([&]() -> asio::awaitable<void> {
    websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
    websocket::response_type response;
    co_await connect(ws, server.endpoint(), response);
    accepted.get_future().wait();
    server.stop();  // returns after the grace (300 ms): the connection is gone by then
    beast::error_code end;
    while (!end) end = co_await read_end(ws);  // the ticks sent meanwhile, then the end
    EXPECT_NE(end, websocket::error::closed);  // no close frame: the socket was closed
  });
  EXPECT_EQ(outcome.wait(), "cancelled");
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("\"GET /ws\" 101 "), std::string::npos) << log;
  EXPECT_NE(log.find("aborted=\"shutdown\""), std::string::npos) << log;
  EXPECT_EQ(log.find("failed:"), std::string::npos) << log;  // not an internal error
}

asio::awaitable<void> send_megabytes(WebSocket& ws) {
  const std::string chunk(1024 * 1024, 'x');
  for (int i = 0; i < 1000; ++i) co_await ws.send_text(chunk);
}

// A peer that stops reading: the send that stalls past write_timeout throws, the connection
// closes, and the receive() beside it throws too (not "the peer closed").
TEST(WebSocketTest, ASendStalledPastTheWriteTimeoutThrows) {
  using namespace asio::experimental::awaitable_operators;
  Outcome outcome;
  TestServer server(
      [&outcome](const HttpRequest& request, HttpResponder& responder) -> asio::awaitable<void> {
        std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
        std::exception_ptr failure;
        try {
          (void)co_await (send_megabytes(*ws) || ws->receive());
        } catch (...) {
          failure = std::current_exception();
        }
        const bool timeout = failure && code_of(failure) == beast::error::timeout;
        outcome.ended.set_value(timeout ? "timeout" : "no timeout");
        if (failure) std::rethrow_exception(failure);
      },
      200ms);
  testing::internal::CaptureStderr();
  run_client([&]() -> asio::awaitable<void> {
    websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
    websocket::response_type response;
    co_await connect(ws, server.endpoint(), response);
    EXPECT_EQ(outcome.wait(), "timeout");  // reads nothing meanwhile
  });
  server.stop();
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("aborted=\"a write stalled for longer than write_timeout_ms (200 ms)\""),
            std::string::npos)
      << log;
}

// A handshake this server cannot complete is refused before anything is switched.
TEST(WebSocketTest, AnUnknownVersionIsRefusedWith426) {
  TestServer server(
      [](const HttpRequest& request, HttpResponder& responder) -> asio::awaitable<void> {
        std::unique_ptr<WebSocket> ws = co_await responder.accept_websocket(request);
        co_await ws->close();
      });
  run_client([&]() -> asio::awaitable<void> {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await stream.async_connect(server.endpoint(), use_awaitable);
    http::request<http::empty_body> request{http::verb::get, "/ws", 11};
    request.set(http::field::host, "127.0.0.1");
    request.set(http::field::connection, "Upgrade");
    request.set(http::field::upgrade, "websocket");
    request.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    request.set(http::field::sec_websocket_version, "8");
    co_await http::async_write(stream, request, use_awaitable);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    co_await http::async_read(stream, buffer, response, use_awaitable);
    EXPECT_EQ(response.result_int(), 426u);
    EXPECT_EQ(response[http::field::sec_websocket_version], "13");
    EXPECT_NE(response.body().find("upgrade_required"), std::string::npos) << response.body();
  });
}

TEST(WebSocketTest, IsWebSocketUpgrade) {
  HttpRequest request;
  request.method = "GET";
  request.headers = {{"Connection", "keep-alive, Upgrade"}, {"Upgrade", "WebSocket"}};
  EXPECT_TRUE(is_websocket_upgrade(request));
  request.version = 10;
  EXPECT_FALSE(is_websocket_upgrade(request));
  request.version = 11;
  request.method = "POST";
  EXPECT_FALSE(is_websocket_upgrade(request));
  request.method = "GET";
  request.headers = {{"Upgrade", "websocket"}};
  EXPECT_FALSE(is_websocket_upgrade(request));
  request.headers = {{"Connection", "upgrade"}, {"Upgrade", "h2c"}};
  EXPECT_FALSE(is_websocket_upgrade(request));
}

}  // namespace
}  // namespace sluice
