#pragma once

#include <cstdint>
#include <memory>

#include "core/byte_buffer.hpp"
#include "core/byte_sink.hpp"
#include "encode/compressor.hpp"

namespace sluice {

// Compresses every byte on its way to `inner`. Each write() ends with a flush, so whatever the
// pipeline wrote is decodable by the client as soon as it arrives (the pipeline writes at most
// once per stream_buffer_bytes/4, so blocks stay large); finish() writes the gzip trailer or
// the zstd epilogue and then finishes `inner`. A stream that fails is never finished, so the
// client never holds a complete gzip member / zstd frame of a cut export.
// With `flush_each_write` false (a file nobody reads while it is written: a job's result), the
// input is handed to the compressor in blocks of kBlockBytes whatever the writes were, with no
// flush: fewer, larger deflate blocks, and the same bytes out for the same bytes in however the
// pipeline's timing split its writes (igzip's output depends on its input's split).
// Not thread-safe: one per stream.
class CompressingSink final : public ByteSink {
 public:
  static constexpr std::size_t kBlockBytes = 128 * 1024;

  CompressingSink(ByteSink& inner, std::unique_ptr<Compressor> compressor,
                  bool flush_each_write = true)
      : inner_(inner), compressor_(std::move(compressor)), flush_each_write_(flush_each_write) {}
  boost::asio::awaitable<void> write(std::string_view bytes) override;
  boost::asio::awaitable<void> finish() override;

  std::uint64_t bytes_in() const { return bytes_in_; }
  std::uint64_t bytes_out() const { return bytes_out_; }  // compressed: what `inner` got

 private:
  boost::asio::awaitable<void> send();

  ByteSink& inner_;
  std::unique_ptr<Compressor> compressor_;
  bool flush_each_write_ = true;
  std::string pending_;  // !flush_each_write_: input short of a block
  ByteBuffer out_;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
};

}  // namespace sluice
