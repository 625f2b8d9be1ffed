#include "core/api_error.hpp"

namespace sluice {

ApiError api_error_from(const SourceError& error) {
  const std::string& state = error.sqlstate();
  std::string message = std::string("the query failed: ") + error.what();
  ApiError::Fields fields;
  if (!state.empty()) fields.emplace_back("sqlstate", state);
  auto in_class = [&](std::string_view prefix) { return state.rfind(prefix, 0) == 0; };
  if (state == "57014") return ApiError(503, "query_timeout", message, fields);
  // Connection exceptions, overload, shutdown, serialization failures: worth a retry.
  if (in_class("08") || in_class("53") || in_class("57P") || state == "40001" ||
      state == "40P01" || state == "55P03") {
    return ApiError(503, "database_unavailable", message, fields);
  }
  if (in_class("22")) return ApiError(400, "invalid_value", message, fields);
  return ApiError(500, "query_failed", message, fields);
}

}  // namespace sluice
