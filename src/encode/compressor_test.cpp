#include "encode/compressor.hpp"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <random>
#include <string>

#include "encode/compressing_sink.hpp"

namespace sluice {
namespace {

// Decodes a gzip stream; `complete` tells whether it ended with a whole member (trailer checked).
std::string gunzip(std::string_view data, bool* complete = nullptr) {
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 15 + 16), Z_OK);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  int status = Z_OK;
  char buffer[65536];
  while (status == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_SYNC_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
    if (status == Z_BUF_ERROR ||
        (status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0)) {
      break;
    }
  }
  if (complete != nullptr) *complete = status == Z_STREAM_END;
  inflateEnd(&stream);
  return out;
}

std::string unzstd(std::string_view data, bool* complete = nullptr) {
  ZSTD_DCtx* context = ZSTD_createDCtx();
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  std::string out;
  char buffer[65536];
  std::size_t remaining = 1;
  while (in.pos < in.size || remaining != 0) {
    ZSTD_outBuffer target{buffer, sizeof buffer, 0};
    remaining = ZSTD_decompressStream(context, &target, &in);
    EXPECT_FALSE(ZSTD_isError(remaining)) << ZSTD_getErrorName(remaining);
    out.append(buffer, target.pos);
    if (ZSTD_isError(remaining) || (target.pos == 0 && in.pos == in.size)) break;
  }
  if (complete != nullptr) *complete = remaining == 0;
  ZSTD_freeDCtx(context);
  return out;
}

std::string csv_like(std::size_t bytes) {
  std::mt19937 rng(7);
  std::string text;
  while (text.size() < bytes) {
    text += std::to_string(rng() % 1000000) + ",customer" + std::to_string(rng() % 5000) +
            "@example.com,DE,paid," + std::to_string(rng() % 10000) + ".50\r\n";
  }
  return text;
}

using Factory = std::function<std::unique_ptr<Compressor>()>;
struct Codec {
  const char* name;
  Factory make;
  std::string (*decode)(std::string_view, bool*);
};

class CompressorTest : public ::testing::TestWithParam<Codec> {};

