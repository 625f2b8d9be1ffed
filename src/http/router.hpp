#pragma once

#include <string>
#include <vector>

#include "http/auth.hpp"
#include "http/handler.hpp"

namespace sluice {

// Maps a method and a path to a handler (404 and 405 itself). A route's path is a list of
// segments; a segment "*" matches any one segment, and a last segment "**" matches one or more
// (the rest of the path: /v1/files/{key with slashes}). What a handler throws goes to the request
// path's error mapping (request_path.cpp). Each route states what it requires of the caller
// (`access`, checked before the handler runs; by default the `admin` scope, so that a route
// that forgot to say is closed rather than open).
// Thread-safe after the routes are added.
class Router {
 public:
  void add(std::string method, std::vector<std::string> path, Handler handler,
           Access access = Access::needs("admin"));
  boost::asio::awaitable<void> dispatch(const HttpRequest& request, HttpResponder& responder) const;

  // The server's gatekeeper (identity and limits), for the request path; null: none (tests).
  void set_gatekeeper(const Gatekeeper* gatekeeper) { gatekeeper_ = gatekeeper; }
  const Gatekeeper* gatekeeper() const { return gatekeeper_; }

 private:
  struct Route {
    std::string method;
    std::vector<std::string> path;
    Handler handler;
    Access access;
  };
  // Also lists, in `allowed`, the methods of the routes whose path matches.
  const Route* match(const HttpRequest& request, bool& path_matched, std::string& allowed) const;

  std::vector<Route> routes_;
  const Gatekeeper* gatekeeper_ = nullptr;
};

}  // namespace sluice
