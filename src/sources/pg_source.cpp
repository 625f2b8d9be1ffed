#include "sources/pg_source.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <charconv>
#include <optional>

#include "sources/source_metrics.hpp"
#include "sources/pg_binary_decoder.hpp"
#include "sources/pg_pool.hpp"
#include "sources/pg_text_decoder.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

std::string_view pg_type_name(FilterType type) {
  switch (type) {
    case FilterType::kInt: return "bigint";
    case FilterType::kDecimal: return "numeric";
    case FilterType::kFloat: return "double precision";
    case FilterType::kBool: return "boolean";
    case FilterType::kDate: return "date";
    case FilterType::kTimestamp: return "timestamptz";
    case FilterType::kText: return "text";
  }
  return "text";
}

std::string param_text(const BoundValue& value) {
  if (auto* integer = std::get_if<std::int64_t>(&value)) return std::to_string(*integer);
  if (auto* real = std::get_if<double>(&value)) {
    char buffer[32];
    auto end = std::to_chars(buffer, buffer + sizeof buffer, *real).ptr;
    return std::string(buffer, end);
  }
  if (auto* text = std::get_if<std::string>(&value)) return *text;
  return {};
}

// Session settings that make text output independent of the server's configuration.
std::string with_session_options(const std::string& url) {
  std::string options =
      "options='-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres "
      "-c extra_float_digits=1 -c bytea_output=hex' client_encoding=UTF8";
  // A URL takes its options as query parameters; a key=value string takes them appended.
  if (url.find("://") != std::string::npos) {
    std::string encoded =
        "options=-c%20TimeZone%3DUTC%20-c%20DateStyle%3DISO%2CYMD%20-c%20IntervalStyle%3Dpostgres"
        "%20-c%20extra_float_digits%3D1%20-c%20bytea_output%3Dhex&client_encoding=UTF8";
    return url + (url.find('?') == std::string::npos ? "?" : "&") + encoded;
  }
  return url + " " + options;
}

// The binary layouts of `columns`, or nullopt when one of them has none (text format then).
std::optional<std::vector<PgWire>> binary_layout(const std::vector<Column>& columns) {
  std::vector<PgWire> layout;
  for (const Column& column : columns) {
    std::optional<PgWire> wire = pg_wire_type(column.source_type);
    if (!wire) return std::nullopt;
    layout.push_back(*wire);
  }
  return layout;
}

// How the rows of a COPY arrive: binary (decoded here into cells, or into CSV records when the
// download is CSV), text (decoded here) or CSV records that pass through to the client untouched.
enum class CopyMode { kBinary, kText, kCsvRecords, kBinaryCsvRecords };

class PgReader final : public BatchReader {
 public:
  PgReader(PgLease lease, std::vector<Column> columns, ReadBudget budget, CopyMode mode,
           std::optional<std::vector<PgWire>> binary, CsvRecordStyle style)
      : lease_(std::move(lease)), columns_(std::move(columns)), budget_(budget), mode_(mode),
        valid_utf8_(lease_->sends_valid_utf8()) {
    if (binary) binary_.emplace(std::move(*binary), std::move(style));
  }
  bool csv_records() const override {
    return mode_ == CopyMode::kCsvRecords || mode_ == CopyMode::kBinaryCsvRecords;
  }
  bool csv_records_finished() const override { return mode_ == CopyMode::kBinaryCsvRecords; }
  // The decoders add only ASCII of their own (numbers, dates, hex, escapes undone).
  bool text_valid_utf8() const override { return valid_utf8_; }
  ~PgReader() override {
    if (!done_) lease_->cancel();
  }

  const std::vector<Column>& columns() const override { return columns_; }

