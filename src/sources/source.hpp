#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/config.hpp"
#include "core/row_batch.hpp"
#include "sources/source_error.hpp"

namespace sluice {

// A value bound to a query parameter. User input only ever reaches a query this way.
using BoundValue = std::variant<std::monostate, std::int64_t, double, std::string>;

struct QuerySpec {
  std::string sql;                 // in the source's dialect, with its placeholders
  std::vector<BoundValue> params;  // one per placeholder, in order
  std::string request_id;          // for logs and the database's application_name
  // The consumer writes CSV and accepts rows that are already CSV records (one cell each,
  // ending in LF): a source may then pass its own CSV through (see BatchReader::csv_records).
  bool csv_records = false;
  // With csv_records: the line ending and formula guard the download asks for (OutputOptions).
  // A source that writes the records itself applies them (BatchReader::csv_records_finished).
  bool csv_crlf = true;
  bool csv_formula_guard = true;
};

// One running query. next() hands out batches in result order until the end of the result.
// Cancellation is one path: cancel() (or destroying the reader) stops the database work at
// once, whatever thread it runs on.
// Thread-safety: next() from one coroutine at a time; cancel() from anywhere.
class BatchReader {
 public:
  virtual ~BatchReader() = default;
  virtual const std::vector<Column>& columns() const = 0;
  // The next batch, or nullptr at the end of the result. The batch is the caller's until the
  // next call to next() or the reader's destruction: it may rewrite cells and append to it
  // (column transforms do). Throws SourceError when the query fails.
  virtual boost::asio::awaitable<RowBatch*> next() = 0;
  // True when next() will complete without waiting for the database: a pipeline flushes what
  // it holds before it waits, so a slow query still delivers its rows as they come.
  virtual bool ready() const = 0;
  // True when next() will complete without waiting long: ready(), or the source is mid-flow and
  // rows came after a moment's wait (a PostgreSQL COPY whose socket ran dry between the
  // server's sends: its gathering sleep, at most about a millisecond). False when rows are not
  // coming soon (the query is thinking), at once or after that moment. A pipeline with a
  // part-filled buffer asks this before it writes, so a fast stream writes large pieces.
  virtual boost::asio::awaitable<bool> ready_soon() { co_return ready(); }
  // True when every row is one cell holding a complete CSV record (RFC 4180 quoting, LF at the
  // end) made by the database itself: only after QuerySpec::csv_records asked for it.
  virtual bool csv_records() const { return false; }
  // True when the csv_records() rows are final: the source wrote them itself, byte for byte as
  // the CSV encoder would, with QuerySpec's line ending (CRLF or LF) and formula guard (a text
  // column's value that starts like a formula after a `'`), so the pipeline copies them.
  virtual bool csv_records_finished() const { return false; }
  // True when every cell the reader hands out is valid UTF-8 (the database validated its text
  // on the way in and sends UTF-8): the pipeline then skips its own check of each batch.
  virtual bool text_valid_utf8() const { return false; }
  virtual void cancel() noexcept = 0;
};

// Per-stream memory limits that a reader must respect.
struct ReadBudget {
  std::size_t batch_bytes = 32 * 1024;  // a batch is handed over once it holds this much
  std::size_t batches_in_flight = 3;    // full batches in flight at most, the consumer's included
  std::size_t first_batch_rows = 16;    // the first batch is small so the first bytes leave at once
};

// A database that datasets read from.
// Thread-safe: shared by all requests.
class Source {
 public:
  virtual ~Source() = default;
  // SQL standing for the n-th (0-based) parameter, whose value has `type`: "?" for SQLite,
  // a typed current_setting() read for PostgreSQL (see pg_source.hpp).
  virtual std::string placeholder(std::size_t index, FilterType type) const = 0;
  // SQL for a column compared with a value of `type` (by =, <, IN ...): SQLite compares
  // timestamps as instants with julianday() and dates with date(), not as text.
  virtual std::string compared_column(const std::string& quoted_column, FilterType type) const {
    (void)type;
    return quoted_column;
  }
  // The columns `sql` returns, with logical types inferred from the source's types.
  // Throws SourceError when the query does not prepare. Blocking: call at start-up.
  virtual std::vector<Column> describe(const std::string& sql) = 0;
  // Starts `query`, whose result has `columns` (from describe(), with overrides applied).
  // Errors in the query are thrown here or from the first next(). `executor` is where the
  // consumer's coroutine runs (a strand or a single-threaded context).
  virtual boost::asio::awaitable<std::unique_ptr<BatchReader>> open(
      QuerySpec query, ReadBudget budget, boost::asio::any_io_executor executor,
      std::vector<Column> columns) = 0;
  // Closes idle connections now, and every connection handed back from now on. Called when
  // the server stopped, while the I/O context their sockets are registered with still exists.
  virtual void close() {}
};

}  // namespace sluice
