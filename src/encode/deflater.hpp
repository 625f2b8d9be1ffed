#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/byte_buffer.hpp"

namespace sluice {

// Streaming raw DEFLATE (RFC 1951, no zlib/gzip wrapper) for ZIP entries: data goes in piece by
// piece and compressed bytes come out as they are ready, so an entry of any size needs only the
// compressor's fixed state (~120 KiB). ISA-L's igzip at level 1 — several times zlib's speed at
// a slightly lower ratio; figures in docs/BENCHMARKS.md.
// Not thread-safe. Reusable: after finish(), reset() starts the next stream.
class Deflater {
 public:
  Deflater();
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Compresses `input`, appending the output that is ready to `out`.
  void add(std::string_view input, ByteBuffer& out);
  // Ends the stream, appending the rest of the output to `out`.
  void finish(ByteBuffer& out);
  // Starts a new stream.
  void reset();

  std::uint64_t bytes_in() const { return bytes_in_; }
  std::uint64_t bytes_out() const { return bytes_out_; }

  // An upper bound of the compressed size of `size` input bytes, for deciding up front
  // whether an entry can need ZIP64.
  static std::uint64_t bound(std::uint64_t size);

 private:
  void run(std::string_view input, bool end, ByteBuffer& out);

  struct State;
  std::unique_ptr<State> state_;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
};

}  // namespace sluice
