#include "encode/compressor.hpp"

#include <cassert>

namespace sluice {

std::string_view compression_suffix(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "gz";
    case Compression::kZstd:
      return "zst";
    case Compression::kNone:
      break;
  }
  return "";
}

std::string_view compression_coding(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return "identity";
}

std::string_view compression_media_type(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "application/gzip";  // RFC 6713
    case Compression::kZstd:
      return "application/zstd";  // RFC 8878
    case Compression::kNone:
      break;
  }
  return "application/octet-stream";
}

std::optional<Compression> parse_compression(std::string_view name) {
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  if (name == "none") return Compression::kNone;
  return std::nullopt;
}

std::optional<Compression> compression_for_suffix(std::string_view suffix) {
  if (suffix == "gz") return Compression::kGzip;
  if (suffix == "zst") return Compression::kZstd;
  return std::nullopt;
}

std::unique_ptr<Compressor> make_compressor(Compression compression) {
  assert(compression != Compression::kNone);
  if (compression == Compression::kZstd) return make_zstd_compressor(export_zstd_tuning());
  return make_igzip_compressor();
}

}  // namespace sluice
