#pragma once

#include <string_view>
#include <utility>

#include "encode/compressor.hpp"
#include "http/handler.hpp"

namespace sluice {

// How one export is compressed, chosen before the query runs.
struct ExportCompression {
  Compression compression = Compression::kNone;
  // true: asked for by the URL's suffix (`orders.csv.gz`): the download is a gzip/zstd file
  // (its Content-Type and file name say so, no Content-Encoding). false: by Accept-Encoding:
  // a content coding the client undoes transparently.
  bool as_file = false;
};

// "orders.csv.gz" → {"orders.csv", kGzip}; "orders.csv" → {"orders.csv", kNone}. Only the
// last dot is looked at, and only `gz` and `zst` are taken off; anything else stays in the
// name and fails as an unknown format.
std::pair<std::string_view, Compression> split_compression_suffix(std::string_view segment);

// The URL's suffix wins (Accept-Encoding is then not consulted: the file is the
// representation); else Accept-Encoding chooses gzip, zstd or nothing, gzip first at equal
// weight since more clients decode it. Throws ApiError 406 `not_acceptable` when the client
// refuses identity and accepts neither.
ExportCompression choose_export_compression(Compression suffix, const HttpRequest& request);

// Adds what the choice means to a download's headers: for a file, its media type replaces
// Content-Type; for a content coding, Content-Encoding. Unless the URL chose, Vary:
// Accept-Encoding (the same URL answers differently by that header, compressed or not).
// REQUIRES: `headers` has a Content-Type.
void add_compression_headers(Headers& headers, const ExportCompression& choice);

}  // namespace sluice
