#include "sources/sqlite_source.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <mutex>
#include <string>
#include <thread>

#include "sources/source_error.hpp"
#include "sources/source_metrics.hpp"
#include "core/channel.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;
using StmtHandle = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

DbHandle open_readonly(const std::filesystem::path& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) {
    throw SourceError("cannot open SQLite database " + path.string() + ": " +
                      (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  // A sequential scan gains little from a large page cache, and 200 streams with SQLite's
  // 2 MB default would cost 400 MB; the OS page cache keeps the file warm anyway. 64 KiB
  // keeps a scan's working set (measured: 207 KiB per connection in all at -64, 378 at -256).
  sqlite3_exec(db.get(), "PRAGMA cache_size=-64", nullptr, nullptr, nullptr);
  return db;
}

StmtHandle prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), 0, &raw, nullptr) !=
      SQLITE_OK) {
    throw SourceError(std::string("query does not prepare: ") + sqlite3_errmsg(db));
  }
  return StmtHandle(raw);
}

void bind_params(sqlite3_stmt* stmt, const std::vector<BoundValue>& params) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    int index = static_cast<int>(i + 1);
    const BoundValue& value = params[i];
    if (auto* integer = std::get_if<std::int64_t>(&value)) {
      sqlite3_bind_int64(stmt, index, *integer);
    } else if (auto* real = std::get_if<double>(&value)) {
      sqlite3_bind_double(stmt, index, *real);
    } else if (auto* text = std::get_if<std::string>(&value)) {
      sqlite3_bind_text(stmt, index, text->data(), static_cast<int>(text->size()), SQLITE_STATIC);
    } else {
      sqlite3_bind_null(stmt, index);
    }
  }
}

using BatchChannel = Channel<RowBatch>;

std::exception_ptr cancelled_error() {
  return std::make_exception_ptr(SourceError(SourceError::Kind::kCancelled, "query cancelled"));
}

// The producer of one query: steps it on the source's blocking pool into row batches, pushed
// through a channel bounded to the read budget. When the channel is full the job returns its
// thread and is posted again once the consumer frees space, so a slow client parks no thread.
// The job holds a shared_ptr: the database stays open until the job has returned, even when
// the consumer is gone.
class SqliteQuery : public std::enable_shared_from_this<SqliteQuery> {
 public:
  SqliteQuery(QuerySpec query, ReadBudget budget, std::filesystem::path path,
              std::vector<Column> columns, asio::thread_pool& pool,
              std::shared_ptr<BatchChannel> channel)
      : query_(std::move(query)),
        budget_(budget),
        path_(std::move(path)),
        columns_(std::move(columns)),
        pool_(pool),
        channel_(std::move(channel)) {}

  const std::vector<Column>& columns() const { return columns_; }

  void start() { asio::post(pool_, [self = shared_from_this()] { self->step(); }); }

  // Interrupts a step in progress (the channel's cancel() ends a parked job).
  void interrupt() noexcept {
    std::lock_guard lock(db_mutex_);
    if (db_) sqlite3_interrupt(db_.get());
  }

 private:
  // Runs on a pool thread: fills batches until the channel is full, the result ends, or the
  // consumer cancelled.
  void step() {
    source_metrics().busy_threads.add(1);
    try {
      if (!stmt_ && !channel_->cancelled()) open_statement();
      for (;;) {
        if (channel_->cancelled()) {
          close_database();
          break;
        }
        if (!channel_->has_space()) {
          // Posted again when the consumer frees space or cancels. Nothing of this object is
          // touched after a successful registration: the next job may already run.
          if (channel_->when_space([self = shared_from_this()] { self->start(); })) break;
          continue;
        }
        RowBatch batch = channel_->take_spare().value_or(RowBatch{});
        // A huge row made this batch large; give the memory back so the budget holds again.
        batch.shrink_to(budget_.batch_bytes * 2, 8192);
        const bool done = fill(batch);
        const std::size_t bytes = batch.budget_bytes();
        channel_->push(std::move(batch), bytes);
        if (done) {
          channel_->close();
          close_database();
          break;
        }
      }
    } catch (const std::exception& error) {
      channel_->fail(channel_->cancelled() ? cancelled_error() : std::current_exception());
      close_database();
    }
    source_metrics().busy_threads.sub(1);
  }

  void close_database() {
    std::lock_guard lock(db_mutex_);
    stmt_.reset();
    db_.reset();
  }

  void open_statement() {
    DbHandle db = open_readonly(path_);
    StmtHandle stmt = prepare(db.get(), query_.sql);
    bind_params(stmt.get(), query_.params);
    std::lock_guard lock(db_mutex_);
    db_ = std::move(db);
    stmt_ = std::move(stmt);
  }

  // Steps rows into `batch` until it holds the batch budget; returns true at the end of the
  // result. Throws SourceError on a failed step (including an interrupt).
  bool fill(RowBatch& batch) {
    sqlite3_stmt* stmt = stmt_.get();
    const std::size_t columns = columns_.size();
    batch.reset(columns);
    // Rows of NULLs or empty strings add no arena bytes: the cell index is bounded too.
    const std::size_t max_rows =
        first_batch_ ? budget_.first_batch_rows
                     : std::max<std::size_t>(16, budget_.batch_bytes / (8 * std::max<std::size_t>(columns, 1)));
    first_batch_ = false;
    std::size_t rows = 0;
    bool done = false;
    while (batch.arena_bytes() < budget_.batch_bytes && rows < max_rows) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        done = true;
        break;
      }
      if (rc != SQLITE_ROW) {
        const int code = sqlite3_errcode(sqlite3_db_handle(stmt));
        throw SourceError(code == SQLITE_BUSY || code == SQLITE_LOCKED
                              ? SourceError::Kind::kUnavailable
                              : SourceError::Kind::kFailed,
                          sqlite3_errmsg(sqlite3_db_handle(stmt)));
      }
      for (std::size_t c = 0; c < columns; ++c) add_cell(batch, stmt, static_cast<int>(c));
      ++rows;
    }
    source_metrics().rows_read.add(rows);
    return done;
  }

  void add_cell(RowBatch& batch, sqlite3_stmt* stmt, int column) {
    int storage = sqlite3_column_type(stmt, column);
    if (storage == SQLITE_NULL) {
      batch.add_null();
      return;
    }
    // Numbers are rendered here rather than by sqlite3_column_text, whose printf-style
    // conversion was a fifth of the export's CPU. Doubles get the shortest text that reads back
    // as the same value (SQLite's own rounds to 15 digits: 0.30000000000000004 became 0.3).
    if (storage == SQLITE_INTEGER || storage == SQLITE_FLOAT) {
      char buffer[32];
      char* end = nullptr;
      if (storage == SQLITE_INTEGER) {
        end = std::to_chars(buffer, buffer + sizeof buffer, sqlite3_column_int64(stmt, column)).ptr;
      } else if (double value = sqlite3_column_double(stmt, column); std::isfinite(value)) {
        end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
      }
      if (end != nullptr) {
        batch.add_value(std::string_view(buffer, static_cast<std::size_t>(end - buffer)));
        return;
      }
    }
    const char* data = storage == SQLITE_BLOB
                           ? static_cast<const char*>(sqlite3_column_blob(stmt, column))
                           : reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
    std::size_t size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, column));
    if (size > RowBatch::kMaxCellBytes) throw SourceError("a value exceeds 1 GiB");
    // SQLite keeps any value in any column: text in a numeric column must stay a string.
    bool as_text = is_numeric(columns_[static_cast<std::size_t>(column)].type) &&
                   storage != SQLITE_INTEGER && storage != SQLITE_FLOAT;
    batch.add_value(std::string_view(data == nullptr ? "" : data, size), as_text);
  }

  QuerySpec query_;
  ReadBudget budget_;
  std::filesystem::path path_;
  std::vector<Column> columns_;
  asio::thread_pool& pool_;
  std::shared_ptr<BatchChannel> channel_;

  std::mutex db_mutex_;  // guards db_/stmt_ lifetime against interrupt() from other threads
  DbHandle db_;
  StmtHandle stmt_;
  bool first_batch_ = true;  // touched only by the stepping job (one at a time)
};

// The consumer's end: batches from the channel; cancel() (or destruction) stops the query.
class SqliteReader final : public BatchReader {
 public:
  SqliteReader(std::shared_ptr<SqliteQuery> query, std::shared_ptr<BatchChannel> channel)
      : query_(std::move(query)), channel_(std::move(channel)) {}
  ~SqliteReader() override { cancel(); }

