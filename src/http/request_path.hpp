#pragma once

#include <memory>
#include <vector>

#include "core/config.hpp"
#include "http/middleware.hpp"
#include "http/router.hpp"

namespace sluice {

// What every request goes through: the middleware steps in order, then the router.
// Thread-safe after construction.
class RequestPath {
 public:
  RequestPath(std::vector<std::unique_ptr<Middleware>> steps, const Router& router)
      : steps_(std::move(steps)), router_(router) {}
  boost::asio::awaitable<void> handle(HttpRequest& request, HttpResponder& responder) const;

 private:
  friend class Next;
  // Step `step` of the path, or the router after the last one (not a coroutine: no frame of its
  // own per step).
  boost::asio::awaitable<void> run(std::size_t step, HttpRequest& request,
                                   HttpResponder& responder) const;

  std::vector<std::unique_ptr<Middleware>> steps_;
  const Router& router_;
};

// The server's request path, declared in one place (request_path.cpp). Its authentication step
// is there when the router has a gatekeeper: the operations listener's router ([server]
// ops_listen) has none, so /healthz and /metrics there need no token.
std::unique_ptr<RequestPath> make_request_path(const ServerConfig& config, const Router& router);

}  // namespace sluice
