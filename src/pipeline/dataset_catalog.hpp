#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "sources/source.hpp"
#include "pipeline/column_transform.hpp"

namespace sluice {

// A dataset ready to serve: its config, the source it reads, its result columns (described
// by the source at start-up, with the config's type overrides applied) and its compiled column
// transforms. Requests name columns by their output names (output_columns).
struct Dataset {
  const DatasetConfig* config = nullptr;
  Source* source = nullptr;
  std::vector<Column> columns;
  ColumnTransforms transforms;
  std::vector<Column> output_columns;  // columns[i] as written: renamed, with its output type
  std::vector<Column> version_columns; // what config->version_query returns (empty: none)

  // output_columns, or `columns` when no output columns were set (no transforms compiled).
  const std::vector<Column>& written_columns() const {
    return output_columns.empty() ? columns : output_columns;
  }

  // The column the query returns under `output_name`, or nullptr.
  const Column* find_by_output_name(std::string_view output_name) const {
    const std::vector<Column>& written = written_columns();
    for (std::size_t i = 0; i < written.size(); ++i) {
      if (written[i].name == output_name) return &columns[i];
    }
    return nullptr;
  }
  // The output name of the query's column `source_name` (itself when not renamed).
  std::string output_name(std::string_view source_name) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (columns[i].name == source_name) return written_columns()[i].name;
    }
    return std::string(source_name);
  }
};

// Every configured source and dataset, built once at start-up and then read-only.
// Thread-safe after construction.
class DatasetCatalog {
 public:
  // Opens the sources and describes every dataset's query; throws ConfigError naming the
  // dataset's line when a query does not prepare or an override names an unknown column.
  explicit DatasetCatalog(const Config& config);
  ~DatasetCatalog();

  const Dataset* find(std::string_view name) const;
  // Every dataset's name, in the config's order.
  std::vector<std::string> names() const;
  // The opened source of [sources.NAME], or nullptr (cubes read through it too).
  Source* source(std::string_view name) const;
  // Closes the sources' idle connections (see Source::close): call when the server stopped.
  void close();
  const std::vector<Dataset>& datasets() const { return datasets_; }
  // GET /v1/datasets: names, columns with types, filters with types and operators, formats.
  std::string describe_json() const;

 private:
  const Config& config_;
  std::map<std::string, std::unique_ptr<Source>> sources_;
  std::vector<Dataset> datasets_;
};

}  // namespace sluice
