#include "sources/sqlite_source.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sources/source_error.hpp"
#include "sources/source_metrics.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace std::string_literals;

constexpr std::int64_t kBigRows = 100'000;
// Counts far beyond what any test reads: only cancellation ends it in time.
constexpr const char* kEndless =
    "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 1000000000) "
    "SELECT x FROM cnt";

void exec(sqlite3* db, const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  std::string text = message ? message : "";
  sqlite3_free(message);
  ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << text;
}

// A cell as the test compares it: nullopt for NULL.
using Value = std::optional<std::string>;

std::vector<std::vector<Value>> rows_of(const RowBatch& batch) {
  std::vector<std::vector<Value>> rows;
  for (std::size_t r = 0; r < batch.rows(); ++r) {
    std::vector<Value> row;
    for (std::size_t c = 0; c < batch.columns(); ++c) {
      Cell cell = batch.cell(r, c);
      row.push_back(cell.null ? Value() : Value(std::string(cell.value)));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

template <typename T>
struct Outcome {
  bool done = false;
  std::exception_ptr error;
  T value{};
};

// Runs `work` on `io` until it completes or `timeout` passes (done == false then).
template <typename T>
Outcome<T> run(asio::io_context& io, asio::awaitable<T> work, std::chrono::milliseconds timeout) {
  auto outcome = std::make_shared<Outcome<T>>();
  asio::co_spawn(io, std::move(work), [outcome, &io](std::exception_ptr error, T value) {
    outcome->done = true;
    outcome->error = error;
    outcome->value = std::move(value);
    io.stop();
  });
  io.restart();
  io.run_for(timeout);
  Outcome<T> result;
  result.done = outcome->done;
  result.error = outcome->error;
  if (outcome->done) result.value = std::move(outcome->value);
  return result;
}

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const SourceError& e) {
    return std::string("SourceError: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("other exception: ") + e.what();
  }
}

// For conditions another thread changes without telling anyone (the pool's busy gauge).
template <typename Predicate>
bool eventually(Predicate condition, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

asio::awaitable<std::unique_ptr<BatchReader>> open_reader(Source& source, QuerySpec query,
                                                          ReadBudget budget,
                                                          std::vector<Column> columns) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await source.open(std::move(query), budget, executor, std::move(columns));
}

class SqliteSourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() /
                         ("sluice-sqlite-source-" + std::to_string(::getpid())));
    fs::remove_all(*root_);
    fs::create_directories(*root_);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    exec(db, "BEGIN");
    exec(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
    exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                 std::to_string(kBigRows) + ") INSERT INTO big SELECT i, 'name-' || i FROM n");
    exec(db,
         "CREATE TABLE typed(i INTEGER, b BIGINT, d DECIMAL(12,2), n NUMERIC, r REAL, f DOUBLE, "
         "t TEXT, v VARCHAR(10), bl BLOB, bo BOOLEAN, dt DATETIME, ts TIMESTAMP, da DATE, j JSON, "
         "u)");
    exec(db, "CREATE TABLE mixed(pos INTEGER, num INTEGER, txt TEXT, raw BLOB)");
    exec(db,
         "INSERT INTO mixed VALUES (1, 7, 'a', NULL), (2, 'abc', '', X'00FF'), "
         "(3, 2.5, NULL, X''), (4, NULL, 'NULL', 'text'), (5, '', ' ', NULL), "
         "(6, '12', '12', NULL)");
    exec(db, "COMMIT");
    ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*root_);
    delete root_;
    root_ = nullptr;
  }
  static fs::path db_path() { return *root_ / "test.db"; }

  static std::unique_ptr<Source> make_source(unsigned threads = 2) {
    SourceConfig config;
    config.name = "test";
    config.kind = "sqlite";
    config.path = db_path();
    config.blocking_threads = threads;
    return make_sqlite_source(config);
  }

  void SetUp() override { ASSERT_EQ(source_metrics().busy_threads.value(), 0); }

  std::unique_ptr<BatchReader> open(const std::string& sql, std::vector<BoundValue> params,
                                    ReadBudget budget, std::vector<Column> columns) {
    Outcome<std::unique_ptr<BatchReader>> opened =
        run(io_,
            open_reader(*source_, QuerySpec{sql, std::move(params), "test"}, budget,
                        std::move(columns)),
            10s);
    EXPECT_TRUE(opened.done) << "open() did not complete";
    if (opened.error) ADD_FAILURE() << message_of(opened.error);
    return std::move(opened.value);
  }

  Outcome<RowBatch*> next(BatchReader& reader, std::chrono::milliseconds timeout = 20s) {
    return run(io_, reader.next(), timeout);
  }

  // Reads to the end; every row of every batch, or a failure.
  std::vector<std::vector<Value>> read_all(BatchReader& reader) {
    std::vector<std::vector<Value>> rows;
    for (;;) {
      Outcome<RowBatch*> batch = next(reader);
      if (!batch.done) {
        ADD_FAILURE() << "next() did not complete";
        return rows;
      }
      if (batch.error) {
        ADD_FAILURE() << message_of(batch.error);
        return rows;
      }
      if (batch.value == nullptr) return rows;
      for (auto& row : rows_of(*batch.value)) rows.push_back(std::move(row));
    }
  }

  static fs::path* root_;
  // Declared before the source: the source (and its pool) goes first, then the I/O objects.
  asio::io_context io_;
  std::unique_ptr<Source> source_ = make_source();
};

fs::path* SqliteSourceTest::root_ = nullptr;

TEST(SqliteLogicalTypeTest, MapsDeclaredTypes) {
  EXPECT_EQ(sqlite_logical_type("INTEGER"), LogicalType::kInt);
  EXPECT_EQ(sqlite_logical_type("BIGINT"), LogicalType::kInt);
  EXPECT_EQ(sqlite_logical_type("integer"), LogicalType::kInt);
  EXPECT_EQ(sqlite_logical_type("DECIMAL(12,2)"), LogicalType::kDecimal);
  EXPECT_EQ(sqlite_logical_type("NUMERIC"), LogicalType::kDecimal);
  EXPECT_EQ(sqlite_logical_type("REAL"), LogicalType::kFloat);
  EXPECT_EQ(sqlite_logical_type("DOUBLE"), LogicalType::kFloat);
  EXPECT_EQ(sqlite_logical_type("DOUBLE PRECISION"), LogicalType::kFloat);
  EXPECT_EQ(sqlite_logical_type("FLOAT"), LogicalType::kFloat);
  EXPECT_EQ(sqlite_logical_type("TEXT"), LogicalType::kText);
  EXPECT_EQ(sqlite_logical_type("VARCHAR(10)"), LogicalType::kText);
  EXPECT_EQ(sqlite_logical_type("CLOB"), LogicalType::kText);
  EXPECT_EQ(sqlite_logical_type("BLOB"), LogicalType::kBytes);
  EXPECT_EQ(sqlite_logical_type("BOOLEAN"), LogicalType::kBool);
  EXPECT_EQ(sqlite_logical_type("DATETIME"), LogicalType::kTimestamp);
  EXPECT_EQ(sqlite_logical_type("TIMESTAMP"), LogicalType::kTimestamp);
  EXPECT_EQ(sqlite_logical_type("DATE"), LogicalType::kDate);
  EXPECT_EQ(sqlite_logical_type("JSON"), LogicalType::kJson);
  EXPECT_EQ(sqlite_logical_type(""), LogicalType::kText);
  EXPECT_EQ(sqlite_logical_type(nullptr), LogicalType::kText);
}

TEST_F(SqliteSourceTest, PlaceholderIsAQuestionMark) {
  EXPECT_EQ(source_->placeholder(0, FilterType::kText), "?");
  EXPECT_EQ(source_->placeholder(7, FilterType::kInt), "?");
}

TEST_F(SqliteSourceTest, DescribeReturnsNamesAndTypes) {
  std::vector<Column> columns = source_->describe("SELECT * FROM typed");
  std::vector<std::pair<std::string, LogicalType>> expected = {
      {"i", LogicalType::kInt},        {"b", LogicalType::kInt},
      {"d", LogicalType::kDecimal},    {"n", LogicalType::kDecimal},
      {"r", LogicalType::kFloat},      {"f", LogicalType::kFloat},
      {"t", LogicalType::kText},       {"v", LogicalType::kText},
      {"bl", LogicalType::kBytes},     {"bo", LogicalType::kBool},
      {"dt", LogicalType::kTimestamp}, {"ts", LogicalType::kTimestamp},
      {"da", LogicalType::kDate},      {"j", LogicalType::kJson},
      {"u", LogicalType::kText},
  };
  ASSERT_EQ(columns.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(columns[i].name, expected[i].first) << i;
    EXPECT_EQ(columns[i].type, expected[i].second) << columns[i].name;
  }

  // Aliases keep the column's declared type; expressions have none.
  columns = source_->describe("SELECT id AS renamed, name || '!' AS shout FROM big");
  ASSERT_EQ(columns.size(), 2u);
  EXPECT_EQ(columns[0].name, "renamed");
  EXPECT_EQ(columns[0].type, LogicalType::kInt);
  EXPECT_EQ(columns[1].name, "shout");
  EXPECT_EQ(columns[1].type, LogicalType::kText);
}

