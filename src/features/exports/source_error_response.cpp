#include "features/exports/source_error_response.hpp"

namespace sluice {

ApiError api_error_from(const SourceError& error) {
  using Kind = SourceError::Kind;
  ApiError::Fields fields;
  if (!error.sqlstate().empty()) fields.emplace_back("sqlstate", error.sqlstate());
  const std::string message = std::string("the query failed: ") + error.what();
  switch (error.kind()) {
    case Kind::kTimeout: return ApiError(503, "query_timeout", message, fields);
    case Kind::kUnavailable: return ApiError(503, "database_unavailable", message, fields);
    case Kind::kBusy: return ApiError(503, "database_busy", error.what(), fields);
    case Kind::kCancelled: return ApiError(503, "query_cancelled", message, fields);
    case Kind::kInvalidValue: return ApiError(400, "invalid_value", message, fields);
    case Kind::kFailed: break;
  }
  return ApiError(500, "query_failed", message, fields);
}

}  // namespace sluice
