#pragma once

#include <span>
#include <string>
#include <string_view>

#include "core/output_options.hpp"
#include "encode/encoder.hpp"

namespace sluice {

// Query parameters that shape the output rather than select rows: `header`, `bom`,
// `delimiter`, `line_ending`. Reserved next to `columns`, `limit`, `order`.
inline constexpr std::string_view kHeaderParam = "header";
inline constexpr std::string_view kBomParam = "bom";
inline constexpr std::string_view kDelimiterParam = "delimiter";
inline constexpr std::string_view kLineEndingParam = "line_ending";

bool is_output_param(std::string_view key);

// Tracks which output parameters a request gave and applies them on top of the dataset's
// `[datasets.output]` settings. Throws ApiError(400): `invalid_value` naming the parameter and
// the allowed values, `duplicate_parameter`, or `unsupported_parameter` when the format has no
// such option (only CSV has a delimiter, a BOM and a line ending; TSV has a header too).
class OutputParams {
 public:
  OutputParams(Format format, const OutputOptions& defaults) : format_(format), options_(defaults) {}

  // REQUIRES: is_output_param(key).
  void apply(std::string_view key, std::string_view value);
  const OutputOptions& options() const { return options_; }

 private:
  Format format_;
  OutputOptions options_;
  unsigned seen_ = 0;  // one bit per parameter
};

// Before the response starts: with invalid_utf8 = "fail", throws ApiError(500, "invalid_utf8")
// when `first` (the first batch, may be null) holds invalid UTF-8, so the client gets an error
// body instead of a stream that is cut after its first bytes.
// `csv_records`: the reader hands out the database's CSV records (one cell per row).
void check_first_batch_utf8(const RowBatch* first, std::span<const Column> columns, Format format,
                            const OutputOptions& options, bool csv_records);

}  // namespace sluice