  asio::awaitable<RowBatch*> next() override {
    if (done_) co_return nullptr;
    const std::size_t cells_per_row = csv_records() ? 1 : columns_.size();
    batch_.reset(cells_per_row);
    // Rows of NULLs add no arena bytes: the cell index (8 bytes a cell) is bounded too.
    const std::size_t max_rows =
        first_ ? budget_.first_batch_rows
               : std::max<std::size_t>(16, budget_.batch_bytes / (8 * std::max<std::size_t>(cells_per_row, 1)));
    first_ = false;
    std::size_t rows = 0;
    while (batch_.arena_bytes() < budget_.batch_bytes && rows < max_rows) {
      int got = peeked_;
      peeked_ = 0;
      if (got == 0) got = lease_->try_read_copy_row(row_);
      if (got == 0 && rows > 0) break;  // hand over what arrived rather than wait
      if (got == 0) got = co_await lease_->read_copy_row(row_) ? 1 : -2;
      if (got == -1) co_await lease_->finish_copy();
      if (got < 0) {
        co_await end_transaction();
        break;
      }
      if (mode_ == CopyMode::kBinary) {
        rows += binary_->decode(row_.view(), batch_);
      } else if (mode_ == CopyMode::kBinaryCsvRecords) {
        rows += binary_->decode_csv_record(row_.view(), batch_);
      } else if (mode_ == CopyMode::kText) {
        decode_copy_text_row(row_.view(), columns_.size(), batch_);
        ++rows;
      } else {
        batch_.add_value(row_.view());
        ++rows;
      }
    }
    source_metrics().rows_read.add(rows);
    co_return rows == 0 ? nullptr : &batch_;
  }

  bool ready() const override {
    if (done_ || peeked_ == 1) return true;
    if (peeked_ == 0) peeked_ = lease_->try_read_copy_row(row_);
    return peeked_ == 1;  // at the end (-1) next() finishes the COPY, which may wait
  }

  asio::awaitable<bool> ready_soon() override {
    if (ready()) co_return true;
    if (done_ || peeked_ != 0) co_return false;  // the COPY ended: next() finishes it
    const bool gathered = co_await lease_->gather_rows();
    co_return gathered && ready();
  }

  void cancel() noexcept override {
    if (!done_) lease_->cancel();
  }

 private:
  asio::awaitable<void> end_transaction() {
    done_ = true;
    co_await lease_->exec("COMMIT");
  }

  PgLease lease_;
  std::vector<Column> columns_;
  ReadBudget budget_;
  RowBatch batch_;
  CopyMode mode_;
  std::optional<PgBinaryDecoder> binary_;  // kBinary and kBinaryCsvRecords only
  mutable CopyRow row_;
  mutable int peeked_ = 0;  // what ready() saw: 1 = row_ holds a row, -1 = the COPY ended
  bool valid_utf8_;
  bool first_ = true;
  bool done_ = false;
};

class PgSource final : public Source {
 public:
  explicit PgSource(const SourceConfig& config)
      : config_(config),
        pool_(std::make_shared<PgPool>(PgPoolOptions{with_session_options(config.url),
                                                     config.pool_size, config.pool_timeout,
                                                     config.connect_timeout})) {}

  std::string placeholder(std::size_t index, FilterType type) const override {
    return "current_setting('sluice.p" + std::to_string(index + 1) + "')::" +
           std::string(pg_type_name(type));
  }

  // A date filter on a timestamp column means "that day" (in UTC, the session's zone).
  std::string compared_column(const std::string& quoted_column, FilterType type) const override {
    return type == FilterType::kDate ? "(" + quoted_column + ")::date" : quoted_column;
  }

  void close() override { pool_->close(); }

  std::vector<Column> describe(const std::string& sql) override {
    asio::io_context io;
    std::vector<Column> columns;
    std::exception_ptr failure;
    asio::co_spawn(io, describe_async(sql, columns), [&](std::exception_ptr error) {
      failure = std::move(error);
    });
    io.run();
    if (failure) std::rethrow_exception(failure);
    return columns;
  }

