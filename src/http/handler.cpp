#include "http/handler.hpp"

#include <boost/json.hpp>
#include <strings.h>

namespace sluice {

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return {};
}

std::string json_error_body(std::string_view code, std::string_view message,
                            std::string_view request_id,
                            const std::vector<std::pair<std::string, std::string>>& fields) {
  boost::json::object error{{"code", code}, {"message", message}, {"request_id", request_id}};
  for (const auto& [name, value] : fields) error[name] = value;
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

}  // namespace sluice
