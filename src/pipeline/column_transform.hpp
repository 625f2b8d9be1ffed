#pragma once

// Column transforms ([datasets.columns.NAME] in the config): rename, timestamp and decimal
// formats, boolean words, NULL text, masks, keyed hashes, value maps, case and truncation.
// Compiled once per dataset when the catalog opens (every problem found then, with its key);
// applied per stream by a RowTransformer that rewrites the cells it changes in place.

#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/row_batch.hpp"

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
  // The column as written: renamed, with its output type (source_type 0 once values change).
  const Column& output() const { return output_; }
  bool changes_values() const { return config_.changes_values(); }
  const ColumnTransformConfig& config() const { return config_; }

  // Per-stream state (a time zone range hint, a keyed hash context, scratch space).
  // Not thread-safe.
  class Worker {
   public:
    virtual ~Worker() = default;
    // Rewrites cell (row, column) of `batch` in place: a new value is appended to the batch's
    // arena and the cell pointed at it (a truncation only shortens the cell).
    virtual void apply(RowBatch& batch, std::size_t row, std::size_t column) = 0;
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

// Applies a dataset's transforms to the batches of one stream, in place: the batch a reader
// handed out is rewritten before it is encoded, so untouched cells are never copied.
// Not thread-safe: one per stream. `transforms` must outlive it.
class RowTransformer {
 public:
  // `columns`: the columns the batches hold (the reader's, in order).
  RowTransformer(const ColumnTransforms& transforms, std::span<const Column> columns);
  ~RowTransformer();
  RowTransformer(const RowTransformer&) = delete;
  RowTransformer& operator=(const RowTransformer&) = delete;

  // The columns as written: output names and types (what encoders' begin() gets).
  const std::vector<Column>& output_columns() const { return output_; }
  // False when no column's values change (renames only): apply() does nothing then.
  bool changes_values() const { return !workers_.empty(); }
  void apply(RowBatch& batch);

 private:
  struct ColumnWorker {
    std::size_t column;
    std::unique_ptr<ColumnTransform::Worker> worker;
  };
  std::vector<Column> output_;
  std::vector<ColumnWorker> workers_;
};

}  // namespace sluice
