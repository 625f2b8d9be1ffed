#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "core/byte_buffer.hpp"
#include "core/output_options.hpp"
#include "core/row_batch.hpp"

namespace sluice {

// Output formats an export can be encoded in.
enum class Format { kCsv, kJsonLines, kTsv, kJson };

std::string_view file_extension(Format format);  // "csv", "jsonl", "tsv", "json"
std::string_view content_type(Format format);    // "text/csv; charset=utf-8", ...
std::optional<Format> parse_format(std::string_view extension);

// Turns row batches into bytes of one format. Pull-based pipelines call begin() once, then
// encode() per batch, then finish(); every call appends to `out` and never flushes itself.
// An encoder keeps no reference to a batch after encode() returns.
// Not thread-safe: one encoder per stream.
class Encoder {
 public:
  virtual ~Encoder() = default;

  // Writes what comes before the first row (the CSV header row, a JSON '[').
  virtual void begin(std::span<const Column> columns, ByteBuffer& out) = 0;
  // Appends every row of `batch`. REQUIRES: batch.columns() == columns passed to begin().
  virtual void encode(const RowBatch& batch, ByteBuffer& out) = 0;
  // Writes what comes after the last row (nothing for CSV and JSON Lines).
  virtual void finish(ByteBuffer& out) = 0;
};

// The raw encoders below copy bytes as they come; make_encoder() and
// make_csv_records_encoder() wrap them in the UTF-8 check (options.invalid_utf8).

// RFC 4180 CSV with options.delimiter/header/crlf/bom/formula_guard.
std::unique_ptr<Encoder> make_csv_encoder(const OutputOptions& options = {});
// PostgreSQL text-format TSV (`\t` `\n` `\r` `\\` escapes, NULL as `\N`), LF, options.header.
std::unique_ptr<Encoder> make_tsv_encoder(const OutputOptions& options = {});
std::unique_ptr<Encoder> make_jsonl_encoder();
// One JSON array of row objects: `[`, rows separated by `,` and a newline, `]`.
std::unique_ptr<Encoder> make_json_array_encoder();
// Whether an encoder checks its cells for invalid UTF-8 (options.invalid_utf8), or trusts rows
// known to be valid (BatchReader::text_valid_utf8 and no transform in between).
enum class Utf8Check : unsigned char { kCheck, kTrusted };
// The encoder for `format`, with invalid UTF-8 replaced or refused per options.invalid_utf8.
std::unique_ptr<Encoder> make_encoder(Format format, const OutputOptions& options = {},
                                      Utf8Check check = Utf8Check::kCheck);
// Whether PostgreSQL's CSV records (delimiter ',') can produce `options` for `format`.
bool csv_records_usable(Format format, const OutputOptions& options);
// For rows that are complete CSV records made by the source (BatchReader::csv_records()):
// writes the BOM and header row as asked, then each record (formula guard applied, CRLF or LF),
// with the UTF-8 check. REQUIRES: csv_records_usable(Format::kCsv, options).
// Records that are `kFinished` already carry the guard and line ending (the source wrote them as
// this encoder would): they are copied as they are.
enum class CsvRecords : unsigned char { kAsMade, kFinished };
std::unique_ptr<Encoder> make_csv_records_encoder(const OutputOptions& options = {},
                                                  Utf8Check check = Utf8Check::kCheck,
                                                  CsvRecords records = CsvRecords::kAsMade);

// Wraps `inner` so every cell (and column name) it sees is valid UTF-8: invalid sequences become
// U+FFFD, or encode() throws Utf8Error (options.invalid_utf8 == kFail). Columns of type kBytes
// are left alone when `keep_bytes` (the JSON encoders write them as base64).
std::unique_ptr<Encoder> make_utf8_checked(std::unique_ptr<Encoder> inner, InvalidUtf8 mode,
                                           bool keep_bytes);

}  // namespace sluice
