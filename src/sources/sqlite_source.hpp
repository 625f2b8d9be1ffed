#pragma once

#include <memory>

#include "core/config.hpp"
#include "sources/source.hpp"

namespace sluice {

// Reads a SQLite database file (read-only). sqlite3_step is synchronous, so each query is
// stepped on a small blocking pool and hands full batches to the consumer through a fixed set
// of recycled batches (the stream's byte budget). A stepping job that finds no free batch
// returns its thread to the pool and is re-posted when the consumer frees one, so slow
// clients park no threads. Cancellation calls sqlite3_interrupt.
// Thread-safe.
std::unique_ptr<Source> make_sqlite_source(const SourceConfig& config);

// The logical type for a SQLite declared column type ("INTEGER", "DECIMAL(12,2)", NULL...).
LogicalType sqlite_logical_type(const char* declared_type);

}  // namespace sluice