TEST_P(CompressorTest, RoundTripsInPieces) {
  const std::string input = csv_like(1 << 20);
  auto compressor = GetParam().make();
  ByteBuffer out;
  for (std::size_t at = 0; at < input.size(); at += 70'001) {
    compressor->compress(std::string_view(input).substr(at, 70'001), out, at % 3 == 0);
  }
  compressor->finish(out);
  bool complete = false;
  EXPECT_EQ(GetParam().decode(out.view(), &complete), input);
  EXPECT_TRUE(complete);
  EXPECT_LT(out.size(), input.size() / 2);
}

TEST_P(CompressorTest, AFlushMakesEverythingSoFarDecodableButNotComplete) {
  const std::string input = csv_like(300'000);
  auto compressor = GetParam().make();
  ByteBuffer out;
  compressor->compress(std::string_view(input).substr(0, 1000), out, true);
  bool complete = true;
  EXPECT_EQ(GetParam().decode(out.view(), &complete), input.substr(0, 1000));
  EXPECT_FALSE(complete) << "a flushed but unfinished stream must not look whole";
  compressor->compress(std::string_view(input).substr(1000), out, true);
  EXPECT_EQ(GetParam().decode(out.view(), &complete), input);
  EXPECT_FALSE(complete);
}

TEST_P(CompressorTest, EmptyStreamIsValid) {
  auto compressor = GetParam().make();
  ByteBuffer out;
  compressor->compress("", out, true);
  compressor->finish(out);
  bool complete = false;
  EXPECT_EQ(GetParam().decode(out.view(), &complete), "");
  EXPECT_TRUE(complete);
}

TEST_P(CompressorTest, IncompressibleInputGrowsLittle) {
  std::mt19937 rng(3);
  std::string input(1 << 20, '\0');
  for (char& c : input) c = static_cast<char>(rng());
  auto compressor = GetParam().make();
  ByteBuffer out;
  for (std::size_t at = 0; at < input.size(); at += 65536) {
    compressor->compress(std::string_view(input).substr(at, 65536), out, true);
  }
  compressor->finish(out);
  EXPECT_LT(out.size(), input.size() + input.size() / 100);
  EXPECT_EQ(GetParam().decode(out.view(), nullptr), input);
}

TEST_P(CompressorTest, StateStaysSmall) {
  auto compressor = GetParam().make();
  ByteBuffer out;
  compressor->compress(csv_like(1 << 20), out, true);
  EXPECT_LT(compressor->state_bytes(), 1200u * 1024);
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, CompressorTest,
    ::testing::Values(
        Codec{"export_gzip", [] { return make_compressor(Compression::kGzip); }, gunzip},
        Codec{"zlib", [] { return make_zlib_gzip_compressor(1); }, gunzip},
        Codec{"export_zstd", [] { return make_compressor(Compression::kZstd); }, unzstd}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CompressionNames, SuffixesCodingsAndMediaTypes) {
  EXPECT_EQ(compression_for_suffix("gz"), Compression::kGzip);
  EXPECT_EQ(compression_for_suffix("zst"), Compression::kZstd);
  EXPECT_EQ(compression_for_suffix("bz2"), std::nullopt);
  EXPECT_EQ(compression_for_suffix("GZ"), std::nullopt);
  EXPECT_EQ(parse_compression("zstd"), Compression::kZstd);
  EXPECT_EQ(parse_compression("none"), Compression::kNone);
  EXPECT_EQ(parse_compression("brotli"), std::nullopt);
  EXPECT_EQ(compression_media_type(Compression::kGzip), "application/gzip");
  EXPECT_EQ(compression_media_type(Compression::kZstd), "application/zstd");
  EXPECT_EQ(compression_coding(Compression::kZstd), "zstd");
}

class MemorySink final : public ByteSink {
 public:
  boost::asio::awaitable<void> write(std::string_view bytes) override {
    data.append(bytes);
    ++writes;
    co_return;
  }
  boost::asio::awaitable<void> finish() override {
    finished = true;
    co_return;
  }
  std::string data;
  int writes = 0;
  bool finished = false;
};

void run(boost::asio::awaitable<void> task) {
  boost::asio::io_context io;
  boost::asio::co_spawn(io, std::move(task), [](std::exception_ptr error) {
    if (error) std::rethrow_exception(error);
  });
  io.run();
}

TEST(CompressingSink, EachWriteReachesTheInnerSinkDecodable) {
  MemorySink inner;
  CompressingSink sink(inner, make_compressor(Compression::kGzip));
  const std::string input = csv_like(200'000);
  run([&]() -> boost::asio::awaitable<void> {
    co_await sink.write(std::string_view(input).substr(0, 500));
    EXPECT_EQ(inner.writes, 1);
    EXPECT_EQ(gunzip(inner.data), input.substr(0, 500));
    co_await sink.write(std::string_view(input).substr(500));
    EXPECT_FALSE(inner.finished);
    co_await sink.finish();
  }());
  EXPECT_TRUE(inner.finished);
  bool complete = false;
  EXPECT_EQ(gunzip(inner.data, &complete), input);
  EXPECT_TRUE(complete);
  EXPECT_EQ(sink.bytes_in(), input.size());
  EXPECT_EQ(sink.bytes_out(), inner.data.size());
}

// A job's result is written without a flush per write: the bytes must then not depend on how
// the pipeline happened to split its writes (a job's SHA-256 is the same for the same rows).
TEST(CompressingSink, WithoutFlushesTheOutputDoesNotDependOnTheWrites) {
  const std::string input = csv_like(600'000);
  for (Compression compression : {Compression::kGzip, Compression::kZstd}) {
    std::vector<std::string> outputs;
    for (std::size_t piece : {std::size_t{700}, std::size_t{65'536}, input.size()}) {
      MemorySink inner;
      CompressingSink sink(inner, make_compressor(compression), false);
      run([&]() -> boost::asio::awaitable<void> {
        for (std::size_t at = 0; at < input.size(); at += piece) {
          co_await sink.write(std::string_view(input).substr(at, piece));
        }
        co_await sink.finish();
      }());
      outputs.push_back(inner.data);
    }
    EXPECT_EQ(outputs[0], outputs[1]) << compression_coding(compression);
    EXPECT_EQ(outputs[0], outputs[2]) << compression_coding(compression);
    EXPECT_EQ(compression == Compression::kGzip ? gunzip(outputs[0]) : unzstd(outputs[0]), input);
  }
}

}  // namespace
}  // namespace sluice
