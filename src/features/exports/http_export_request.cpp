#include "features/exports/http_export_request.hpp"

#include <algorithm>
#include <optional>

#include "core/api_error.hpp"
#include "core/utf8.hpp"
#include "features/exports/export_compression.hpp"

namespace sluice {
namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

}  // namespace

std::pair<std::string, Format> split_export_name(std::string_view segment) {
  std::size_t dot = segment.find('.');
  std::string_view name = segment.substr(0, dot);
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), is_name_char)) {
    throw ApiError(400, "invalid_dataset_name",
                   "a dataset name is 1 to 64 characters of A-Z a-z 0-9 _ -");
  }
  std::string_view extension = dot == std::string_view::npos ? "" : segment.substr(dot + 1);
  std::optional<Format> format = parse_format(extension);
  if (!format) {
    throw ApiError(404, "unknown_format",
                   "unknown format '" + shown_text(extension, 16) +
                       "'; available: csv, tsv, jsonl, json (each optionally + .gz or .zst)");
  }
  return {std::string(name), *format};
}

HttpExportRequest parse_http_export_request(const HttpRequest& request) {
  auto [segment, suffix] = split_compression_suffix(request.segments.back());
  auto [name, format] = split_export_name(segment);
  const ExportCompression compression = choose_export_compression(suffix, request);
  HttpExportRequest parsed;
  parsed.request.dataset = std::move(name);
  parsed.request.format = format;
  parsed.request.compression = compression.compression;
  parsed.request.params = request.params;
  parsed.request.request_id = request.request_id;
  parsed.compressed_file = compression.as_file;
  return parsed;
}

}  // namespace sluice