TEST_F(SqliteSourceTest, DescribeRejectsAQueryThatDoesNotPrepare) {
  try {
    source_->describe("SELECT * FROM no_such_table");
    FAIL() << "no SourceError";
  } catch (const SourceError& error) {
    EXPECT_STREQ(error.what(), "query does not prepare: no such table: no_such_table");
  }
}

TEST_F(SqliteSourceTest, MissingDatabaseFailsAtStartUp) {
  SourceConfig config;
  config.name = "missing";
  config.kind = "sqlite";
  config.path = *root_ / "missing.db";
  config.blocking_threads = 1;
  EXPECT_THROW(make_sqlite_source(config), SourceError);
  EXPECT_FALSE(fs::exists(config.path));  // read-only: never created
}

TEST_F(SqliteSourceTest, ReadsEveryRowInOrderWithinTheBudget) {
  const ReadBudget budget{32 * 1024, 3, 16};
  std::vector<Column> columns = source_->describe("SELECT id, name FROM big ORDER BY id");
  ASSERT_EQ(columns.size(), 2u);
  std::uint64_t read_before = source_metrics().rows_read.value();
  std::unique_ptr<BatchReader> reader =
      open("SELECT id, name FROM big ORDER BY id", {}, budget, columns);
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(reader->columns().size(), 2u);
  EXPECT_EQ(reader->columns()[0].name, "id");
  EXPECT_EQ(reader->columns()[1].type, LogicalType::kText);

  std::int64_t rows = 0;
  std::int64_t id_sum = 0;
  std::size_t batches = 0;
  std::size_t last_arena = 0;
  std::size_t last_rows = 0;
  for (;;) {
    Outcome<RowBatch*> got = next(*reader);
    ASSERT_TRUE(got.done) << "next() did not complete";
    ASSERT_FALSE(got.error) << message_of(got.error);
    const RowBatch* batch = got.value;
    if (batch == nullptr) break;
    ASSERT_EQ(batch->columns(), 2u);
    if (batches == 0) {
      EXPECT_EQ(batch->rows(), budget.first_batch_rows);
    } else {
      // A batch is handed over once full (only the last one may be short), and it goes over
      // the budget by less than its last row.
      // Full means the byte budget, or the row cap that bounds the cell index (8 bytes a
      // cell) to the same budget.
      const std::size_t row_cap = budget.batch_bytes / (8 * 2);
      if (batches >= 2) {
        EXPECT_TRUE(last_arena >= budget.batch_bytes || last_rows == row_cap)
            << "batch " << batches - 1 << " was short: " << last_arena << " bytes, " << last_rows
            << " rows";
      }
      EXPECT_LE(batch->rows(), row_cap);
      ASSERT_GT(batch->rows(), 0u);
      Cell last_id = batch->cell(batch->rows() - 1, 0);
      Cell last_name = batch->cell(batch->rows() - 1, 1);
      std::size_t last_row = last_id.value.size() + last_name.value.size();
      EXPECT_LT(batch->arena_bytes() - last_row, budget.batch_bytes) << "batch " << batches;
    }
    for (std::size_t r = 0; r < batch->rows(); ++r) {
      Cell id = batch->cell(r, 0);
      Cell name = batch->cell(r, 1);
      ASSERT_FALSE(id.null);
      ASSERT_EQ(id.value, std::to_string(rows + 1)) << "row " << rows;
      ASSERT_FALSE(id.as_text);
      ASSERT_EQ(name.value, "name-" + std::to_string(rows + 1));
      id_sum += std::stoll(std::string(id.value));
      ++rows;
    }
    last_arena = batch->arena_bytes();
    last_rows = batch->rows();
    ++batches;
  }
  EXPECT_EQ(rows, kBigRows);
  EXPECT_EQ(id_sum, kBigRows * (kBigRows + 1) / 2);
  EXPECT_GT(batches, 20u);
  EXPECT_EQ(source_metrics().rows_read.value() - read_before, static_cast<std::uint64_t>(kBigRows));
  EXPECT_TRUE(reader->ready());

  // The end stays the end.
  Outcome<RowBatch*> again = next(*reader);
  ASSERT_TRUE(again.done);
  EXPECT_FALSE(again.error);
  EXPECT_EQ(again.value, nullptr);
}

