// Column transforms' cost (issue 4 target: three typical transforms — a timestamp format with
// a time zone, an email mask, a rename — at most 25% slower than none), in OUTPUT bytes per
// second of the served encoder on the orders-like batches of encode_bench.cpp.
// BM_TransformSlowdown* encode the same batch with and without the transforms in every
// iteration, alternating, and report the ratio of their times as the `slowdown` counter.

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "encode/encoder.hpp"
#include "order_batches.hpp"
#include "transform/column_transform.hpp"

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

void run(benchmark::State& state, std::unique_ptr<Encoder> encoder) {
  const std::vector<Column> columns = order_columns();
  const std::vector<RowBatch> batches = order_batches();
  ByteBuffer out;
  encoder->begin(columns, out);
  std::size_t produced = 0;
  std::size_t next = 0;
  for (auto _ : state) {
    out.clear();
    encoder->encode(batches[next], out);
    next = (next + 1) % batches.size();
    produced += out.size();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(produced));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kRowsPerBatch));
}

void paired(benchmark::State& state, Format format) {
  const ColumnTransforms transforms = typical_transforms();
  std::unique_ptr<Encoder> plain = make_encoder(format);
  std::unique_ptr<Encoder> transformed = make_transforming_encoder(make_encoder(format), transforms);
  const std::vector<Column> columns = order_columns();
  const std::vector<RowBatch> batches = order_batches();
  ByteBuffer out;
  plain->begin(columns, out);
  transformed->begin(columns, out);
  using Clock = std::chrono::steady_clock;
  Clock::duration plain_time{}, transformed_time{};
  std::size_t next = 0;
  for (auto _ : state) {
    const RowBatch& batch = batches[next];
    next = (next + 1) % batches.size();
    auto t0 = Clock::now();
    out.clear();
    plain->encode(batch, out);
    benchmark::DoNotOptimize(out.data());
    auto t1 = Clock::now();
    out.clear();
    transformed->encode(batch, out);
    benchmark::DoNotOptimize(out.data());
    auto t2 = Clock::now();
    plain_time += t1 - t0;
    transformed_time += t2 - t1;
  }
  state.counters["slowdown"] =
      static_cast<double>(transformed_time.count()) / static_cast<double>(plain_time.count());
}

void BM_CsvServedNoTransforms(benchmark::State& state) { run(state, make_encoder(Format::kCsv)); }
void BM_CsvServedThreeTransforms(benchmark::State& state) {
  static const ColumnTransforms transforms = typical_transforms();
  run(state, make_transforming_encoder(make_encoder(Format::kCsv), transforms));
}
void BM_JsonlServedNoTransforms(benchmark::State& state) {
  run(state, make_encoder(Format::kJsonLines));
}
void BM_JsonlServedThreeTransforms(benchmark::State& state) {
  static const ColumnTransforms transforms = typical_transforms();
  run(state, make_transforming_encoder(make_encoder(Format::kJsonLines), transforms));
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
  run(state, make_transforming_encoder(make_encoder(Format::kCsv), transforms));
}
void BM_CsvEmailMaskOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "email";
  config.mask = MaskKind::kEmail;
  static const ColumnTransforms transforms = one_transform(config, 2);
  run(state, make_transforming_encoder(make_encoder(Format::kCsv), transforms));
}
void BM_CsvHmacOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "email";
  config.hash_key = "a benchmark key of 32 bytes....";
  static const ColumnTransforms transforms = one_transform(config, 2);
  run(state, make_transforming_encoder(make_encoder(Format::kCsv), transforms));
}
void BM_CsvPlacesOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "amount";
  config.places = 1;
  static const ColumnTransforms transforms = one_transform(config, 5);
  run(state, make_transforming_encoder(make_encoder(Format::kCsv), transforms));
}
// The machinery alone: NULL text on a column that is rarely NULL (the batch is still rewritten).
void BM_CsvNullTextOnly(benchmark::State& state) {
  ColumnTransformConfig config;
  config.column = "note";
  config.null_text = "-";
  static const ColumnTransforms transforms = one_transform(config, 7);
  run(state, make_transforming_encoder(make_encoder(Format::kCsv), transforms));
}

BENCHMARK(BM_CsvServedNoTransforms);
BENCHMARK(BM_CsvServedThreeTransforms);
BENCHMARK(BM_JsonlServedNoTransforms);
BENCHMARK(BM_JsonlServedThreeTransforms);
BENCHMARK(BM_TransformSlowdownCsv);
BENCHMARK(BM_TransformSlowdownJsonl);
BENCHMARK(BM_CsvTimestampFormatOnly);
BENCHMARK(BM_CsvEmailMaskOnly);
BENCHMARK(BM_CsvHmacOnly);
BENCHMARK(BM_CsvPlacesOnly);
BENCHMARK(BM_CsvNullTextOnly);

}  // namespace
}  // namespace sluice
