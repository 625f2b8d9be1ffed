#include "http/router.hpp"

#include <string>
#include <utility>

namespace sluice {

void Router::add(std::string method, std::vector<std::string> path, Handler handler,
                 Access access) {
  routes_.push_back(
      Route{std::move(method), std::move(path), std::move(handler), std::move(access)});
}

const Router::Route* Router::match(const HttpRequest& request, bool& path_matched,
                                   std::string& allowed) const {
  path_matched = false;
  allowed.clear();
  for (const Route& route : routes_) {
    const bool rest = !route.path.empty() && route.path.back() == "**";
    if (rest ? request.segments.size() < route.path.size()
             : route.path.size() != request.segments.size()) {
      continue;
    }
    const std::size_t fixed = rest ? route.path.size() - 1 : route.path.size();
    bool same = true;
    for (std::size_t i = 0; i < fixed && same; ++i) {
      same = route.path[i] == "*" || route.path[i] == request.segments[i];
    }
    if (!same) continue;
    path_matched = true;
    allowed += (allowed.empty() ? "" : ", ") + route.method;
    if (route.method == "GET") allowed += ", HEAD";
    bool head_as_get = request.method == "HEAD" && route.method == "GET";
    if (route.method == request.method || head_as_get) return &route;
  }
  return nullptr;
}

namespace {

// 405 (with Allow) or 404.
boost::asio::awaitable<void> not_routed(const HttpRequest& request, HttpResponder& responder,
                                        bool path_matched, std::string allowed) {
  if (path_matched) {
    Headers allow;  // (a braced list inside co_await miscompiles with g++ 12)
    allow.emplace_back("Allow", allowed);
    co_await responder.send_error(405, "method_not_allowed",
                                  "method " + request.method + " is not allowed here; allowed: " +
                                      allowed,
                                  request.request_id, std::move(allow));
  } else {
    co_await responder.send_error(404, "not_found", "no such endpoint", request.request_id);
  }
}

}  // namespace

// Not a coroutine: a routed request runs in its handler's frame, with no frame of the router's
// around it.
boost::asio::awaitable<void> Router::dispatch(const HttpRequest& request,
                                              HttpResponder& responder) const {
  bool path_matched = false;
  std::string allowed;
  const Route* route = match(request, path_matched, allowed);
  if (route != nullptr) {
    check_access(request, route->access);  // throws 401/403 before the handler runs
    return route->handler(request, responder);
  }
  return not_routed(request, responder, path_matched, std::move(allowed));
}

}  // namespace sluice
