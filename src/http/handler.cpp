#include "http/handler.hpp"

#include <boost/asio/error.hpp>
#include <boost/json.hpp>
#include <boost/system/system_error.hpp>
#include <strings.h>

#include <stdexcept>

namespace sluice {

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return {};
}

bool HttpRequest::has_token(std::string_view name, std::string_view token) const {
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
  };
  for (const auto& [key, value] : headers) {
    if (!same(key, name)) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      item = item.substr(0, item.find(';'));  // parameters (q=...) do not matter here
      std::size_t first = item.find_first_not_of(" \t");
      if (first == std::string_view::npos) continue;
      item = item.substr(first, item.find_last_not_of(" \t") - first + 1);
      if (same(item, token)) return true;
    }
  }
  return false;
}

bool is_websocket_upgrade(const HttpRequest& request) {
  return request.method == "GET" && request.version == 11 &&
         request.has_token("Connection", "upgrade") && request.has_token("Upgrade", "websocket");
}

boost::asio::awaitable<std::unique_ptr<WebSocket>> HttpResponder::accept_websocket(
    const HttpRequest& /*request*/) {
  throw std::logic_error("this responder cannot accept a WebSocket");
  co_return nullptr;  // NOLINT: unreachable, makes this a coroutine
}

std::string json_error_body(std::string_view code, std::string_view message,
                            std::string_view request_id, const ErrorFields& fields) {
  boost::json::object error{{"code", code}, {"message", message}, {"request_id", request_id}};
  for (const auto& [name, value] : fields) error[name] = value;
  for (const auto& [name, values] : fields.lists) {
    boost::json::array array;
    for (const std::string& value : values) array.emplace_back(value);
    error[name] = std::move(array);
  }
  return boost::json::serialize(boost::json::object{{"error", std::move(error)}});
}

boost::asio::awaitable<void> HttpResponder::send_error(int status, std::string_view code,
                                                       std::string_view message,
                                                       std::string_view request_id,
                                                       Headers extra) {
  extra.emplace_back("Content-Type", "application/json");
  extra.emplace_back("Cache-Control", "no-store");
  co_await send(status, std::move(extra), json_error_body(code, message, request_id));
}

std::string describe_failure(const std::exception& error) {
  if (const auto* system = dynamic_cast<const boost::system::system_error*>(&error)) {
    if (system->code() == boost::asio::error::operation_aborted) return "cancelled";
    return system->code().message();
  }
  return error.what();
}

}  // namespace sluice
