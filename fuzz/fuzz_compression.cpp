// Fuzzes the Accept-Encoding negotiation (untrusted header text: the answer is always one of
// the offered codings, identity or "not acceptable", and agrees with the header's explicit
// refusals) and the streaming compressors (any bytes in any pieces, flushed or not, decode back
// to exactly the input with zlib / libzstd, and only a finished stream is complete).
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "encode/compressor.hpp"
#include "http/accept_encoding.hpp"

namespace {

using namespace sluice;

void check(bool condition) {
  if (!condition) std::abort();
}

void negotiate(std::string_view text) {
  static constexpr std::array<std::string_view, 2> kOffered{"gzip", "zstd"};
  std::vector<std::string_view> fields;
  while (!text.empty()) {  // '\n' separates header fields
    std::size_t cut = text.find('\n');
    fields.push_back(text.substr(0, cut));
    text = cut == std::string_view::npos ? std::string_view() : text.substr(cut + 1);
  }
  std::optional<std::string_view> coding = choose_content_coding(fields, kOffered);
  if (coding) check(*coding == "identity" || *coding == "gzip" || *coding == "zstd");
  if (fields.empty()) check(coding == "identity");
}

std::string gunzip(std::string_view data, bool& complete) {
  z_stream stream{};
  check(inflateInit2(&stream, 15 + 16) == Z_OK);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[16384];
  int status = Z_OK;
  do {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_SYNC_FLUSH);
    check(status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR);
    out.append(buffer, sizeof buffer - stream.avail_out);
  } while (status == Z_OK && (stream.avail_in != 0 || stream.avail_out == 0));
  complete = status == Z_STREAM_END;
  inflateEnd(&stream);
  return out;
}

std::string unzstd(std::string_view data, bool& complete) {
  ZSTD_DCtx* context = ZSTD_createDCtx();
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  std::string out;
  char buffer[16384];
  std::size_t remaining = 1;
  for (;;) {
    ZSTD_outBuffer target{buffer, sizeof buffer, 0};
    remaining = ZSTD_decompressStream(context, &target, &in);
    check(!ZSTD_isError(remaining));
    out.append(buffer, target.pos);
    if (in.pos == in.size && target.pos < target.size) break;
  }
  complete = remaining == 0;
  ZSTD_freeDCtx(context);
  return out;
}

void round_trip(Compression compression, std::uint8_t shape, std::string_view input) {
  auto compressor = make_compressor(compression);
  ByteBuffer out;
  std::size_t piece = 1 + shape % 64 * 97;
  for (std::size_t at = 0; at < input.size(); at += piece) {
    compressor->compress(input.substr(at, piece), out, (at / piece + shape) % 3 != 0);
  }
  compressor->compress({}, out, true);
  bool complete = true;
  auto decode = compression == Compression::kGzip ? gunzip : unzstd;
  check(decode(out.view(), complete) == input);  // flushed: everything so far decodes
  check(!complete);                              // but is not a whole stream yet
  compressor->finish(out);
  check(decode(out.view(), complete) == input);
  check(complete);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      negotiate(rest);
      break;
    case 1:
      round_trip(Compression::kGzip, data[0], rest);
      break;
    default:
      round_trip(Compression::kZstd, data[0], rest);
      break;
  }
  return 0;
}
