#pragma once

// The orders-like batches the encoder and transform benchmarks share: 8 columns (id,
// created_at, email, country, status, amount, quantity, note), ~100 bytes a row as CSV.

#include <array>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/row_batch.hpp"

namespace sluice {

inline constexpr std::size_t kRowsPerBatch = 1000;
// Several distinct batches so the branch predictor cannot memorise one batch's quoting pattern.
inline constexpr std::size_t kBatches = 8;

inline std::vector<Column> order_columns() {
  return {{"id", LogicalType::kInt},       {"created_at", LogicalType::kTimestamp},
          {"email", LogicalType::kText},   {"country", LogicalType::kText},
          {"status", LogicalType::kText},  {"amount", LogicalType::kDecimal},
          {"quantity", LogicalType::kInt}, {"note", LogicalType::kText}};
}

inline std::vector<RowBatch> order_batches(bool non_ascii = false) {
  static constexpr std::array<const char*, 8> kCountries{"US", "DE", "FR", "GB",
                                                         "JP", "BR", "IN", "NL"};
  static constexpr std::array<const char*, 5> kStatuses{"pending", "paid", "shipped", "cancelled",
                                                        "refunded"};
  static constexpr std::array<const char*, 6> kWords{"please", "deliver", "before",
                                                     "noon",   "gift",    "wrap"};
  std::mt19937 rng(42);
  auto pick = [&rng](unsigned n) { return static_cast<unsigned>(rng() % n); };
  std::vector<RowBatch> batches(kBatches);
  std::size_t id = 1000000;
  char text[64];
  for (RowBatch& batch : batches) {
    batch.reset(order_columns().size());
    for (std::size_t row = 0; row < kRowsPerBatch; ++row, ++id) {
      batch.add_value(std::to_string(id));
      std::snprintf(text, sizeof text, "2025-%02u-%02uT%02u:%02u:%02uZ", 1 + pick(12), 1 + pick(28),
                    pick(24), pick(60), pick(60));
      batch.add_value(text);
      std::snprintf(text, sizeof text, "customer%u@example.com", pick(100000));
      batch.add_value(text);
      batch.add_value(kCountries[pick(kCountries.size())]);
      batch.add_value(kStatuses[pick(kStatuses.size())]);
      std::snprintf(text, sizeof text, "%u.%02u", pick(5000), pick(100));
      batch.add_value(text);
      batch.add_value(std::to_string(1 + pick(9)));
      // A ~40-byte note: one in ten has a comma, one in fifty a quote, one in twenty is NULL.
      const unsigned kind = pick(100);
      if (kind < 5) {
        batch.add_null();
        continue;
      }
      std::string note;
      while (note.size() < 36) {
        note += kWords[pick(kWords.size())];
        note += ' ';
      }
      if (non_ascii && kind % 3 == 0) note.replace(0, 2, "\xc3\xa9");  // 'é'
      if (kind < 15) {
        note[note.size() / 2] = ',';
      } else if (kind < 17) {
        note[4] = '"';
      }
      batch.add_value(note);
    }
  }
  return batches;
}

}  // namespace sluice
