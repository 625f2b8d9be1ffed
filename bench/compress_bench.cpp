// Streaming compression of export bytes: zlib vs ISA-L igzip for gzip, and zstd level 3 with the
// parameters exports use, on CSV from the demo generator (the `orders` table, exported by the
// real pipeline). Each write of `chunk` bytes ends with a flush, as in a download: the pipeline
// writes at most stream_buffer_bytes/4 (64 KiB by default) and sends each write at once.
// Counters: ratio = compressed/raw, state = the compressor's heap bytes (its per-stream memory).

#include <benchmark/benchmark.h>
#include <unistd.h>
#include <zstd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>

#include "app/demo_data.hpp"
#include "core/config.hpp"
#include "encode/compressor.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "features/exports/export_handler.hpp"
#include "pipeline/export_pipeline.hpp"
#include "pipeline/export_plan.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

class StringSink final : public ByteSink {
 public:
  explicit StringSink(std::string& out) : out_(out) {}
  asio::awaitable<void> write(std::string_view bytes) override {
    out_.append(bytes);
    co_return;
  }
  asio::awaitable<void> finish() override { co_return; }

 private:
  std::string& out_;
};

asio::awaitable<void> export_csv(const Dataset& dataset, std::string& out) {
  auto pipeline = co_await ExportPipeline::open(plan_export(dataset, Format::kCsv, {}),
                                                StreamBudget{256 * 1024});
  StringSink sink(out);
  co_await pipeline->run(sink);
}

// 150,000 demo orders as CSV (~12.5 MB), made once per process; or the file named by
// $SLUICE_COMPRESS_INPUT (bench/compress_vs_gzip.py passes the file it gives gzip and zstd).
const std::string& demo_csv() {
  static const std::string csv = [] {
    if (const char* input = std::getenv("SLUICE_COMPRESS_INPUT")) {
      std::ifstream file(input, std::ios::binary);
      if (!file) throw std::runtime_error(std::string("cannot read ") + input);
      return std::string(std::istreambuf_iterator<char>(file), {});
    }
    DemoOptions options;
    options.dir = std::filesystem::temp_directory_path() /
                  ("sluice-compress-bench-" + std::to_string(::getpid()));
    options.rows = 150'000;
    std::ostringstream log;
    DemoSetup setup = prepare_demo(options, log);
    std::string out;
    {
      Config config = load_config(setup.config_file);
      asio::io_context io;  // before the catalog, as in `sluice export`
      DatasetCatalog catalog(config);
      asio::co_spawn(io, export_csv(*catalog.find("orders"), out), [](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
      });
      io.run();
    }
    std::filesystem::remove_all(options.dir);
    return out;
  }();
  return csv;
}

template <typename Make>
void run(benchmark::State& state, Make make, bool flush = true) {
  const std::string& csv = demo_csv();
  const auto chunk = static_cast<std::size_t>(state.range(0));
  ByteBuffer out(chunk * 2);
  std::size_t compressed = 0;
  std::size_t state_bytes = 0;
  for (auto _ : state) {
    auto compressor = make();
    compressed = 0;
    for (std::size_t at = 0; at < csv.size(); at += chunk) {
      out.clear();
      compressor->compress(std::string_view(csv).substr(at, chunk), out, flush);
      compressed += out.size();
    }
    out.clear();
    compressor->finish(out);
    compressed += out.size();
    state_bytes = compressor->state_bytes();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * csv.size()));
  state.counters["ratio"] = static_cast<double>(compressed) / static_cast<double>(csv.size());
  state.counters["state_KiB"] = static_cast<double>(state_bytes) / 1024.0;
}

void BM_GzipZlib1(benchmark::State& state) {
  run(state, [] { return make_zlib_gzip_compressor(1); });
}
void BM_GzipZlib6(benchmark::State& state) {
  run(state, [] { return make_zlib_gzip_compressor(6); });
}
void BM_GzipIgzip1(benchmark::State& state) {
  run(state, [] { return make_igzip_compressor(1); });
}
void BM_GzipIgzip1Large(benchmark::State& state) {
  run(state, [] { return make_igzip_compressor(1, true); });
}
void BM_GzipIgzip2(benchmark::State& state) {
  run(state, [] { return make_igzip_compressor(2); });
}
void BM_ZstdExport(benchmark::State& state) {
  run(state, [] { return make_zstd_compressor(export_zstd_tuning()); });
}
// Level 3 with libzstd's own parameters for an input of unknown size (window 2 MiB).
void BM_Zstd3Default(benchmark::State& state) {
  run(state, [] { return make_zstd_compressor(ZstdTuning{}); });
}
void BM_Zstd3Tuned(benchmark::State& state) {
  ZstdTuning tuning;
  tuning.window_log = static_cast<int>(state.range(1));
  tuning.hash_log = static_cast<int>(state.range(2));
  tuning.chain_log = static_cast<int>(state.range(3));
  tuning.min_match = static_cast<int>(state.range(4));
  run(state, [tuning] { return make_zstd_compressor(tuning); });
}
void BM_Zstd1(benchmark::State& state) {
  ZstdTuning tuning;
  tuning.level = 1;
  run(state, [tuning] { return make_zstd_compressor(tuning); });
}

// The same parameters without a flush per write, and libzstd's one-shot ZSTD_compress2 over the
// whole input (what `zstd -b3` measures): what the streaming and the flushes cost.
void BM_ZstdExportNoFlush(benchmark::State& state) {
  run(
      state, [] { return make_zstd_compressor(export_zstd_tuning()); }, false);
}
void BM_Zstd3OneShot(benchmark::State& state) {
  const std::string& csv = demo_csv();
  std::string out(ZSTD_compressBound(csv.size()), '\0');
  std::size_t size = 0;
  ZSTD_CCtx* context = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, 3);
  for (auto _ : state) {
    size = ZSTD_compress2(context, out.data(), out.size(), csv.data(), csv.size());
    benchmark::DoNotOptimize(out.data());
  }
  ZSTD_freeCCtx(context);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * csv.size()));
  state.counters["ratio"] = static_cast<double>(size) / static_cast<double>(csv.size());
}

constexpr std::int64_t kWrite = 64 * 1024;
constexpr std::int64_t kBigWrite = 256 * 1024;

BENCHMARK(BM_GzipZlib1)->Arg(kWrite)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GzipZlib6)->Arg(kWrite)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GzipIgzip1)
    ->Arg(8192)
    ->Arg(32768)
    ->Arg(kWrite)
    ->Arg(kBigWrite)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GzipIgzip1Large)->Arg(kWrite)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GzipIgzip2)->Arg(kWrite)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ZstdExport)
    ->Arg(8192)
    ->Arg(32768)
    ->Arg(kWrite)
    ->Arg(kBigWrite)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd3Default)->Arg(kWrite)->Arg(kBigWrite)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd3Tuned)
    ->Args({kWrite, 17, 0, 0, 0})
    ->Args({kWrite, 18, 15, 15, 0})
    ->Args({kWrite, 17, 14, 14, 0})
    ->Args({kWrite, 17, 14, 14, 6})
    ->Args({kWrite, 17, 13, 13, 0})
    ->Args({kWrite, 17, 14, 12, 0})
    ->Args({kWrite, 16, 14, 14, 0})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ZstdExportNoFlush)->Arg(kWrite)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd3OneShot)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd1)->Arg(kWrite)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice
