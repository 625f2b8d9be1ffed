#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string_view>

#include "core/byte_buffer.hpp"

namespace sluice {

// Compressions an export can be delivered in: as the file itself (`orders.csv.gz`) or as an
// HTTP content coding (`Content-Encoding: gzip`).
enum class Compression { kNone, kGzip, kZstd };

std::string_view compression_suffix(Compression compression);      // "gz", "zst"
std::string_view compression_coding(Compression compression);      // "gzip", "zstd"
std::string_view compression_media_type(Compression compression);  // "application/gzip", ...
// "gzip" / "zstd" (the content-coding names), "none".
std::optional<Compression> parse_compression(std::string_view name);
// The file suffix after the last dot: "gz" → kGzip, "zst" → kZstd; anything else nullopt.
std::optional<Compression> compression_for_suffix(std::string_view suffix);

// A streaming compressor: input goes in piece by piece, compressed bytes come out as they are
// ready, so a stream of any length needs only the compressor's fixed state (state_bytes()).
// compress(flush = true) ends a block: everything given so far can be decoded from what was
// appended so far, so a pipeline that flushes at each write never holds bytes back (the first
// rows reach the client at once). The output is one complete gzip member / zstd frame once
// finish() ran, and never before: a cut stream never decodes as whole.
// Not thread-safe: one compressor per stream.
class Compressor {
 public:
  virtual ~Compressor() = default;
  // Compresses `input`, appending the output that is ready to `out`.
  virtual void compress(std::string_view input, ByteBuffer& out, bool flush) = 0;
  // Ends the stream (gzip trailer / zstd epilogue), appending the rest to `out`. Call once.
  virtual void finish(ByteBuffer& out) = 0;
  // Heap bytes the compressor holds (its window, tables and buffers), for memory budgets.
  virtual std::size_t state_bytes() const = 0;
};

// The compressor exports use: gzip = ISA-L igzip level 1 (measured ~3x zlib level 1 at a
// similar ratio, docs/BENCHMARKS.md), zstd = level 3 with a small window (below).
// REQUIRES: compression != kNone.
std::unique_ptr<Compressor> make_compressor(Compression compression);

// The candidates, for benchmarks and tests.
std::unique_ptr<Compressor> make_igzip_compressor(int level = 1, bool large_tables = false);
std::unique_ptr<Compressor> make_zlib_gzip_compressor(int level = 1);

// zstd parameters beyond the level; 0 keeps the level's default.
struct ZstdTuning {
  int level = 3;
  int window_log = 0;
  int hash_log = 0;
  int chain_log = 0;
  int min_match = 0;
};
// Exports: level 3 with a 128 KiB window and small tables (~1 MiB per stream).
ZstdTuning export_zstd_tuning();
std::unique_ptr<Compressor> make_zstd_compressor(const ZstdTuning& tuning);

}  // namespace sluice
