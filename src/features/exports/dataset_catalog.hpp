#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "sources/source.hpp"

namespace sluice {

// A dataset ready to serve: its config, the source it reads and its result columns (described
// by the source at start-up, with the config's type overrides applied).
struct Dataset {
  const DatasetConfig* config = nullptr;
  Source* source = nullptr;
  std::vector<Column> columns;
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
