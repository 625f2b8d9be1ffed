#include "sources/sqlite_source.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "core/api_error.hpp"
#include "core/metrics.hpp"
#include "core/wake_signal.hpp"

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

bool is_numeric(LogicalType type) {
  return type == LogicalType::kInt || type == LogicalType::kDecimal || type == LogicalType::kFloat;
}

// Shared between the consumer (a coroutine) and the stepping job (a pool thread). The job
// holds a shared_ptr, so the database stays open until the job has returned, even when the
// consumer is gone.
class ReadState : public std::enable_shared_from_this<ReadState> {
 public:
  ReadState(QuerySpec query, ReadBudget budget, std::filesystem::path path,
            std::vector<Column> columns, asio::thread_pool& pool,
            const asio::any_io_executor& executor)
      : query_(std::move(query)),
        budget_(budget),
        path_(std::move(path)),
        columns_(std::move(columns)),
        pool_(pool),
        wake_(std::make_shared<WakeSignal>(executor)),
        batches_(std::max<std::size_t>(budget.batches_in_flight, 1)) {
    for (RowBatch& batch : batches_) free_.push_back(&batch);
  }

  const std::vector<Column>& columns() const { return columns_; }

  void start() {
    std::lock_guard lock(mutex_);
    schedule_locked();
  }

  asio::awaitable<RowBatch*> next() {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (handed_out_ != nullptr) {
          recycle_locked(handed_out_);
          handed_out_ = nullptr;
        }
        if (!ready_.empty()) {
          handed_out_ = ready_.front();
          ready_.pop_front();
          schedule_locked();
          co_return handed_out_;
        }
        if (finished_) {
          if (!error_.empty()) throw SourceError(error_);
          co_return nullptr;
        }
      }
      co_await wake_->wait();
    }
  }

  bool ready() const {
    std::lock_guard lock(mutex_);
    return !ready_.empty() || finished_;
  }

  void cancel() noexcept {
    cancelled_.store(true);
    {
      // A parked stream has no stepping job that would notice: end it here.
      std::lock_guard lock(mutex_);
      if (!stepping_ && !finished_) finish_locked("query cancelled");
    }
    wake_->notify();
    std::lock_guard lock(db_mutex_);
    if (db_) sqlite3_interrupt(db_.get());
  }

 private:
  void schedule_locked() {
    if (stepping_ || finished_ || free_.empty() || cancelled_.load()) return;
    stepping_ = true;
    asio::post(pool_, [self = shared_from_this()] { self->step_batches(); });
  }

  void recycle_locked(RowBatch* batch) {
    // A huge row made this batch large; give the memory back so the budget holds again.
    batch->shrink_to(budget_.batch_bytes * 2, 8192);
    free_.push_back(batch);
  }

  // Runs on a pool thread: fills free batches until none is left, the result ends or the
  // stream is cancelled.
  void step_batches() {
    metrics().busy_source_threads.fetch_add(1, std::memory_order_relaxed);
    try {
      if (!stmt_) open_statement();
      for (;;) {
        bool ended = false;
        RowBatch* batch = nullptr;
        {
          std::lock_guard lock(mutex_);
          if (cancelled_.load() && !finished_) {
            finish_locked("query cancelled");
            ended = true;
          }
          if (free_.empty() || finished_) {
            stepping_ = false;
          } else {
            batch = free_.back();
            free_.pop_back();
          }
        }
        if (batch == nullptr) {
          if (ended) wake_->notify();  // the consumer may be waiting for this end
          break;
        }
        bool done = fill(*batch);
        {
          std::lock_guard lock(mutex_);
          ready_.push_back(batch);
          if (done) finish_locked({});
          if (done) stepping_ = false;
        }
        wake_->notify();
        if (done) break;
      }
    } catch (const std::exception& error) {
      {
        std::lock_guard lock(mutex_);
        finish_locked(cancelled_.load() ? "query cancelled" : error.what());
        stepping_ = false;
      }
      wake_->notify();
    }
    metrics().busy_source_threads.fetch_sub(1, std::memory_order_relaxed);
  }

  void finish_locked(std::string error) {
    finished_ = true;
    error_ = std::move(error);
    std::lock_guard db_lock(db_mutex_);
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
    if (cancelled_.load()) sqlite3_interrupt(db_.get());
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
      if (rc != SQLITE_ROW) throw SourceError(sqlite3_errmsg(sqlite3_db_handle(stmt)));
      for (std::size_t c = 0; c < columns; ++c) add_cell(batch, stmt, static_cast<int>(c));
      ++rows;
    }
    metrics().rows_read_total.fetch_add(rows, std::memory_order_relaxed);
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
  std::shared_ptr<WakeSignal> wake_;
  std::atomic<bool> cancelled_{false};

  std::mutex db_mutex_;  // guards db_/stmt_ lifetime against cancel() from other threads
  DbHandle db_;
  StmtHandle stmt_;
  bool first_batch_ = true;  // touched only by the stepping job

  mutable std::mutex mutex_;  // guards everything below
  std::vector<RowBatch> batches_;
  std::vector<RowBatch*> free_;
  std::deque<RowBatch*> ready_;
  RowBatch* handed_out_ = nullptr;
  bool stepping_ = false;
  bool finished_ = false;
  std::string error_;
};

class SqliteReader final : public BatchReader {
 public:
  explicit SqliteReader(std::shared_ptr<ReadState> state) : state_(std::move(state)) {}
  ~SqliteReader() override { state_->cancel(); }

  const std::vector<Column>& columns() const override { return state_->columns(); }
  asio::awaitable<RowBatch*> next() override { return state_->next(); }
  bool ready() const override { return state_->ready(); }
  void cancel() noexcept override { state_->cancel(); }

 private:
  std::shared_ptr<ReadState> state_;
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
    auto state = std::make_shared<ReadState>(std::move(query), budget, path_, std::move(columns),
                                             pool_, executor);
    state->start();
    co_return std::make_unique<SqliteReader>(std::move(state));
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
