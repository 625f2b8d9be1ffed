#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "core/byte_buffer.hpp"
#include "sources/row_batch.hpp"

namespace sluice {

// Output formats an export can be encoded in. Later formats (tsv, json array) add values here.
enum class Format { kCsv, kJsonLines };

std::string_view file_extension(Format format);  // "csv", "jsonl"
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

struct CsvOptions {
  bool header = true;
};

std::unique_ptr<Encoder> make_csv_encoder(const CsvOptions& options = {});
std::unique_ptr<Encoder> make_jsonl_encoder();
std::unique_ptr<Encoder> make_encoder(Format format);
// For rows that are complete CSV records made by the source (BatchReader::csv_records()):
// writes the header row, then each record with CRLF.
std::unique_ptr<Encoder> make_csv_records_encoder();

}  // namespace sluice
