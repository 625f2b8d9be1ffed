// gzip (RFC 1952) streams: ISA-L igzip, which exports use, and zlib, its measured baseline.

#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <cstdint>
#include <memory>
#include <stdexcept>

#include "encode/compressor.hpp"

namespace sluice {
namespace {

class IgzipCompressor final : public Compressor {
 public:
  IgzipCompressor(int level, bool large_tables)
      : level_buf_size_(level_buffer_size(level, large_tables)),
        level_buf_(new std::uint8_t[level_buf_size_]) {
    isal_deflate_init(&stream_);
    stream_.level = static_cast<std::uint32_t>(level);
    stream_.level_buf = level_buf_.get();
    stream_.level_buf_size = static_cast<std::uint32_t>(level_buf_size_);
    stream_.gzip_flag = IGZIP_GZIP;  // igzip writes the gzip header and the CRC-32/size trailer
  }

  void compress(std::string_view input, ByteBuffer& out, bool flush) override {
    if (input.empty() && !flush) return;
    run(input, flush ? SYNC_FLUSH : NO_FLUSH, false, out);
  }

  void finish(ByteBuffer& out) override { run({}, NO_FLUSH, true, out); }

  std::size_t state_bytes() const override { return sizeof(*this) + level_buf_size_; }

 private:
  static std::size_t level_buffer_size(int level, bool large) {
    // Level 1's "small" tables (~80 KiB) keep a thousand concurrent streams affordable.
    switch (level) {
      case 0:
        return 0;
      case 1:
        return large ? ISAL_DEF_LVL1_LARGE : ISAL_DEF_LVL1_SMALL;
      case 2:
        return large ? ISAL_DEF_LVL2_LARGE : ISAL_DEF_LVL2_SMALL;
      default:
        return large ? ISAL_DEF_LVL3_LARGE : ISAL_DEF_LVL3_SMALL;
    }
  }

  void run(std::string_view input, int flush, bool end, ByteBuffer& out) {
    stream_.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(input.data()));
    stream_.avail_in = static_cast<std::uint32_t>(input.size());
    stream_.flush = static_cast<std::uint16_t>(flush);
    stream_.end_of_stream = end ? 1 : 0;
    // igzip takes all input while it has output room; a flush or the end drains its state.
    for (;;) {
      const std::size_t room = input.size() / 2 + 16 * 1024;
      stream_.next_out = reinterpret_cast<std::uint8_t*>(out.tail(room));
      stream_.avail_out = static_cast<std::uint32_t>(room);
      if (isal_deflate(&stream_) != COMP_OK) throw std::runtime_error("isal_deflate failed");
      out.commit(room - stream_.avail_out);
      const bool drained = end ? stream_.internal_state.state == ZSTATE_END : stream_.avail_in == 0;
      if (drained && stream_.avail_out != 0) return;
    }
  }

  isal_zstream stream_{};
  std::size_t level_buf_size_;
  std::unique_ptr<std::uint8_t[]> level_buf_;
};

class ZlibGzipCompressor final : public Compressor {
 public:
  explicit ZlibGzipCompressor(int level) {
    // windowBits 15 + 16: a gzip wrapper; memLevel 8 is zlib's default.
    if (deflateInit2(&stream_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw std::runtime_error("deflateInit2 failed");
    }
  }
  ~ZlibGzipCompressor() override { deflateEnd(&stream_); }
  ZlibGzipCompressor(const ZlibGzipCompressor&) = delete;
  ZlibGzipCompressor& operator=(const ZlibGzipCompressor&) = delete;

  void compress(std::string_view input, ByteBuffer& out, bool flush) override {
    if (input.empty() && !flush) return;
    run(input, flush ? Z_SYNC_FLUSH : Z_NO_FLUSH, out);
  }

  void finish(ByteBuffer& out) override { run({}, Z_FINISH, out); }

  // deflateInit2 with windowBits 15, memLevel 8: window 64 KiB + prev 64 KiB + head 64 KiB +
  // pending 64 KiB (zlib's documented formula), plus the stream structs.
  std::size_t state_bytes() const override { return sizeof(*this) + 268 * 1024; }

 private:
  void run(std::string_view input, int flush, ByteBuffer& out) {
    stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
    stream_.avail_in = static_cast<uInt>(input.size());
    for (;;) {
      const std::size_t room = deflateBound(&stream_, stream_.avail_in) + 64;
      stream_.next_out = reinterpret_cast<Bytef*>(out.tail(room));
      stream_.avail_out = static_cast<uInt>(room);
      const int status = deflate(&stream_, flush);
      out.commit(room - stream_.avail_out);
      if (status == Z_STREAM_END) return;
      if (status != Z_OK && status != Z_BUF_ERROR) throw std::runtime_error("deflate failed");
      if (stream_.avail_in == 0 && stream_.avail_out != 0 && flush != Z_FINISH) return;
    }
  }

  z_stream stream_{};
};

}  // namespace

std::unique_ptr<Compressor> make_igzip_compressor(int level, bool large_tables) {
  return std::make_unique<IgzipCompressor>(level, large_tables);
}

std::unique_ptr<Compressor> make_zlib_gzip_compressor(int level) {
  return std::make_unique<ZlibGzipCompressor>(level);
}

}  // namespace sluice
