#include "encode/encoder.hpp"

namespace sluice {

std::string_view file_extension(Format format) {
  switch (format) {
    case Format::kCsv:
      return "csv";
    case Format::kJsonLines:
      return "jsonl";
  }
  return "csv";
}

std::string_view content_type(Format format) {
  switch (format) {
    case Format::kCsv:
      return "text/csv; charset=utf-8";
    case Format::kJsonLines:
      return "application/x-ndjson; charset=utf-8";
  }
  return "text/csv; charset=utf-8";
}

// Exact and case-sensitive: the extension comes from a URL path, where "CSV" is not a format
// we promise to serve.
std::optional<Format> parse_format(std::string_view extension) {
  if (extension == "csv") return Format::kCsv;
  if (extension == "jsonl") return Format::kJsonLines;
  return std::nullopt;
}

std::unique_ptr<Encoder> make_encoder(Format format) {
  switch (format) {
    case Format::kCsv:
      return make_csv_encoder();
    case Format::kJsonLines:
      return make_jsonl_encoder();
  }
  return make_csv_encoder();
}

}  // namespace sluice
