#pragma once

// Column transforms ([datasets.columns.NAME] in the config): rename, timestamp and decimal
// formats, boolean words, NULL text, masks, keyed hashes, value maps, case and truncation.
// Compiled once per dataset when the catalog opens (every problem found then, with its key);
// applied per stream by an Encoder wrapper that rewrites only the cells it changes.

#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "encode/encoder.hpp"
#include "sources/row_batch.hpp"

namespace sluice {

// A transform that does not fit its column. `key` is the config key at fault ("format",
// "time_zone", ...), relative to the column's table.
class ColumnTransformError : public std::runtime_error {
 public:
  ColumnTransformError(std::string key, const std::string& problem)
      : std::runtime_error(problem), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// One column's transform, compiled: immutable, shared by every stream of the dataset.
class ColumnTransform {
 public:
  // Throws ColumnTransformError when `config` cannot apply to `source` (its type, a zone or
  // pattern that does not load).
  ColumnTransform(const ColumnTransformConfig& config, const Column& source);
  ~ColumnTransform();
  ColumnTransform(ColumnTransform&&) noexcept;
  ColumnTransform& operator=(ColumnTransform&&) noexcept;

  const std::string& source_name() const { return config_.column; }
  const std::string& output_name() const { return output_.name; }
  LogicalType output_type() const { return output_.type; }
  bool changes_values() const { return config_.changes_values(); }
  const ColumnTransformConfig& config() const { return config_; }

  // Per-stream state (a time zone range hint, a keyed hash context, scratch space).
  // Not thread-safe.
  class Worker {
   public:
    virtual ~Worker() = default;
    // Rewrites cell (row, column) of `out`, which holds a copy of the cell `in`.
    virtual void apply(Cell in, RowBatch& out, std::size_t row, std::size_t column) = 0;
  };
  std::unique_ptr<Worker> start() const;

  struct Compiled;

 private:
  ColumnTransformConfig config_;
  Column output_;
  std::unique_ptr<Compiled> compiled_;
};

// Every transform of one dataset, looked up by the column name the query returns.
class ColumnTransforms {
 public:
  void add(ColumnTransform transform) { transforms_.push_back(std::move(transform)); }
  bool empty() const { return transforms_.empty(); }
  const ColumnTransform* find(std::string_view source_name) const;
  // The name and type a column is written with (its own when it has no transform).
  Column output_column(const Column& source) const;
  // True when any of `columns` has a transform that can change a value.
  bool changes_values(std::span<const Column> columns) const;

 private:
  std::vector<ColumnTransform> transforms_;
};

// Wraps `inner`: begin() hands it the output names and types; encode() hands it each batch
// with the transformed cells rewritten (a batch is passed through untouched when no selected
// column changes values). `transforms` must outlive the encoder.
std::unique_ptr<Encoder> make_transforming_encoder(std::unique_ptr<Encoder> inner,
                                                   const ColumnTransforms& transforms);

}  // namespace sluice
