#include "features/exports/export_compression.hpp"

#include <array>
#include <string>

#include "core/api_error.hpp"
#include "http/accept_encoding.hpp"

namespace sluice {

std::pair<std::string_view, Compression> split_compression_suffix(std::string_view segment) {
  const std::size_t dot = segment.rfind('.');
  if (dot == std::string_view::npos) return {segment, Compression::kNone};
  std::optional<Compression> compression = compression_for_suffix(segment.substr(dot + 1));
  if (!compression) return {segment, Compression::kNone};
  return {segment.substr(0, dot), *compression};
}

ExportCompression choose_export_compression(Compression suffix, const HttpRequest& request) {
  if (suffix != Compression::kNone) return {suffix, true};
  static constexpr std::array<std::string_view, 2> kOffered{"gzip", "zstd"};
  std::optional<std::string_view> coding = choose_content_coding(request, kOffered);
  if (!coding) {
    // The answer depends on Accept-Encoding, so caches must key the 406 on it too.
    throw ApiError(406, "not_acceptable",
                   "Accept-Encoding refuses identity and accepts neither gzip nor zstd")
        .with_header("Vary", "Accept-Encoding");
  }
  std::optional<Compression> compression = parse_compression(*coding);
  return {compression.value_or(Compression::kNone), false};
}

void add_compression_headers(Headers& headers, const ExportCompression& choice) {
  if (!choice.as_file) headers.emplace_back("Vary", "Accept-Encoding");
  if (choice.compression == Compression::kNone) return;
  if (!choice.as_file) {
    headers.emplace_back("Content-Encoding", std::string(compression_coding(choice.compression)));
    return;
  }
  for (auto& [name, value] : headers) {
    if (name == "Content-Type") value = std::string(compression_media_type(choice.compression));
  }
}

}  // namespace sluice
