#pragma once

#include "core/api_error.hpp"
#include "sources/source_error.hpp"

namespace sluice {

// The response for a source failure before the first byte: 503 with Retry-After when a retry
// may succeed (timeout, lost connection, overload, a busy pool, a cancelled query), 400 for a
// value the database rejected, 500 otherwise; the SQLSTATE, when there is one, in the body.
ApiError api_error_from(const SourceError& error);

}  // namespace sluice
