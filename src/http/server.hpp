#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/config.hpp"
#include "http/router.hpp"

namespace sluice {

// The HTTP/1.1 server: an acceptor and one coroutine per connection on a pool of I/O threads
// (one per core by default), keep-alive, header/body limits, read/idle/write timeouts; HTTPS
// with [server.tls] (certificate reloaded on SIGHUP), an optional operations listener.
// Graceful shutdown on SIGINT/SIGTERM: stop accepting, close idle connections, let running
// responses finish until `shutdown_grace`, then cancel them. A second signal stops at once.
// Beast stays inside the .cpp files.
class HttpServer {
 public:
  HttpServer(const ServerConfig& config, const Router& router);
  ~HttpServer();

  // Binds and listens on HOST:PORT; returns the bound address ("127.0.0.1:43121").
  // Throws std::runtime_error naming the address when it cannot bind.
  std::string listen(const std::string& address);
  // [server] ops_listen: a second, plain-HTTP listener for `router` (the operations routes:
  // /healthz, /metrics), whose request path has no authentication (it is meant for an internal
  // address). `router` must outlive the server. Same errors as listen().
  std::string listen_ops(const std::string& address, const Router& router);
  // Serves until shut down by a signal or by stop(). Blocking.
  void run();
  // Starts a graceful shutdown, as SIGTERM does. Thread-safe.
  void stop();
  // Called once when a graceful shutdown begins (on the server's first thread): other work of
  // the process (background jobs) starts its own grace period then. Set before run().
  void on_shutdown(std::function<void()> callback);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
