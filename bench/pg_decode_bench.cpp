// The per-row user-space work of a PostgreSQL export, on the `orders` shape (id bigint,
// created_at timestamptz, email text 2% NULL, country text, status text, amount numeric(12,2),
// quantity int, note text ~45% filled): (a) decoding binary COPY tuples into a RowBatch,
// (b) that plus the served CSV encoder (UTF-8 check included), (c) the pass-through of
// PostgreSQL's own CSV records (formula guard on). Batches are the size PgReader hands over
// (32 KiB of values). The `ns/row` counter is CPU time per row. *InOrder: (a) and (b) with
// created_at rising row by row as in bench/pg_common.py's table (a day's rows share a date).
//
//   build/release/sluice_bench --benchmark_filter='PgDecode|PgCsv' --benchmark_repetitions=5

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "encode/encoder.hpp"
#include "sources/pg_binary_decoder.hpp"
#include "sources/pg_wire_bytes.hpp"

namespace sluice {
namespace {

constexpr std::size_t kMessages = 4096;         // distinct tuples, cycled
constexpr std::size_t kBatchBytes = 32 * 1024;  // PgReader's default batch_bytes
constexpr std::int64_t kMicrosPerDay = 86'400'000'000LL;

void put_text(std::string& out, const std::string& text) {
  put_be32(out, static_cast<std::int64_t>(text.size()));
  out += text;
}

// numeric(12,2) of `cents` in PostgreSQL's wire form: base-10000 groups without leading or
// trailing zero groups, the weight of the first one, the sign and the display scale.
void put_numeric(std::string& out, std::int64_t cents) {
  const bool negative = cents < 0;
  const std::uint64_t magnitude = negative ? static_cast<std::uint64_t>(-cents) : cents;
  std::vector<int> groups{static_cast<int>(magnitude % 100 * 100)};  // the fraction's group
  for (std::uint64_t whole = magnitude / 100; whole != 0; whole /= 10000) {
    groups.insert(groups.begin(), static_cast<int>(whole % 10000));
  }
  int weight = static_cast<int>(groups.size()) - 2;
  while (!groups.empty() && groups.front() == 0) {
    groups.erase(groups.begin());
    --weight;
  }
  while (!groups.empty() && groups.back() == 0) groups.pop_back();
  if (groups.empty()) weight = 0;
  put_be32(out, 8 + 2 * static_cast<std::int64_t>(groups.size()));
  put_be16(out, static_cast<int>(groups.size()));
  put_be16(out, weight);
  put_be16(out, negative ? 0x4000 : 0);
  put_be16(out, 2);
  for (int group : groups) put_be16(out, group);
}

std::vector<PgWire> order_wire() {
  return {PgWire::kInt8, PgWire::kTimestampTz, PgWire::kText,    PgWire::kText,
          PgWire::kText, PgWire::kNumeric,     PgWire::kInt4,    PgWire::kText};
}

std::vector<Column> order_pg_columns() {
  return {{"id", LogicalType::kInt, 20},         {"created_at", LogicalType::kTimestamp, 1184},
          {"email", LogicalType::kText, 25},     {"country", LogicalType::kText, 25},
          {"status", LogicalType::kText, 25},    {"amount", LogicalType::kDecimal, 1700},
          {"quantity", LogicalType::kInt, 23},   {"note", LogicalType::kText, 25}};
}

// One CopyData message per tuple, the first preceded by the header as PostgreSQL sends it.
// `in_order`: created_at as bench/pg_common.py makes it for a 10M-row table (rows in insertion
// order, 2023-07-01 plus 6 s a row plus 0-5 s, whole seconds), so consecutive rows share a day.
std::vector<std::string> order_messages(bool in_order = false) {
  static constexpr std::array<const char*, 8> kCountries{"US", "DE", "FR", "GB",
                                                         "JP", "BR", "IN", "NL"};
  static constexpr std::array<const char*, 5> kStatuses{"pending", "paid", "shipped", "cancelled",
                                                        "refunded"};
  static constexpr std::array<const char*, 7> kWords{"please", "deliver", "before", "noon",
                                                     "gift",   "wrap",    "café"};
  std::mt19937_64 rng(42);
  auto pick = [&rng](std::uint64_t n) { return rng() % n; };
  std::vector<std::string> messages;
  for (std::size_t i = 0; i < kMessages; ++i) {
    std::string m;
    put_be16(m, 8);
    put_be32(m, 8);
    put_be64(m, static_cast<std::int64_t>(10'000'000 + i * 7));
    // 2020-01-01 .. 2026-12-31 with microseconds, as now() stores them.
    put_be32(m, 8);
    if (in_order) {
      put_be64(m, 8582 * kMicrosPerDay +
                   static_cast<std::int64_t>(i * 6 + pick(6)) * 1'000'000);
    } else {
      put_be64(m, static_cast<std::int64_t>(7305 + pick(2557)) * kMicrosPerDay +
                   static_cast<std::int64_t>(pick(static_cast<std::uint64_t>(kMicrosPerDay))));
    }
    if (pick(100) < 2) {
      put_be32(m, -1);
    } else {
      put_text(m, "customer" + std::to_string(pick(1'000'000)) + "@example.com");
    }
    put_text(m, kCountries[pick(kCountries.size())]);
    put_text(m, kStatuses[pick(kStatuses.size())]);
    put_numeric(m, static_cast<std::int64_t>(pick(2'000'000)));  // 0.00 .. 19999.99
    put_be32(m, 4);
    put_be32(m, static_cast<std::int64_t>(1 + pick(20)));
    if (pick(100) < 55) {
      put_be32(m, -1);
    } else {
      std::string note;
      while (note.size() < 36) {
        note += kWords[pick(kWords.size())];
        note += ' ';
      }
      // One in ten gets a comma, one in fifty a quote, one in a hundred starts with '-' (each
      // put over an ASCII byte, so the note stays valid UTF-8).
      const auto kind = pick(100);
      const std::size_t ascii_at = note.find(' ');
      if (kind < 10) note[ascii_at] = ',';
      if (kind >= 10 && kind < 12) note[ascii_at] = '"';
      if (kind >= 12 && kind < 13) note[0] = '-';
      put_text(m, note);
    }
    messages.push_back(std::move(m));
  }
  return messages;
}

std::string copy_header() { return std::string("PGCOPY\n\377\r\n\0", 11) + std::string(8, '\0'); }

// Decodes messages from `next` until the batch holds kBatchBytes of values.
std::size_t fill(PgBinaryDecoder& decoder, const std::vector<std::string>& messages,
                 std::size_t& next, RowBatch& batch) {
  batch.reset(8);
  std::size_t rows = 0;
  while (batch.arena_bytes() < kBatchBytes) {
    rows += decoder.decode(messages[next], batch);
    next = (next + 1) % messages.size();
  }
  return rows;
}

void set_counters(benchmark::State& state, std::size_t rows) {
  state.SetItemsProcessed(static_cast<std::int64_t>(rows));
  state.counters["ns/row"] = benchmark::Counter(static_cast<double>(rows) * 1e-9,
                                                benchmark::Counter::kIsRate |
                                                    benchmark::Counter::kInvert);
}

PgBinaryDecoder started_decoder() {
  PgBinaryDecoder decoder(order_wire());
  RowBatch batch;
  batch.reset(8);
  decoder.decode(copy_header(), batch);
  return decoder;
}

void decode_only(benchmark::State& state, bool in_order) {
  const std::vector<std::string> messages = order_messages(in_order);
  PgBinaryDecoder decoder = started_decoder();
  RowBatch batch;
  std::size_t next = 0;
  std::size_t rows = 0;
  for (auto _ : state) {
    rows += fill(decoder, messages, next, batch);
    benchmark::DoNotOptimize(batch.arena().data());
  }
  set_counters(state, rows);
}

void decode_and_encode(benchmark::State& state, bool in_order) {
  const std::vector<std::string> messages = order_messages(in_order);
  PgBinaryDecoder decoder = started_decoder();
  const std::vector<Column> columns = order_pg_columns();
  std::unique_ptr<Encoder> encoder = make_encoder(Format::kCsv);
  ByteBuffer out;
  encoder->begin(columns, out);
  RowBatch batch;
  std::size_t next = 0;
  std::size_t rows = 0;
  for (auto _ : state) {
    rows += fill(decoder, messages, next, batch);
    out.clear();
    encoder->encode(batch, out);
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, rows);
}

void BM_PgDecodeBinary(benchmark::State& state) { decode_only(state, false); }
void BM_PgDecodeBinaryCsv(benchmark::State& state) { decode_and_encode(state, false); }
void BM_PgDecodeBinaryInOrder(benchmark::State& state) { decode_only(state, true); }
void BM_PgDecodeBinaryCsvInOrder(benchmark::State& state) { decode_and_encode(state, true); }

// PostgreSQL's CSV records for the same tuples (COPY ... CSV: LF, NULL empty, '' as "", no
// guard), one cell per row as PgReader holds them in pass-through.
std::vector<RowBatch> order_record_batches() {
  const std::vector<std::string> messages = order_messages();
  PgBinaryDecoder decoder = started_decoder();
  std::unique_ptr<Encoder> records = make_csv_encoder(
      OutputOptions{.header = false, .crlf = false, .formula_guard = false});
  std::vector<RowBatch> batches;
  RowBatch decoded;
  ByteBuffer out;
  for (std::size_t next = 0; next < messages.size();) {
    RowBatch& batch = batches.emplace_back();
    batch.reset(1);
    while (batch.arena_bytes() < kBatchBytes && next < messages.size()) {
      decoded.reset(8);
      decoder.decode(messages[next++], decoded);
      out.clear();
      records->encode(decoded, out);
      batch.add_value(out.view());
    }
  }
  return batches;
}

void BM_PgCsvRecordsGuarded(benchmark::State& state) {
  const std::vector<RowBatch> batches = order_record_batches();
  std::unique_ptr<Encoder> encoder = make_csv_records_encoder();
  ByteBuffer out;
  encoder->begin(order_pg_columns(), out);
  std::size_t next = 0;
  std::size_t rows = 0;
  for (auto _ : state) {
    out.clear();
    encoder->encode(batches[next], out);
    rows += batches[next].rows();
    next = (next + 1) % batches.size();
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, rows);
}

BENCHMARK(BM_PgDecodeBinary);
BENCHMARK(BM_PgDecodeBinaryCsv);
BENCHMARK(BM_PgCsvRecordsGuarded);
BENCHMARK(BM_PgDecodeBinaryInOrder);
BENCHMARK(BM_PgDecodeBinaryCsvInOrder);

}  // namespace
}  // namespace sluice
