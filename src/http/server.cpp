#include "http/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <vector>
#include <thread>

#include "core/log.hpp"
#include "core/task_group.hpp"
#include "http/http_metrics.hpp"
#include "http/session.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using asio::use_awaitable;

tcp::endpoint resolve_listen(const std::string& address) {
  std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("listen address needs HOST:PORT: " + address);
  std::string host = address.substr(0, colon);
  std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  asio::io_context resolver_context;
  tcp::resolver resolver(resolver_context);
  beast::error_code ec;
  auto results = resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) throw std::runtime_error("cannot resolve listen address " + address + ": " + ec.message());
  return results.begin()->endpoint();
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const ServerConfig& config, const Router& router)
      : config_(config),
        threads_(config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency())),
        contexts_(make_contexts(threads_)),
        io_(*contexts_.front()),
        acceptor_strand_(asio::make_strand(io_)),
        acceptor_(acceptor_strand_),
        signals_(io_, SIGINT, SIGTERM),
        sessions_(io_.get_executor()),
        path_(make_request_path(config, router)),
        context_{config, *path_, stopping_} {
    http_metrics();  // every series is listed from the start
    set_log_format(config.log_format == "json" ? LogFormat::kJson : LogFormat::kText);
  }

  std::string listen(const std::string& address) {
    tcp::endpoint endpoint = resolve_listen(address);
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + address + ": " + ec.message());
    tcp::endpoint bound = acceptor_.local_endpoint();
    std::string host = bound.address().to_string();
    if (bound.address().is_v6()) host = "[" + host + "]";
    return host + ":" + std::to_string(bound.port());
  }

  void run() {
    signals_.async_wait([this](beast::error_code ec, int) {
      if (ec) return;
      begin_shutdown();
      // A second signal does not wait for the grace period.
      signals_.async_wait([this](beast::error_code second, int) {
        if (!second) stop_all();
      });
    });
    asio::co_spawn(acceptor_strand_, accept_loop(), asio::detached);
    // One io_context per thread: a connection, its handlers and the database socket of its
    // export stay on one thread (no cross-thread wake-ups per read); the others idle until
    // stop_all() instead of returning when they run out of work.
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::vector<std::thread> workers;
    for (std::size_t i = 1; i < contexts_.size(); ++i) {
      guards.push_back(asio::make_work_guard(*contexts_[i]));
      workers.emplace_back([context = contexts_[i].get()] { context->run(); });
    }
    io_.run();
    guards.clear();
    stop_all();
    for (std::thread& worker : workers) worker.join();
  }

  void stop() {
    asio::post(io_, [this] { begin_shutdown(); });
  }

 private:
  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(unsigned threads) {
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    for (unsigned i = 0; i < threads; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));
    return contexts;
  }

  void stop_all() {
    for (auto& context : contexts_) context->stop();
  }

  asio::awaitable<void> accept_loop() {
    std::size_t next = 0;
    while (!stopping_.load()) {
      asio::io_context& context = *contexts_[next++ % contexts_.size()];
      auto [ec, socket] =
          co_await acceptor_.async_accept(context.get_executor(), asio::as_tuple(use_awaitable));
      if (ec) {
        if (stopping_.load() || ec == asio::error::operation_aborted) break;
        // Out of file descriptors or similar: back off instead of spinning.
        asio::steady_timer pause(acceptor_strand_, std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::as_tuple(use_awaitable));
        continue;
      }
      socket.set_option(tcp::no_delay(true));
      const asio::any_io_executor executor = socket.get_executor();
      sessions_.spawn(executor, run_session(beast::tcp_stream(std::move(socket)), context_),
                      [](const std::exception_ptr& error) {
                        try {
                          std::rethrow_exception(error);
                        } catch (const boost::system::system_error& e) {
                          // A cancelled connection (shutdown) is expected, not an error.
                          if (e.code() != asio::error::operation_aborted) {
                            log_event("connection closed after error: " + e.code().message());
                          }
                        } catch (const std::exception& e) {
                          log_event(std::string("connection closed after error: ") + e.what());
                        }
                      });
    }
  }

  void begin_shutdown() {
    if (stopping_.exchange(true)) return;
    asio::co_spawn(io_, shut_down(), asio::detached);
  }

  // Stop accepting; end idle connections at once (total cancellation); let running responses
  // finish until the grace period ends; then cancel them (terminal cancellation: each is
  // aborted, never ended as if complete); exit when every connection is gone.
  asio::awaitable<void> shut_down() {
    log_event("shutting down: no new connections; running downloads may finish for " +
              std::to_string(config_.shutdown_grace.count()) + " ms");
    asio::post(acceptor_strand_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    sessions_.emit(asio::cancellation_type::total);
    if (!co_await sessions_.wait_for(config_.shutdown_grace)) {
      log_event("grace period over: cancelling " + std::to_string(sessions_.size()) +
                " connection(s)");
      sessions_.emit(asio::cancellation_type::terminal);
      if (!co_await sessions_.wait_for(std::chrono::seconds(2))) {
        log_event(std::to_string(sessions_.size()) + " connection(s) did not end; stopping anyway");
      }
    }
    signals_.cancel();
    stop_all();
  }

  const ServerConfig& config_;
  unsigned threads_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  asio::io_context& io_;  // the first context: acceptor, signals, shutdown
  asio::strand<asio::io_context::executor_type> acceptor_strand_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  std::atomic<bool> stopping_{false};
  TaskGroup sessions_;  // every connection's coroutine
  std::unique_ptr<RequestPath> path_;
  SessionContext context_;
};

HttpServer::HttpServer(const ServerConfig& config, const Router& router)
    : impl_(std::make_unique<Impl>(config, router)) {}
HttpServer::~HttpServer() = default;
std::string HttpServer::listen(const std::string& address) { return impl_->listen(address); }
void HttpServer::run() { impl_->run(); }
void HttpServer::stop() { impl_->stop(); }

}  // namespace sluice
