// Column transforms' cost (issue 4 target: three typical transforms — a timestamp format with
// a time zone, an email mask, a rename — at most 25% slower than none), in OUTPUT bytes per
// second of the served encoder on the orders-like batches of encode_bench.cpp.
// BM_TransformSlowdown* run a stream with and without the transforms on the same batches,
// alternating, and report the ratio of their times as the `slowdown` counter. Times are of
// transform + encode only (manual timing; refreshing the batch is not counted).

#include <benchmark/benchmark.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "encode/encoder.hpp"
#include "order_batches.hpp"
#include "pipeline/column_transform.hpp"
#include "pipeline/timestamp_format.hpp"

namespace sluice {
namespace {

ColumnTransforms typical_transforms() {
  const std::vector<Column> columns = order_columns();
  ColumnTransforms transforms;
  ColumnTransformConfig created;
  created.column = "created_at";
  created.format = "%d.%m.%Y %H:%M";
  created.time_zone = "Europe/Berlin";
  transforms.add(ColumnTransform(created, columns[1]));
  ColumnTransformConfig email;
  email.column = "email";
  email.mask = MaskKind::kEmail;
  transforms.add(ColumnTransform(email, columns[2]));
  ColumnTransformConfig id;
  id.column = "id";
  id.rename = "Order number";
  transforms.add(ColumnTransform(id, columns[0]));
  return transforms;
}

ColumnTransforms one_transform(const ColumnTransformConfig& config, std::size_t column) {
  ColumnTransforms transforms;
  transforms.add(ColumnTransform(config, order_columns()[column]));
  return transforms;
}

// What a stream does per batch: the reader hands out a batch, the transforms rewrite it in
// place, the encoder writes it. The batch is refreshed from a pristine copy before each
// iteration, outside the timed region (a reader fills a fresh batch every time).
using Clock = std::chrono::steady_clock;

class Stream {
 public:
  Stream(Format format, const ColumnTransforms* transforms)
      : columns_(order_columns()), batches_(order_batches()), encoder_(make_encoder(format)) {
    if (transforms != nullptr) transformer_.emplace(*transforms, columns_);
    encoder_->begin(transformer_ ? transformer_->output_columns() : columns_, out_);
  }
  // Refreshes the work batch (untimed), then returns the time of transform + encode.
  Clock::duration next() {
    work_.copy_from(batches_[next_]);
    next_ = (next_ + 1) % batches_.size();
    out_.clear();
    const auto start = Clock::now();
    if (transformer_) transformer_->apply(work_);
    encoder_->encode(work_, out_);
    benchmark::DoNotOptimize(out_.data());
    benchmark::ClobberMemory();
    return Clock::now() - start;
  }
  std::size_t produced() const { return out_.size(); }

 private:
  std::vector<Column> columns_;
  std::vector<RowBatch> batches_;
  std::unique_ptr<Encoder> encoder_;
  std::optional<RowTransformer> transformer_;
  RowBatch work_;
  ByteBuffer out_;
  std::size_t next_ = 0;
};

void run(benchmark::State& state, Format format, const ColumnTransforms* transforms) {
  Stream stream(format, transforms);
  std::size_t produced = 0;
  for (auto _ : state) {
    state.SetIterationTime(std::chrono::duration<double>(stream.next()).count());
    produced += stream.produced();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(produced));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRowsPerBatch));
}

// Both streams on the same batches, alternating: the ratio of their times is `slowdown`.
void paired(benchmark::State& state, Format format) {
  const ColumnTransforms transforms = typical_transforms();
  Stream plain(format, nullptr);
  Stream transformed(format, &transforms);
  Clock::duration plain_time{}, transformed_time{};
  for (auto _ : state) {
    const Clock::duration a = plain.next();
    const Clock::duration b = transformed.next();
    plain_time += a;
    transformed_time += b;
    state.SetIterationTime(std::chrono::duration<double>(a + b).count());
  }
  state.counters["slowdown"] =
      static_cast<double>(transformed_time.count()) / static_cast<double>(plain_time.count());
}

void BM_CsvServedNoTransforms(benchmark::State& state) { run(state, Format::kCsv, nullptr); }
void BM_CsvServedThreeTransforms(benchmark::State& state) {
  static const ColumnTransforms transforms = typical_transforms();
  run(state, Format::kCsv, &transforms);
}
void BM_JsonlServedNoTransforms(benchmark::State& state) { run(state, Format::kJsonLines, nullptr); }
void BM_JsonlServedThreeTransforms(benchmark::State& state) {
  static const ColumnTransforms transforms = typical_transforms();
  run(state, Format::kJsonLines, &transforms);
}
void BM_TransformSlowdownCsv(benchmark::State& state) { paired(state, Format::kCsv); }
void BM_TransformSlowdownJsonl(benchmark::State& state) { paired(state, Format::kJsonLines); }

// Single transforms, to see where the time goes.
void BM_CsvTimestampFormatOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "created_at";
  config.format = "%d.%m.%Y %H:%M";
  config.time_zone = "Europe/Berlin";
  static const ColumnTransforms transforms = one_transform(config, 1);
  run(state, Format::kCsv, &transforms);
}
void BM_CsvEmailMaskOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "email";
  config.mask = MaskKind::kEmail;
  static const ColumnTransforms transforms = one_transform(config, 2);
  run(state, Format::kCsv, &transforms);
}
void BM_CsvHmacOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "email";
  config.hash_key = "a benchmark key of 32 bytes....";
  static const ColumnTransforms transforms = one_transform(config, 2);
  run(state, Format::kCsv, &transforms);
}
void BM_CsvPlacesOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "amount";
  config.places = 1;
  static const ColumnTransforms transforms = one_transform(config, 5);
  run(state, Format::kCsv, &transforms);
}
// The machinery alone: NULL text on a column that is rarely NULL (every cell is still visited).
void BM_CsvNullTextOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "note";
  config.null_text = "-";
  static const ColumnTransforms transforms = one_transform(config, 7);
  run(state, Format::kCsv, &transforms);
}

// One timestamp value through parse + zone + pattern, without batches or encoders.
void BM_TimestampFormatValue(benchmark::State& state) {
  const TimestampFormat format("%d.%m.%Y %H:%M", "Europe/Berlin", "UTC");
  const std::vector<RowBatch> batches = order_batches();
  std::vector<std::string> values;
  for (std::size_t row = 0; row < kRowsPerBatch; ++row) values.emplace_back(batches[0].cell(row, 1).value);
  std::string out(format.max_size(), '\0');
  std::size_t hint = 0, next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(format.format(values[next], out.data(), hint));
    next = next + 1 == values.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_TimestampFormatValue);
BENCHMARK(BM_CsvServedNoTransforms)->UseManualTime();
BENCHMARK(BM_CsvServedThreeTransforms)->UseManualTime();
BENCHMARK(BM_JsonlServedNoTransforms)->UseManualTime();
BENCHMARK(BM_JsonlServedThreeTransforms)->UseManualTime();
BENCHMARK(BM_TransformSlowdownCsv)->UseManualTime();
BENCHMARK(BM_TransformSlowdownJsonl)->UseManualTime();
BENCHMARK(BM_CsvTimestampFormatOnly)->UseManualTime();
BENCHMARK(BM_CsvEmailMaskOnly)->UseManualTime();
BENCHMARK(BM_CsvHmacOnly)->UseManualTime();
BENCHMARK(BM_CsvPlacesOnly)->UseManualTime();
BENCHMARK(BM_CsvNullTextOnly)->UseManualTime();

}  // namespace
}  // namespace sluice
