#include "http/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/log.hpp"
#include "core/task_group.hpp"
#include "http/http_metrics.hpp"
#include "http/session.hpp"
#include "http/tls_context.hpp"

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

// Raises the soft descriptor limit to the hard one (a server should not stop accepting at the
// 1,024 a shell gives by default) and returns it.
std::size_t raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    // Linux refuses more than fs.nr_open (1,048,576 by default) even when the hard limit is
    // unlimited: try the hard limit, then that.
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      raised.rlim_cur = std::min<rlim_t>(limit.rlim_max, 1 << 20);
      if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) raised.rlim_cur = limit.rlim_cur;
    }
    limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20
                                         : static_cast<std::size_t>(limit.rlim_cur);
}

// max_connections when the config leaves it at 0: half of the descriptors left after 64 for
// the process itself (log, listeners, database files, the object store), so a busy connection
// has one more for its database connection or stored file.
std::size_t derived_max_connections(std::size_t descriptors) {
  return std::max<std::size_t>(16, descriptors > 64 ? (descriptors - 64) / 2 : 0);
}

// A connection beyond the limit while every connection answers a request: told so in one
// non-blocking write, then closed (a client that already sent its request may see a reset).
template <typename Socket>
void refuse(Socket& socket) {
  static const std::string kRefusal = [] {
    const std::string body =
        R"({"error":"too_many_connections","message":"the server is at max_connections; try again shortly"})";
    return "HTTP/1.1 503 Service Unavailable\r\nServer: sluice\r\nContent-Type: application/json\r\n"
           "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  (void)::send(socket.native_handle(), kRefusal.data(), kRefusal.size(),
               MSG_DONTWAIT | MSG_NOSIGNAL);
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

// An acceptor and what its connections are served with.
struct Listener {
  explicit Listener(const asio::strand<asio::io_context::executor_type>& strand) : acceptor(strand) {}
  tcp::acceptor acceptor;
  std::unique_ptr<RequestPath> path;
  std::unique_ptr<SessionContext> context;
  bool tls = false;  // [server.tls]: the main listener only
};

std::string bind_and_listen(tcp::acceptor& acceptor, const std::string& address) {
  tcp::endpoint endpoint = resolve_listen(address);
  beast::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + address + ": " + ec.message());
  tcp::endpoint bound = acceptor.local_endpoint();
  std::string host = bound.address().to_string();
  if (bound.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(bound.port());
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
        main_(acceptor_strand_),
        ops_(acceptor_strand_),
        signals_(io_, SIGINT, SIGTERM),
        reload_signals_(io_),
        sessions_(io_.get_executor()) {
    main_.path = make_request_path(config, router);
    main_.context = std::make_unique<SessionContext>(
        SessionContext{config, *main_.path, stopping_, connections_});
    if (config.tls) {
      tls_ = make_tls_context(*config.tls);  // a bad file stops the start, naming its key
      main_.tls = true;
    }
    http_metrics();  // every series is listed from the start
    set_log_format(config.log_format == "json" ? LogFormat::kJson : LogFormat::kText);
    const std::size_t descriptors = raise_descriptor_limit();
    max_connections_ = config.max_connections != 0 ? config.max_connections
                                                   : derived_max_connections(descriptors);
    http_metrics().max_connections.set(static_cast<std::int64_t>(max_connections_));
    log_event("descriptor limit " + std::to_string(descriptors) + ", max_connections " +
              std::to_string(max_connections_) +
              (config.max_connections != 0 ? " (configured)" : " (derived)"));
  }

  std::string listen(const std::string& address) { return bind_and_listen(main_.acceptor, address); }

  std::string listen_ops(const std::string& address, const Router& router) {
    ops_.path = make_request_path(config_, router);
    ops_.context = std::make_unique<SessionContext>(
        SessionContext{config_, *ops_.path, stopping_, connections_});
    return bind_and_listen(ops_.acceptor, address);
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
    if (tls_) {
      reload_signals_.add(SIGHUP);
      await_reload();
    }
    asio::co_spawn(acceptor_strand_, accept_loop(main_), asio::detached);
    if (ops_.acceptor.is_open()) asio::co_spawn(acceptor_strand_, accept_loop(ops_), asio::detached);
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
    // Access lines still buffered (a flush posted to a context that stopped first): written now
    // that no thread adds any.
    flush_log_buffers();
  }

  void stop() {
    asio::post(io_, [this] { begin_shutdown(); });
  }

  void on_shutdown(std::function<void()> callback) { on_shutdown_ = std::move(callback); }

 private:
  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(unsigned threads) {
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    for (unsigned i = 0; i < threads; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));
    return contexts;
  }

  void stop_all() {
    for (auto& context : contexts_) context->stop();
  }

  // SIGHUP: the certificate and key files are read again; new connections use them, running
  // ones keep theirs. Files that cannot be used leave the previous context in place.
  void await_reload() {
    reload_signals_.async_wait([this](beast::error_code ec, int) {
      if (ec) return;
      try {
        auto fresh = make_tls_context(*config_.tls);
        {
          const std::lock_guard lock(tls_mutex_);
          tls_ = std::move(fresh);
        }
        log_event("SIGHUP: TLS certificate reloaded from " + config_.tls->certificate.string());
      } catch (const std::exception& e) {
        log_event(std::string("SIGHUP: TLS reload failed, keeping the previous certificate: ") +
                  e.what());
      }
      await_reload();
    });
  }

  std::shared_ptr<asio::ssl::context> current_tls() {
    const std::lock_guard lock(tls_mutex_);
    return tls_;
  }

  asio::awaitable<void> accept_loop(Listener& listener) {
    std::size_t next = 0;
    tcp::acceptor& acceptor = listener.acceptor;
    while (!stopping_.load()) {
      asio::io_context& context = *contexts_[next++ % contexts_.size()];
      auto [ec, socket] =
          co_await acceptor.async_accept(context.get_executor(), asio::as_tuple(use_awaitable));
      if (ec) {
        if (stopping_.load() || ec == asio::error::operation_aborted) break;
        // Out of file descriptors or similar: back off instead of spinning.
        asio::steady_timer pause(acceptor_strand_, std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::as_tuple(use_awaitable));
        continue;
      }
      if (!make_room()) {
        refuse(socket);
        continue;
      }
      socket.set_option(tcp::no_delay(true));
      const asio::any_io_executor executor = socket.get_executor();
      ConnectionRegistry::Handle entry = connections_.add(executor);
      sessions_.spawn(executor,
                      listener.tls ? run_tls_session(beast::tcp_stream(std::move(socket)),
                                                     current_tls(), *listener.context,
                                                     std::move(entry))
                                   : run_session(beast::tcp_stream(std::move(socket)),
                                                 *listener.context, std::move(entry)),
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

  // Below max_connections, or brought there by closing an idle or slow connection; false when
  // every connection answers a request.
  bool make_room() {
    if (connections_.size() < max_connections_) return true;
    const auto& metrics = http_metrics();
    switch (connections_.shed_one()) {
      case ConnectionRegistry::Shed::kIdle: metrics.shed_idle.add(); return true;
      case ConnectionRegistry::Shed::kSlow: metrics.shed_slow.add(); return true;
      case ConnectionRegistry::Shed::kNone: break;
    }
    metrics.refused.add();
    const auto now = std::chrono::steady_clock::now();
    if (now - last_refusal_log_ > std::chrono::seconds(10)) {  // not a line per connection
      last_refusal_log_ = now;
      log_event("refusing connections: all " + std::to_string(max_connections_) +
                " connections (max_connections) are answering requests");
    }
    return false;
  }

  void begin_shutdown() {
    if (stopping_.exchange(true)) return;
    if (on_shutdown_) on_shutdown_();
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
      main_.acceptor.close(ignored);
      ops_.acceptor.close(ignored);
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
    reload_signals_.cancel();
    stop_all();
  }

  const ServerConfig& config_;
  unsigned threads_;
  // What each open connection does, for max_connections. Before the contexts: a connection
  // frame they still hold when they are destroyed deregisters itself.
  ConnectionRegistry connections_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  asio::io_context& io_;  // the first context: acceptor, signals, shutdown
  asio::strand<asio::io_context::executor_type> acceptor_strand_;
  Listener main_;
  Listener ops_;  // [server] ops_listen: /healthz and /metrics, plain HTTP; open once listened
  asio::signal_set signals_;
  asio::signal_set reload_signals_;  // SIGHUP, with [server.tls]
  std::mutex tls_mutex_;
  std::shared_ptr<asio::ssl::context> tls_;  // the context new connections get
  std::atomic<bool> stopping_{false};
  std::function<void()> on_shutdown_;
  std::size_t max_connections_ = 0;
  std::chrono::steady_clock::time_point last_refusal_log_{};  // acceptor strand only
  TaskGroup sessions_;  // every connection's coroutine
};

HttpServer::HttpServer(const ServerConfig& config, const Router& router)
    : impl_(std::make_unique<Impl>(config, router)) {}
HttpServer::~HttpServer() = default;
std::string HttpServer::listen(const std::string& address) { return impl_->listen(address); }
std::string HttpServer::listen_ops(const std::string& address, const Router& router) {
  return impl_->listen_ops(address, router);
}
void HttpServer::run() { impl_->run(); }
void HttpServer::stop() { impl_->stop(); }
void HttpServer::on_shutdown(std::function<void()> callback) {
  impl_->on_shutdown(std::move(callback));
}

}  // namespace sluice