TEST_F(SqliteSourceTest, NullAndEmptyStringStayApartAndTextInNumericColumnsIsMarked) {
  std::vector<Column> columns = source_->describe("SELECT num, txt, raw FROM mixed ORDER BY pos");
  ASSERT_EQ(columns.size(), 3u);
  ASSERT_EQ(columns[0].type, LogicalType::kInt);
  ASSERT_EQ(columns[2].type, LogicalType::kBytes);
  std::unique_ptr<BatchReader> reader =
      open("SELECT num, txt, raw FROM mixed ORDER BY pos", {}, ReadBudget{}, columns);
  ASSERT_NE(reader, nullptr);

  Outcome<RowBatch*> got = next(*reader);
  ASSERT_TRUE(got.done);
  ASSERT_FALSE(got.error) << message_of(got.error);
  const RowBatch* batch = got.value;
  ASSERT_NE(batch, nullptr);
  ASSERT_EQ(batch->rows(), 6u);
  EXPECT_EQ(rows_of(*batch), (std::vector<std::vector<Value>>{
                                 {"7", "a", std::nullopt},
                                 {"abc", "", "\0\xFF"s},
                                 {"2.5", std::nullopt, ""},
                                 {std::nullopt, "NULL", "text"},
                                 {"", " ", std::nullopt},
                                 {"12", "12", std::nullopt},
                             }));
  // Only text that SQLite could not store as a number is marked, and only in numeric columns.
  EXPECT_FALSE(batch->cell(0, 0).as_text);
  EXPECT_TRUE(batch->cell(1, 0).as_text);
  EXPECT_FALSE(batch->cell(2, 0).as_text);  // a REAL in an INTEGER column is still a number
  EXPECT_TRUE(batch->cell(3, 0).null);
  EXPECT_TRUE(batch->cell(4, 0).as_text);   // '' is text, not a number
  EXPECT_FALSE(batch->cell(5, 0).as_text);  // '12' became the integer 12 (INTEGER affinity)
  EXPECT_FALSE(batch->cell(1, 1).null);
  EXPECT_FALSE(batch->cell(1, 1).as_text);
  EXPECT_TRUE(batch->cell(2, 1).null);
  EXPECT_FALSE(batch->cell(1, 2).as_text);
  EXPECT_FALSE(batch->cell(2, 2).null);  // X'' is an empty blob, not NULL

  Outcome<RowBatch*> end = next(*reader);
  ASSERT_TRUE(end.done);
  EXPECT_EQ(end.value, nullptr);
}

