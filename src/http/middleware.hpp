#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>

#include "http/handler.hpp"

namespace sluice {

class RequestPath;

// The rest of the request path after one step (the steps after it, then the router). Calling it
// starts them and returns what to await; a malformed target throws from the call (ApiError 400).
// A copy is as good as the original: a step's coroutine keeps it by value in its frame.
class Next {
 public:
  boost::asio::awaitable<void> operator()() const;

 private:
  friend class RequestPath;
  Next(const RequestPath& path, std::size_t step, HttpRequest& request, HttpResponder& responder)
      : path_(&path), step_(step), request_(&request), responder_(&responder) {}

  const RequestPath* path_;
  std::size_t step_;
  HttpRequest* request_;
  HttpResponder* responder_;
};

// One step of the request path; request_path.cpp declares the steps, in order, each with why
// it is there. A step may change the request (its id), answer it itself, or pass it on by
// awaiting `next()` (the rest of the path, ending in the router). What `next` throws reaches the
// step, which may map it (error mapping) or note it and let it through (access log).
// A step with nothing to do after the rest of the path may return `next()` itself instead of
// being a coroutine: it then costs no coroutine frame of its own.
// Thread-safe: one instance serves every request; per-request state lives in handle()'s frame.
class Middleware {
 public:
  virtual ~Middleware() = default;
  virtual boost::asio::awaitable<void> handle(HttpRequest& request, HttpResponder& responder,
                                              Next next) const = 0;
};

}  // namespace sluice
