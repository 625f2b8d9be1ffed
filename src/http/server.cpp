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
#include <iostream>
#include <list>
#include <memory>
#include <vector>
#include <mutex>
#include <thread>

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
        router_(router),
        threads_(config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency())),
        contexts_(make_contexts(threads_)),
        io_(*contexts_.front()),
        acceptor_strand_(asio::make_strand(io_)),
        acceptor_(acceptor_strand_),
        signals_(io_, SIGINT, SIGTERM),
        shutdown_timer_(io_) {}

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
      auto handle = std::make_shared<SessionHandle>();
      handle->executor = socket.get_executor();
      register_session(handle);
      asio::co_spawn(handle->executor, session(std::move(socket), handle), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket socket, std::shared_ptr<SessionHandle> handle) {
    beast::tcp_stream stream(std::move(socket));
    handle->stream = &stream;
    SessionContext context{config_, router_, stopping_};
    try {
      co_await run_session(stream, *handle, context);
    } catch (const std::exception& error) {
      std::clog << "connection closed after error: " << error.what() << '\n';
    }
    handle->stream = nullptr;
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    unregister_session(handle);
  }

  void register_session(const std::shared_ptr<SessionHandle>& handle) {
    std::lock_guard lock(mutex_);
    sessions_.push_back(handle);
  }

  void unregister_session(const std::shared_ptr<SessionHandle>& handle) {
    std::lock_guard lock(mutex_);
    sessions_.remove(handle);
  }

  // Closes the connections that match `only_idle` on their own strands.
  void close_sessions(bool only_idle) {
    std::lock_guard lock(mutex_);
    for (const auto& handle : sessions_) {
      asio::post(handle->executor, [handle, only_idle] {
        if (handle->stream != nullptr && (!only_idle || !handle->busy)) handle->stream->close();
      });
    }
  }

  std::size_t session_count() {
    std::lock_guard lock(mutex_);
    return sessions_.size();
  }

  void begin_shutdown() {
    if (stopping_.exchange(true)) return;
    std::clog << "shutting down: no new connections; running downloads may finish for "
              << config_.shutdown_grace.count() << " ms\n";
    asio::post(acceptor_strand_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    close_sessions(true);
    deadline_ = std::chrono::steady_clock::now() + config_.shutdown_grace;
    watch_shutdown();
  }

  // Polls until every connection is gone; past the grace period cancels the rest.
  void watch_shutdown() {
    shutdown_timer_.expires_after(std::chrono::milliseconds(20));
    shutdown_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      auto now = std::chrono::steady_clock::now();
      if (session_count() == 0 || now > deadline_ + std::chrono::seconds(2)) {
        signals_.cancel();
        stop_all();
        return;
      }
      if (now > deadline_ && !cancelled_) {
        cancelled_ = true;
        std::clog << "grace period over: cancelling " << session_count() << " connection(s)\n";
        close_sessions(false);
      } else if (!cancelled_) {
        close_sessions(true);  // connections that went idle since the last look
      }
      watch_shutdown();
    });
  }

  const ServerConfig& config_;
  const Router& router_;
  unsigned threads_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  asio::io_context& io_;  // the first context: acceptor, signals, shutdown timer
  asio::strand<asio::io_context::executor_type> acceptor_strand_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer shutdown_timer_;
  std::chrono::steady_clock::time_point deadline_;
  bool cancelled_ = false;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::list<std::shared_ptr<SessionHandle>> sessions_;
};

HttpServer::HttpServer(const ServerConfig& config, const Router& router)
    : impl_(std::make_unique<Impl>(config, router)) {}
HttpServer::~HttpServer() = default;
std::string HttpServer::listen(const std::string& address) { return impl_->listen(address); }
void HttpServer::run() { impl_->run(); }
void HttpServer::stop() { impl_->stop(); }

}  // namespace sluice
