#include "encode/encoder.hpp"

namespace sluice {

std::string_view file_extension(Format format) {
  switch (format) {
    case Format::kCsv:
      return "csv";
    case Format::kJsonLines:
      return "jsonl";
    case Format::kTsv:
      return "tsv";
    case Format::kJson:
      return "json";
  }
  return "csv";
}

std::string_view content_type(Format format) {
  switch (format) {
    case Format::kCsv:
      return "text/csv; charset=utf-8";
    case Format::kJsonLines:
      return "application/x-ndjson; charset=utf-8";
    case Format::kTsv:
      return "text/tab-separated-values; charset=utf-8";
    case Format::kJson:
      return "application/json";
  }
  return "text/csv; charset=utf-8";
}

// Exact and case-sensitive: the extension comes from a URL path, where "CSV" is not a format
// we promise to serve.
std::optional<Format> parse_format(std::string_view extension) {
  if (extension == "csv") return Format::kCsv;
  if (extension == "jsonl") return Format::kJsonLines;
  if (extension == "tsv") return Format::kTsv;
  if (extension == "json") return Format::kJson;
  return std::nullopt;
}

std::unique_ptr<Encoder> make_encoder(Format format, const OutputOptions& options,
                                      Utf8Check check) {
  std::unique_ptr<Encoder> raw;
  switch (format) {
    case Format::kJsonLines: raw = make_jsonl_encoder(); break;
    case Format::kTsv: raw = make_tsv_encoder(options); break;
    case Format::kJson: raw = make_json_array_encoder(); break;
    case Format::kCsv: break;
  }
  if (!raw) raw = make_csv_encoder(options);
  if (check == Utf8Check::kTrusted) return raw;
  const bool keep_bytes = format == Format::kJsonLines || format == Format::kJson;
  return make_utf8_checked(std::move(raw), options.invalid_utf8, keep_bytes);
}

// PostgreSQL writes its records with ',' and LF; the records encoder adds the BOM, the header,
// CRLF and the formula guard itself. Any other delimiter means decoding the rows.
bool csv_records_usable(Format format, const OutputOptions& options) {
  return format == Format::kCsv && options.delimiter == ',';
}

}  // namespace sluice
