#pragma once

#include <memory>

#include "core/config.hpp"
#include "sources/source.hpp"

namespace sluice {

// Reads PostgreSQL. Each export borrows a pooled connection and runs, inside one
// `READ ONLY, REPEATABLE READ` transaction with the source's statement_timeout and
// `application_name = 'sluice <request id>'`, `COPY (query) TO STDOUT`, its socket awaited
// by Asio (no thread per stream). Filter values never become SQL text: they are bound as
// parameters of `set_config('sluice.pN', $N, true)` and read back with a typed
// `current_setting('sluice.pN')::type` (COPY itself takes no parameters). Sessions use
// TimeZone UTC and ISO dates, so timestamps read the same whatever the server's settings.
// Thread-safe.
std::unique_ptr<Source> make_pg_source(const SourceConfig& config);

// The logical type for a PostgreSQL type OID (arrays and unknown types: text).
LogicalType pg_logical_type(unsigned oid);

}  // namespace sluice
