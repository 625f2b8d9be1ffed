#include "pipeline/output_params.hpp"

#include <array>

#include "core/api_error.hpp"
#include "core/utf8.hpp"
#include "encode/utf8_check.hpp"

namespace sluice {
namespace {

constexpr std::array<std::string_view, 4> kOutputParams{kHeaderParam, kBomParam, kDelimiterParam,
                                                        kLineEndingParam};

[[noreturn]] void reject(std::string code, const std::string& message) {
  throw ApiError(400, std::move(code), message);
}


bool parse_flag(std::string_view key, std::string_view value) {
  if (value == "true") return true;
  if (value == "false") return false;
  reject("invalid_value", "parameter '" + std::string(key) + "': '" + shown_text(value) +
                              "' is not allowed; allowed: true, false");
}

// Which formats have the option.
bool supported(std::string_view key, Format format) {
  if (key == kHeaderParam) return format == Format::kCsv || format == Format::kTsv;
  return format == Format::kCsv;
}

}  // namespace

bool is_output_param(std::string_view key) {
  for (std::string_view name : kOutputParams) {
    if (key == name) return true;
  }
  return false;
}

void OutputParams::apply(std::string_view key, std::string_view value) {
  unsigned bit = 0;
  while (bit < kOutputParams.size() && kOutputParams[bit] != key) ++bit;
  if ((seen_ & (1u << bit)) != 0) {
    reject("duplicate_parameter", "parameter '" + std::string(key) + "' is given more than once");
  }
  seen_ |= 1u << bit;
  if (!supported(key, format_)) {
    reject("unsupported_parameter", "parameter '" + std::string(key) + "' applies to " +
                                        (key == kHeaderParam ? ".csv and .tsv" : ".csv") +
                                        " exports only, not ." +
                                        std::string(file_extension(format_)));
  }
  if (key == kHeaderParam) {
    options_.header = parse_flag(key, value);
  } else if (key == kBomParam) {
    options_.bom = parse_flag(key, value);
  } else if (key == kLineEndingParam) {
    if (value != "crlf" && value != "lf") {
      reject("invalid_value", "parameter 'line_ending': '" + shown_text(value) +
                                  "' is not allowed; allowed: crlf, lf");
    }
    options_.crlf = value == "crlf";
  } else {
    if (value.size() != 1 || !is_valid_delimiter(value.front())) {
      reject("invalid_value",
             "parameter 'delimiter': '" + shown_text(value) +
                 "' is not allowed; allowed: one ASCII character other than '\"', CR and LF, "
                 "e.g. ';' (%3B), '|' or TAB (%09)");
    }
    options_.delimiter = value.front();
  }
}

void check_first_batch_utf8(const RowBatch* first, std::span<const Column> columns, Format format,
                            const OutputOptions& options, bool csv_records) {
  if (first == nullptr || options.invalid_utf8 != InvalidUtf8::kFail) return;
  const bool keep_bytes = format == Format::kJson || format == Format::kJsonLines;
  if (auto where = find_invalid_utf8(*first, columns, keep_bytes, csv_records)) {
    throw ApiError(500, "invalid_utf8",
                   "the source returned invalid UTF-8 (" + *where +
                       ") and this dataset's output.invalid_utf8 is \"fail\"");
  }
}

}  // namespace sluice
