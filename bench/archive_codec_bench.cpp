// CRC-32 and raw deflate, side by side: zlib, libdeflate, ISA-L. The archive writer uses the
// winners (src/encode/crc32.cpp, src/encode/deflater.cpp); docs/BENCHMARKS.md has the figures.
//
//   build/release/sluice_bench --benchmark_filter='Crc32|Deflate'
#include <benchmark/benchmark.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/crc32.hpp"
#include "encode/deflater.hpp"

namespace {

constexpr std::size_t kBlock = 1 << 20;

// Incompressible bytes (splitmix64), like photos.
const std::string& random_bytes() {
  static const std::string bytes = [] {
    std::string out(kBlock, '\0');
    std::uint64_t state = 42;
    for (std::size_t i = 0; i + 8 <= out.size(); i += 8) {
      std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      z ^= z >> 31;
      std::memcpy(out.data() + i, &z, 8);
    }
    return out;
  }();
  return bytes;
}

// Text that compresses about like CSV exports and logs do (3-4x).
const std::string& text_bytes() {
  static const std::string bytes = [] {
    std::string out;
    std::uint64_t n = 1;
    static const char* kWords[] = {"delivered", "shipped", "anna.mueller@example.com", "DE",
                                   "2024-03-04T12:00:00Z", "Leave at the door", "FR", "paid"};
    while (out.size() < kBlock) {
      n = n * 6364136223846793005ULL + 1442695040888963407ULL;
      out += std::to_string(n >> 40) + "," + kWords[(n >> 20) % 8] + "," + kWords[(n >> 30) % 8] +
             "," + std::to_string((n >> 8) % 100000) + "\r\n";
    }
    out.resize(kBlock);
    return out;
  }();
  return bytes;
}

void set_throughput(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

void BM_Crc32_zlib(benchmark::State& state) {
  const std::string& data = random_bytes();
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
  }
  set_throughput(state, data.size());
}
BENCHMARK(BM_Crc32_zlib);

void BM_Crc32_libdeflate(benchmark::State& state) {
  const std::string& data = random_bytes();
  for (auto _ : state) benchmark::DoNotOptimize(libdeflate_crc32(0, data.data(), data.size()));
  set_throughput(state, data.size());
}
BENCHMARK(BM_Crc32_libdeflate);

void BM_Crc32_isal(benchmark::State& state) {
  const std::string& data = random_bytes();
  for (auto _ : state) {
    benchmark::DoNotOptimize(crc32_gzip_refl(
        0, reinterpret_cast<const unsigned char*>(data.data()), data.size()));
  }
  set_throughput(state, data.size());
}
BENCHMARK(BM_Crc32_isal);

void BM_Crc32_sluice(benchmark::State& state) {
  const std::string& data = random_bytes();
  for (auto _ : state) benchmark::DoNotOptimize(sluice::crc32_update(0, data));
  set_throughput(state, data.size());
}
BENCHMARK(BM_Crc32_sluice);

const std::string& input_for(benchmark::State& state) {
  return state.range(0) == 0 ? text_bytes() : random_bytes();
}

void report_ratio(benchmark::State& state, std::size_t in, std::size_t out) {
  state.counters["ratio"] = static_cast<double>(in) / static_cast<double>(out);
  set_throughput(state, in);
}

// Streaming raw deflate, 64 KiB in per call (the archive stream's read size).
void BM_Deflate_zlib(benchmark::State& state) {
  const std::string& data = input_for(state);
  std::vector<unsigned char> out(compressBound(kBlock));
  std::size_t produced = 0;
  for (auto _ : state) {
    z_stream zs{};
    deflateInit2(&zs, static_cast<int>(state.range(1)), Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    for (std::size_t at = 0; at < data.size(); at += 65536) {
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + at));
      zs.avail_in = 65536;
      deflate(&zs, at + 65536 >= data.size() ? Z_FINISH : Z_NO_FLUSH);
    }
    produced = zs.total_out;
    deflateEnd(&zs);
  }
  report_ratio(state, data.size(), produced);
}
BENCHMARK(BM_Deflate_zlib)->ArgsProduct({{0, 1}, {1, 6}})->ArgNames({"random", "level"});

void BM_Deflate_isal(benchmark::State& state) {
  const std::string& data = input_for(state);
  const auto level = static_cast<std::uint32_t>(state.range(1));
  std::vector<unsigned char> out(kBlock * 2);
  std::vector<std::uint8_t> level_buf(level == 1 ? ISAL_DEF_LVL1_DEFAULT : ISAL_DEF_LVL2_DEFAULT);
  std::size_t produced = 0;
  for (auto _ : state) {
    isal_zstream zs;
    isal_deflate_init(&zs);
    zs.level = level;
    zs.level_buf = level_buf.data();
    zs.level_buf_size = static_cast<std::uint32_t>(level_buf.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<std::uint32_t>(out.size());
    for (std::size_t at = 0; at < data.size(); at += 65536) {
      zs.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(data.data() + at));
      zs.avail_in = 65536;
      zs.end_of_stream = at + 65536 >= data.size() ? 1 : 0;
      isal_deflate(&zs);
    }
    produced = zs.total_out;
  }
  report_ratio(state, data.size(), produced);
}
BENCHMARK(BM_Deflate_isal)->ArgsProduct({{0, 1}, {1, 2}})->ArgNames({"random", "level"});

// Whole-buffer only: usable per entry for small objects, not for a streaming entry.
void BM_Deflate_libdeflate(benchmark::State& state) {
  const std::string& data = input_for(state);
  libdeflate_compressor* compressor = libdeflate_alloc_compressor(static_cast<int>(state.range(1)));
  std::vector<char> out(libdeflate_deflate_compress_bound(compressor, data.size()));
  std::size_t produced = 0;
  for (auto _ : state) {
    produced = libdeflate_deflate_compress(compressor, data.data(), data.size(), out.data(),
                                           out.size());
  }
  libdeflate_free_compressor(compressor);
  report_ratio(state, data.size(), produced);
}
BENCHMARK(BM_Deflate_libdeflate)->ArgsProduct({{0, 1}, {1, 6}})->ArgNames({"random", "level"});

// What the archive stream runs: sluice::Deflater over 64 KiB pieces.
void BM_Deflate_sluice(benchmark::State& state) {
  const std::string& data = input_for(state);
  sluice::ByteBuffer out(kBlock * 2);
  std::size_t produced = 0;
  for (auto _ : state) {
    sluice::Deflater deflater;
    out.clear();
    for (std::size_t at = 0; at < data.size(); at += 65536) {
      deflater.add(std::string_view(data).substr(at, 65536), out);
    }
    deflater.finish(out);
    produced = out.size();
  }
  report_ratio(state, data.size(), produced);
}
BENCHMARK(BM_Deflate_sluice)->ArgsProduct({{0, 1}})->ArgNames({"random"});

}  // namespace