  asio::awaitable<std::unique_ptr<BatchReader>> open(QuerySpec query, ReadBudget budget,
                                                     asio::any_io_executor /*executor*/,
                                                     std::vector<Column> columns) override {
    // A pooled connection may have died with a server restart: one retry on a fresh one.
    for (int attempt = 0;; ++attempt) {
      PgLease lease = co_await pool_->acquire();
      try {
        co_await begin(*lease, query);
        std::optional<std::vector<PgWire>> binary;
        CopyMode mode = CopyMode::kText;
        if (query.csv_records && config_.copy_format == "csv") {
          mode = CopyMode::kCsvRecords;
        } else if (config_.copy_format != "text" && (binary = binary_layout(columns))) {
          // A CSV download takes each row as the record the decoder writes (no cell index, no
          // second pass over every cell); a row of no columns has no record.
          mode = query.csv_records && !columns.empty() ? CopyMode::kBinaryCsvRecords
                                                       : CopyMode::kBinary;
        }
        static constexpr std::string_view kOptions[] = {" (FORMAT binary)", "", " (FORMAT csv)",
                                                        " (FORMAT binary)"};
        co_await lease->start_copy("COPY (" + query.sql + ") TO STDOUT" +
                                   std::string(kOptions[static_cast<int>(mode)]));
        CsvRecordStyle style;
        if (mode == CopyMode::kBinaryCsvRecords) {
          style.crlf = query.csv_crlf;
          // The CSV encoder's guard: every column but a numeric one.
          for (const Column& column : columns) {
            style.guarded.push_back(query.csv_formula_guard && !is_numeric(column.type));
          }
        }
        co_return std::make_unique<PgReader>(std::move(lease), std::move(columns), budget, mode,
                                             std::move(binary), std::move(style));
      } catch (const PgError& error) {
        if (!error.connection_lost() || attempt > 0) throw;
        pool_->discard_idle();  // the others died with it: retry on a fresh connection
      }
    }
  }

 private:
  asio::awaitable<void> begin(PgConnection& connection, const QuerySpec& query) {
    co_await connection.exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = " +
                             std::to_string(config_.statement_timeout.count()));
    std::string sql = "SELECT set_config('application_name', $1, true)";
    std::vector<std::string> params{"sluice " + query.request_id};
    for (std::size_t i = 0; i < query.params.size(); ++i) {
      sql += ", set_config('sluice.p" + std::to_string(i + 1) + "', $" + std::to_string(i + 2) + ", true)";
      params.push_back(param_text(query.params[i]));
    }
    co_await connection.exec(sql, params);
  }

  asio::awaitable<void> describe_async(const std::string& sql, std::vector<Column>& columns) {
    auto connection = co_await PgConnection::connect(with_session_options(config_.url),
                                                     config_.connect_timeout);
    PgResult result = co_await connection->exec("SELECT * FROM (" + sql + ") AS sluice_rows LIMIT 0");
    int count = PQnfields(result.get());
    for (int i = 0; i < count; ++i) {
      Oid oid = PQftype(result.get(), i);
      columns.push_back(Column{PQfname(result.get(), i), pg_logical_type(oid), oid});
    }
  }

  SourceConfig config_;
  std::shared_ptr<PgPool> pool_;
};

}  // namespace

LogicalType pg_logical_type(unsigned oid) {
  switch (oid) {
    case 16: return LogicalType::kBool;
    case 20: case 21: case 23: case 26: return LogicalType::kInt;
    case 700: case 701: return LogicalType::kFloat;
    case 1700: return LogicalType::kDecimal;
    case 1082: return LogicalType::kDate;
    case 1114: case 1184: return LogicalType::kTimestamp;
    case 114: case 3802: return LogicalType::kJson;
    default: return LogicalType::kText;  // text, varchar, bytea (\x hex), uuid, interval, arrays
  }
}

std::unique_ptr<Source> make_pg_source(const SourceConfig& config) {
  return std::make_unique<PgSource>(config);
}

}  // namespace sluice