TEST_F(SqliteSourceTest, BindsEveryKindOfParameter) {
  std::vector<Column> columns = {{"i", LogicalType::kInt},  {"r", LogicalType::kFloat},
                                 {"t", LogicalType::kText}, {"n", LogicalType::kText},
                                 {"z", LogicalType::kText}, {"m", LogicalType::kInt}};
  std::unique_ptr<BatchReader> reader =
      open("SELECT ?, ?, ?, ?, ?, ?",
           {BoundValue(std::int64_t{42}), BoundValue(2.5), BoundValue("it's \"quoted\""s),
            BoundValue(), BoundValue("a\0b"s), BoundValue(std::int64_t{INT64_MIN})},
           ReadBudget{}, columns);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(read_all(*reader),
            (std::vector<std::vector<Value>>{
                {"42", "2.5", "it's \"quoted\"", std::nullopt, "a\0b"s, "-9223372036854775808"}}));

  // Parameters in a real filter: a range and a text comparison.
  reader =
      open("SELECT id FROM big WHERE id BETWEEN ? AND ? AND name <> ? ORDER BY id",
           {BoundValue(std::int64_t{10}), BoundValue(std::int64_t{14}), BoundValue("name-12"s)},
           ReadBudget{}, {{"id", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(read_all(*reader), (std::vector<std::vector<Value>>{{"10"}, {"11"}, {"13"}, {"14"}}));
}

TEST_F(SqliteSourceTest, RuntimeErrorIsThrownFromNext) {
  std::unique_ptr<BatchReader> reader =
      open("SELECT abs(-9223372036854775808)", {}, ReadBudget{}, {{"x", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  Outcome<RowBatch*> got = next(*reader);
  ASSERT_TRUE(got.done);
  ASSERT_TRUE(got.error) << "no error";
  EXPECT_EQ(message_of(got.error), "SourceError: integer overflow");
  EXPECT_TRUE(reader->ready());
}

TEST_F(SqliteSourceTest, ErrorAfterSomeRowsEndsTheStreamWithAnError) {
  std::unique_ptr<BatchReader> reader = open(
      "SELECT CASE WHEN id < 100 THEN id ELSE abs(-9223372036854775808) END FROM big ORDER BY id",
      {}, ReadBudget{}, {{"x", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  std::int64_t rows = 0;
  for (;;) {
    Outcome<RowBatch*> got = next(*reader);
    ASSERT_TRUE(got.done);
    if (got.error) {
      EXPECT_EQ(message_of(got.error), "SourceError: integer overflow");
      break;
    }
    ASSERT_NE(got.value, nullptr) << "the stream ended without the error";
    for (std::size_t r = 0; r < got.value->rows(); ++r) {
      ASSERT_EQ(got.value->cell(r, 0).value, std::to_string(++rows));
    }
  }
  EXPECT_GE(rows, 16);  // the first batch went out before the failing row was reached
  EXPECT_LT(rows, 100);
}

TEST_F(SqliteSourceTest, QueryThatDoesNotPrepareFailsInNext) {
  std::unique_ptr<BatchReader> reader =
      open("SELECT nope FROM nowhere", {}, ReadBudget{}, {{"nope", LogicalType::kText}});
  ASSERT_NE(reader, nullptr);
  Outcome<RowBatch*> got = next(*reader);
  ASSERT_TRUE(got.done);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(message_of(got.error), "SourceError: query does not prepare: no such table: nowhere");
}

// Counting the endless result needs one sqlite3_step that takes minutes: nothing but
// sqlite3_interrupt can end it.
constexpr const char* kEndlessCount =
    "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 1000000000) "
    "SELECT count(*) FROM cnt";

// Waits until a pool thread has been working on the query for a while. Being inside
// sqlite3_step cannot be observed; 100 ms is far longer than opening and preparing take.
void wait_until_stepping(asio::io_context& io) {
  ASSERT_TRUE(eventually([] { return source_metrics().busy_threads.value() == 1; }));
  asio::steady_timer pause(io, 100ms);
  pause.wait();
  ASSERT_EQ(source_metrics().busy_threads.value(), 1);
}

TEST_F(SqliteSourceTest, CancelInsideALongStepInterruptsIt) {
  std::uint64_t read_before = source_metrics().rows_read.value();
  std::unique_ptr<BatchReader> reader =
      open(kEndlessCount, {}, ReadBudget{}, {{"n", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  wait_until_stepping(io_);
  EXPECT_FALSE(reader->ready());

  auto cancelled_at = std::chrono::steady_clock::now();
  reader->cancel();
  Outcome<RowBatch*> got = next(*reader, 10s);
  ASSERT_TRUE(got.done) << "next() hangs after cancel()";
  ASSERT_TRUE(got.error) << "the count completed";
  EXPECT_EQ(message_of(got.error), "SourceError: query cancelled");
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, 5s);
  EXPECT_TRUE(reader->ready());
  EXPECT_TRUE(eventually([] { return source_metrics().busy_threads.value() == 0; }));
  EXPECT_EQ(source_metrics().rows_read.value(), read_before);

  // Asking again repeats the error; nothing restarts the query.
  Outcome<RowBatch*> again = next(*reader, 10s);
  ASSERT_TRUE(again.done);
  ASSERT_TRUE(again.error);
  EXPECT_EQ(message_of(again.error), "SourceError: query cancelled");
  EXPECT_EQ(source_metrics().busy_threads.value(), 0);
}

TEST_F(SqliteSourceTest, DestroyingAReaderInsideALongStepStopsTheQuery) {
  std::unique_ptr<BatchReader> reader =
      open(kEndlessCount, {}, ReadBudget{}, {{"n", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  wait_until_stepping(io_);
  reader.reset();
  EXPECT_TRUE(eventually([] { return source_metrics().busy_threads.value() == 0; }, 5s))
      << "the query kept running after its reader was destroyed";
}

TEST_F(SqliteSourceTest, DestroyingAReaderWhileItStepsStopsTheQuery) {
  const ReadBudget budget{16 * 1024 * 1024, 3, 16};
  std::unique_ptr<BatchReader> reader = open(kEndless, {}, budget, {{"x", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  Outcome<RowBatch*> first = next(*reader);
  ASSERT_TRUE(first.done);
  ASSERT_NE(first.value, nullptr);
  EXPECT_EQ(source_metrics().busy_threads.value(), 1);
  reader.reset();  // the pool thread is filling the second, 16 MiB batch
  EXPECT_TRUE(eventually([] { return source_metrics().busy_threads.value() == 0; }, 5s))
      << "the query kept running after its reader was destroyed";
  // The pool is free again: another query on it completes.
  reader = open("SELECT count(*) FROM big", {}, ReadBudget{}, {{"n", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(read_all(*reader), (std::vector<std::vector<Value>>{{std::to_string(kBigRows)}}));
}

TEST_F(SqliteSourceTest, DestroyingAParkedReaderReleasesIt) {
  std::unique_ptr<BatchReader> reader =
      open(kEndless, {}, ReadBudget{4096, 3, 16}, {{"x", LogicalType::kInt}});
  ASSERT_NE(reader, nullptr);
  Outcome<RowBatch*> first = next(*reader);
  ASSERT_TRUE(first.done);
  ASSERT_NE(first.value, nullptr);
  ASSERT_TRUE(eventually([&] { return reader->ready(); }));
  ASSERT_TRUE(eventually([] { return source_metrics().busy_threads.value() == 0; }));
  reader.reset();
  EXPECT_EQ(source_metrics().busy_threads.value(), 0);
}

// A reader that waits for its consumer parks no pool thread, so a small pool serves many slow
// streams at once.
TEST_F(SqliteSourceTest, ManySlowReadersShareASmallPool) {
  constexpr int kReaders = 8;
  constexpr std::int64_t kRows = 20'000;
  struct Result {
    std::int64_t rows = 0;
    std::int64_t id_sum = 0;
    bool in_order = true;
    bool done = false;
    int firsts_seen_when_done = -1;
    std::string error;
  };
  std::vector<Result> results(kReaders);
  int firsts = 0;
  int finished = 0;
  const ReadBudget budget{4096, 3, 16};

  auto consume = [&](int index) -> asio::awaitable<void> {
    Result& result = results[static_cast<std::size_t>(index)];
    // Built outside co_await: g++ 12 miscompiles braced lists inside it.
    QuerySpec query;
    query.sql = "SELECT id FROM big WHERE id <= ? ORDER BY id";
    query.params.emplace_back(kRows);
    query.request_id = "r" + std::to_string(index);
    std::vector<Column> columns(1, Column{"id", LogicalType::kInt});
    try {
      auto executor = co_await asio::this_coro::executor;
      std::unique_ptr<BatchReader> reader =
          co_await source_->open(std::move(query), budget, executor, std::move(columns));
      asio::steady_timer slow(executor);
      while (const RowBatch* batch = co_await reader->next()) {
        if (result.rows == 0) ++firsts;
        for (std::size_t r = 0; r < batch->rows(); ++r) {
          std::int64_t id = std::stoll(std::string(batch->cell(r, 0).value));
          result.in_order = result.in_order && id == result.rows + 1;
          result.id_sum += id;
          ++result.rows;
        }
        slow.expires_after(2ms);  // a slow client
        co_await slow.async_wait(asio::use_awaitable);
      }
    } catch (const std::exception& error) {
      result.error = error.what();
    }
    result.done = true;
    result.firsts_seen_when_done = firsts;
    if (++finished == kReaders) io_.stop();
  };
  for (int i = 0; i < kReaders; ++i) asio::co_spawn(io_, consume(i), asio::detached);
  io_.run_for(60s);

  ASSERT_EQ(finished, kReaders) << "some readers starved";
  for (int i = 0; i < kReaders; ++i) {
    const Result& result = results[static_cast<std::size_t>(i)];
    EXPECT_TRUE(result.done) << i;
    EXPECT_EQ(result.error, "") << i;
    EXPECT_EQ(result.rows, kRows) << i;
    EXPECT_EQ(result.id_sum, kRows * (kRows + 1) / 2) << i;
    EXPECT_TRUE(result.in_order) << i;
    // Every stream was under way before the first one finished.
    EXPECT_EQ(result.firsts_seen_when_done, kReaders) << i;
  }
  EXPECT_TRUE(eventually([] { return source_metrics().busy_threads.value() == 0; }));
}

}  // namespace
}  // namespace sluice
