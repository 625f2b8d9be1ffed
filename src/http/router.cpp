#include "http/router.hpp"

#include <exception>
#include <iostream>

#include "core/api_error.hpp"

namespace sluice {

void Router::add(std::string method, std::vector<std::string> path, Handler handler) {
  routes_.push_back(Route{std::move(method), std::move(path), std::move(handler)});
}

const Router::Route* Router::match(const HttpRequest& request, bool& path_matched,
                                   std::string& allowed) const {
  path_matched = false;
  allowed.clear();
  for (const Route& route : routes_) {
    if (route.path.size() != request.segments.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < route.path.size() && same; ++i) {
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

boost::asio::awaitable<void> Router::dispatch(const HttpRequest& request,
                                              HttpResponder& responder) const {
  bool path_matched = false;
  std::string allowed;
  const Route* route = match(request, path_matched, allowed);
  if (route == nullptr) {
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
    co_return;
  }
  // co_await is not allowed inside a catch block: remember the error, answer after it.
  int status = 0;
  std::string code;
  std::string message;
  ApiError::Fields fields;
  ApiError::Fields extra_headers;
  try {
    co_await route->handler(request, responder);
  } catch (const ApiError& error) {
    status = error.status();
    code = error.code();
    message = error.what();
    fields = error.fields();
    extra_headers = error.headers();
  } catch (const std::exception& error) {
    // The details go to the log, not to the client.
    status = 500;
    code = "internal_error";
    message = "internal error; the server log has the details under this request id";
    std::cerr << "request " << request.request_id << " failed: " << error.what() << '\n';
  }
  if (status == 0) co_return;
  if (responder.started()) {
    responder.abort();
    co_return;
  }
  Headers headers{{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
  if (status == 503) headers.emplace_back("Retry-After", "1");
  for (auto& header : extra_headers) headers.push_back(std::move(header));
  co_await responder.send(status, std::move(headers),
                          json_error_body(code, message, request.request_id, fields));
}

}  // namespace sluice
