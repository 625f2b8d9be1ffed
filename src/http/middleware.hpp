#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>

#include "http/handler.hpp"

namespace sluice {

// One step of the request path; request_path.cpp declares the steps, in order, each with why
// it is there. A step may change the request (its id), answer it itself, or pass it on by
// awaiting `next` (the rest of the path, ending in the router). What `next` throws reaches the
// step, which may map it (error mapping) or note it and let it through (access log).
// Thread-safe: one instance serves every request; per-request state lives in handle()'s frame.
class Middleware {
 public:
  using Next = std::function<boost::asio::awaitable<void>()>;
  virtual ~Middleware() = default;
  virtual boost::asio::awaitable<void> handle(HttpRequest& request, HttpResponder& responder,
                                              const Next& next) const = 0;
};

}  // namespace sluice
