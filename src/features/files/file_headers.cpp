#include "features/files/file_headers.hpp"

#include <array>
#include <cstdio>
#include <ctime>
#include <utility>

#include "http/conditional.hpp"

namespace sluice {
namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 28> kTypes{{
    {"avif", "image/avif"},
    {"bz2", "application/x-bzip2"},
    {"csv", "text/csv; charset=utf-8"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"json", "application/json"},
    {"jsonl", "application/x-ndjson"},
    {"md", "text/markdown; charset=utf-8"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"ndjson", "application/x-ndjson"},
    {"parquet", "application/vnd.apache.parquet"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"tsv", "text/tab-separated-values; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"webm", "video/webm"},
    {"webp", "image/webp"},
    {"xml", "application/xml"},
    {"zip", "application/zip"},
    {"zst", "application/zstd"},
}};

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::string_view base_name(std::string_view key) {
  const std::size_t slash = key.rfind('/');
  return slash == std::string_view::npos ? key : key.substr(slash + 1);
}

std::string_view content_type_for(std::string_view key) {
  constexpr std::string_view kDefault = "application/octet-stream";
  const std::string_view name = base_name(key);
  const std::size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || name.size() - dot - 1 > 8) return kDefault;
  std::string extension;
  for (const char c : name.substr(dot + 1)) extension += lower(c);
  for (const auto& [suffix, type] : kTypes) {
    if (suffix == extension) return type;
  }
  return kDefault;
}

std::string object_etag(const ObjectInfo& object) {
  std::array<char, 48> text{};
  std::snprintf(text.data(), text.size(), "%llx-%llx", static_cast<unsigned long long>(object.size),
                static_cast<unsigned long long>(object.mtime_ns));
  std::string tag = "\"" + std::string(text.data());
  if (!object.etag.empty()) {
    // S3's own tag (an MD5, "-N" for multipart): a rewrite of the same size within the same
    // second (S3's mtime resolution) still changes the tag. Only tag-safe characters are kept.
    tag += '-';
    for (const char c : object.etag) {
      if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-')
        tag += c;
    }
  }
  return tag + "\"";
}

std::string http_date(std::int64_t unix_seconds) {
  const auto seconds = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  static constexpr std::array<const char*, 7> kDays{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::array<char, 40> text{};
  std::snprintf(text.data(), text.size(), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                kDays.at(static_cast<std::size_t>(utc.tm_wday % 7)),
                utc.tm_mday, kMonths.at(static_cast<std::size_t>(utc.tm_mon % 12)),
                utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return text.data();
}

bool if_none_match_matches(std::string_view if_none_match, std::string_view etag) {
  return etag_matches(if_none_match, etag, TagComparison::kWeak);
}

}  // namespace sluice