  const std::vector<Column>& columns() const override { return query_->columns(); }
  asio::awaitable<RowBatch*> next() override { return channel_->next(); }
  bool ready() const override { return channel_->ready(); }
  void cancel() noexcept override {
    channel_->cancel(cancelled_error());
    query_->interrupt();
  }

 private:
  std::shared_ptr<SqliteQuery> query_;
  std::shared_ptr<BatchChannel> channel_;
};

class SqliteSource final : public Source {
 public:
  explicit SqliteSource(const SourceConfig& config)
      : path_(config.path), pool_(thread_count(config.blocking_threads)) {
    open_readonly(path_);  // fail at start-up, not at the first request
  }
  ~SqliteSource() override { pool_.join(); }

  // Timestamps are stored as text in any ISO 8601 form ("...T12:00:00Z", "... 12:00:00+02:00"):
  // comparing text would be wrong across offsets and precisions, so both sides become
  // instants. (An index on such a column is not used; correctness first.)
  std::string placeholder(std::size_t /*index*/, FilterType type) const override {
    if (type == FilterType::kTimestamp) return "julianday(?)";
    return type == FilterType::kDecimal ? "CAST(? AS NUMERIC)" : "?";
  }
  std::string compared_column(const std::string& quoted_column, FilterType type) const override {
    if (type == FilterType::kTimestamp) return "julianday(" + quoted_column + ")";
    if (type == FilterType::kDate) return "date(" + quoted_column + ")";
    return quoted_column;
  }

  std::vector<Column> describe(const std::string& sql) override {
    DbHandle db = open_readonly(path_);
    StmtHandle stmt = prepare(db.get(), sql);
    std::vector<Column> columns;
    int count = sqlite3_column_count(stmt.get());
    columns.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      columns.push_back(Column{sqlite3_column_name(stmt.get(), i),
                               sqlite_logical_type(sqlite3_column_decltype(stmt.get(), i))});
    }
    return columns;
  }

  asio::awaitable<std::unique_ptr<BatchReader>> open(QuerySpec query, ReadBudget budget,
                                                     asio::any_io_executor executor,
                                                     std::vector<Column> columns) override {
    // Room for `batches_in_flight` full batches, counting the one the consumer holds: the job
    // fills the next while the consumer encodes one.
    auto channel = std::make_shared<BatchChannel>(
        executor, std::max<std::size_t>(budget.batches_in_flight, 1) * budget.batch_bytes,
        [](RowBatch& dropped) { source_metrics().rows_discarded.add(dropped.rows()); });
    auto producer = std::make_shared<SqliteQuery>(std::move(query), budget, path_,
                                                  std::move(columns), pool_, channel);
    producer->start();
    co_return std::make_unique<SqliteReader>(std::move(producer), std::move(channel));
  }

 private:
  static std::size_t thread_count(unsigned configured) {
    if (configured != 0) return configured;
    return std::max(2u, std::thread::hardware_concurrency() * 2);
  }

  std::filesystem::path path_;
  asio::thread_pool pool_;
};

bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

LogicalType sqlite_logical_type(const char* declared_type) {
  if (declared_type == nullptr) return LogicalType::kText;
  std::string type(declared_type);
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  // Order matters: SQLite's own affinity rules test INT first; we refine the others.
  if (contains(type, "INT")) return LogicalType::kInt;
  if (contains(type, "BOOL")) return LogicalType::kBool;
  if (contains(type, "DATETIME") || contains(type, "TIMESTAMP")) return LogicalType::kTimestamp;
  if (contains(type, "DATE")) return LogicalType::kDate;
  if (contains(type, "JSON")) return LogicalType::kJson;
  if (contains(type, "CHAR") || contains(type, "CLOB") || contains(type, "TEXT")) {
    return LogicalType::kText;
  }
  if (contains(type, "BLOB")) return LogicalType::kBytes;
  if (contains(type, "REAL") || contains(type, "FLOA") || contains(type, "DOUB")) {
    return LogicalType::kFloat;
  }
  if (contains(type, "DEC") || contains(type, "NUMERIC")) return LogicalType::kDecimal;
  return LogicalType::kText;
}

std::unique_ptr<Source> make_sqlite_source(const SourceConfig& config) {
  return std::make_unique<SqliteSource>(config);
}

}  // namespace sluice
