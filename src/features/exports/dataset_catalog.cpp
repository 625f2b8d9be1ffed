#include "features/exports/dataset_catalog.hpp"

#include <boost/json.hpp>

#include "core/api_error.hpp"
#include "features/exports/export_plan.hpp"
#include "sources/pg_source.hpp"
#include "sources/sqlite_source.hpp"

namespace sluice {
namespace {

[[noreturn]] void fail(const Config& config, int line, const std::string& key,
                       const std::string& problem) {
  throw ConfigError(config.file.string() + ":" + std::to_string(line) + ": " + key + ": " +
                    problem);
}

std::unique_ptr<Source> open_source(const Config& config, const SourceConfig& source) {
  try {
    if (source.kind == "sqlite") return make_sqlite_source(source);
    if (source.kind == "postgres") return make_pg_source(source);
  } catch (const SourceError& error) {
    fail(config, source.line, "sources." + source.name, error.what());
  }
  fail(config, source.line, "sources." + source.name + ".kind", "unsupported kind " + source.kind);
}

}  // namespace

DatasetCatalog::DatasetCatalog(const Config& config) : config_(config) {
  for (const auto& [name, source] : config.sources) sources_[name] = open_source(config, source);
  for (std::size_t i = 0; i < config.datasets.size(); ++i) {
    const DatasetConfig& dataset = config.datasets[i];
    std::string key = "datasets[" + std::to_string(i) + "]";
    Dataset ready{&dataset, sources_.at(dataset.source).get(), {}};
    try {
      ready.columns = ready.source->describe(dataset.query);
    } catch (const SourceError& error) {
      fail(config, dataset.line, key + ".query", error.what());
    }
    for (const auto& override_type : dataset.column_types) {
      const std::string& column = override_type.first;
      auto found = std::find_if(ready.columns.begin(), ready.columns.end(),
                                [&](const Column& c) { return c.name == column; });
      if (found == ready.columns.end()) {
        fail(config, dataset.line, key + ".columns." + column, "the query returns no such column");
      }
      found->type = override_type.second;
    }
    for (const FilterConfig& filter : dataset.filters) {
      bool exists = std::any_of(ready.columns.begin(), ready.columns.end(),
                                [&](const Column& c) { return c.name == filter.column; });
      if (!exists) {
        fail(config, filter.line, key + ".filters." + filter.name + ".column",
             "the query returns no column '" + filter.column + "'");
      }
    }
    for (std::size_t j = 0; j < dataset.sortable.size(); ++j) {
      const std::string& column = dataset.sortable[j];
      bool exists = std::any_of(ready.columns.begin(), ready.columns.end(),
                                [&](const Column& c) { return c.name == column; });
      if (!exists) {
        fail(config, dataset.line, key + ".sortable[" + std::to_string(j) + "]",
             "the query returns no column '" + column + "'");
      }
    }
    if (!dataset.order.empty()) {
      try {
        parse_order(dataset.order, dataset.sortable);
      } catch (const ApiError& error) {
        fail(config, dataset.order_line, key + ".order", error.what());
      }
    }
    datasets_.push_back(std::move(ready));
  }
}

DatasetCatalog::~DatasetCatalog() = default;

void DatasetCatalog::close() {
  for (auto& entry : sources_) entry.second->close();
}

const Dataset* DatasetCatalog::find(std::string_view name) const {
  for (const Dataset& dataset : datasets_) {
    if (dataset.config->name == name) return &dataset;
  }
  return nullptr;
}

std::string DatasetCatalog::describe_json() const {
  namespace json = boost::json;
  json::array list;
  for (const Dataset& dataset : datasets_) {
    json::array columns;
    for (const Column& column : dataset.columns) {
      columns.push_back({{"name", column.name}, {"type", to_string(column.type)}});
    }
    json::array filters;
    for (const FilterConfig& filter : dataset.config->filters) {
      json::array operators;
      for (FilterOp op : filter.operators) operators.push_back(json::string(to_string(op)));
      filters.push_back({{"name", filter.name},
                         {"column", filter.column},
                         {"type", to_string(filter.type)},
                         {"operators", std::move(operators)}});
    }
    json::array sortable;
    for (const std::string& column : dataset.config->sortable) sortable.push_back(json::string(column));
    const std::string& name = dataset.config->name;
    list.push_back({{"name", name},
                    {"description", dataset.config->description},
                    {"columns", std::move(columns)},
                    {"filters", std::move(filters)},
                    {"sortable", std::move(sortable)},
                    {"order", dataset.config->order},
                    {"formats", {"csv", "tsv", "jsonl", "json"}},
                    {"urls", {{"csv", "/v1/exports/" + name + ".csv"},
                              {"tsv", "/v1/exports/" + name + ".tsv"},
                              {"jsonl", "/v1/exports/" + name + ".jsonl"},
                              {"json", "/v1/exports/" + name + ".json"}}}});
  }
  return json::serialize(json::object{{"datasets", std::move(list)}});
}

}  // namespace sluice
