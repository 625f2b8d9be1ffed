#pragma once

#include <string>
#include <vector>

#include "http/handler.hpp"

namespace sluice {

// Maps a method and a path to a handler (404 and 405 itself). A route's path is a list of
// segments; a segment "*" matches any one segment, and a last segment "**" matches one or more
// (the rest of the path: /v1/files/{key with slashes}). What a handler throws goes to the request
// path's error mapping (request_path.cpp).
// Thread-safe after the routes are added.
class Router {
 public:
  void add(std::string method, std::vector<std::string> path, Handler handler);
  boost::asio::awaitable<void> dispatch(const HttpRequest& request, HttpResponder& responder) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> path;
    Handler handler;
  };
  // Also lists, in `allowed`, the methods of the routes whose path matches.
  const Route* match(const HttpRequest& request, bool& path_matched, std::string& allowed) const;

  std::vector<Route> routes_;
};

}  // namespace sluice
