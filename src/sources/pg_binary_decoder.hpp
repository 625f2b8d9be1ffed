#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/row_batch.hpp"

namespace sluice {

// The wire layouts of COPY (FORMAT binary) that Sluice decodes itself. Each is rendered exactly
// as PostgreSQL's text output function renders it (with the session settings of pg_source.cpp:
// UTC, ISO dates, shortest-exact floats, hex bytea), so a binary export equals a text one byte
// for byte while the server spends less of its core formatting.
enum class PgWire : std::uint8_t {
  kBool, kInt2, kInt4, kInt8, kOid, kFloat4, kFloat8, kNumeric, kText, kJsonb,
  kDate, kTimestamp, kTimestampTz, kUuid, kBytea,
};

// The layout for a type OID, or nullopt when binary decoding does not cover the type (interval,
// arrays, ranges, ...): such a query is read in text format instead.
std::optional<PgWire> pg_wire_type(std::uint32_t oid);

// How decode_csv_record() finishes a record: the line ending, and per column whether a value
// that starts like a spreadsheet formula (= + - @ TAB CR) gets a leading `'` (the CSV encoder's
// formula guard; none when `guarded` is empty).
struct CsvRecordStyle {
  bool crlf = false;
  std::vector<bool> guarded;
};

// Decodes the CopyData messages of one binary COPY: the header in the first, then one tuple per
// message, then the trailer. Throws SourceError on a malformed message or a field whose size
// does not fit its type (e.g. the table changed since its columns were described).
// Not thread-safe.
class PgBinaryDecoder {
 public:
  explicit PgBinaryDecoder(std::vector<PgWire> columns, CsvRecordStyle style = {})
      : columns_(std::move(columns)), style_(std::move(style)) {}

  // Appends the tuple in `message` (if any) to `batch`; returns the number of rows added (0 for
  // a message that holds only the header or the trailer).
  std::size_t decode(std::string_view message, RowBatch& batch);
  // The same, but the row becomes one cell: its CSV record, byte for byte what the CSV encoder
  // writes with delimiter ',' and the style's guard and line ending (BatchReader::
  // csv_records_finished). Text with ',', '"', CR or LF is quoted, "" stands for empty text and
  // NULL is an empty field.
  std::size_t decode_csv_record(std::string_view message, RowBatch& batch);

 private:
  // Reads the header (first message) and a row's field count; false for a message without a
  // row. `at` is then where the row's fields start.
  bool row_start(std::string_view message, std::size_t& at);

  std::vector<PgWire> columns_;
  CsvRecordStyle style_;
  bool header_read_ = false;
};

// PostgreSQL's text rendering of single values (exposed for tests).
std::size_t format_pg_float8(double value, char* out);  // out: at least 32 bytes
std::size_t format_pg_float4(float value, char* out);   // out: at least 32 bytes

}  // namespace sluice
