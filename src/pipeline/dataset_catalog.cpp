#include "pipeline/dataset_catalog.hpp"

#include <boost/json.hpp>

#include "core/api_error.hpp"
#include "pipeline/export_plan.hpp"
#include "pipeline/pipeline_metrics.hpp"
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

// Compiles [datasets.columns.NAME] against the described columns; output names must differ.
void compile_transforms(const Config& config, const std::string& key, Dataset& ready) {
  for (const ColumnTransformConfig& transform : ready.config->transforms) {
    const std::string column_key = key + ".columns." + transform.column;
    auto found = std::ranges::find(ready.columns, transform.column, &Column::name);
    if (found == ready.columns.end()) {
      fail(config, transform.line, column_key, "the query returns no such column");
    }
    try {
      ready.transforms.add(ColumnTransform(transform, *found));
    } catch (const ColumnTransformError& error) {
      fail(config, transform.line, column_key + "." + error.key(), error.what());
    }
  }
  for (const Column& column : ready.columns) {
    Column output = ready.transforms.output_column(column);
    auto clash = std::ranges::find(ready.output_columns, output.name, &Column::name);
    if (clash != ready.output_columns.end()) {
      const ColumnTransformConfig* renamed = nullptr;
      for (const ColumnTransformConfig& transform : ready.config->transforms) {
        if (!transform.rename.empty() &&
            (transform.column == column.name || transform.rename == output.name)) {
          renamed = &transform;
        }
      }
      const int line = renamed != nullptr ? renamed->line : ready.config->line;
      fail(config, line, key + ".columns." + (renamed ? renamed->column : column.name) + ".rename",
           "two columns would both be written as '" + output.name + "'");
    }
    ready.output_columns.push_back(std::move(output));
  }
}

// The default order as a request would spell it: output names.
std::string default_order(const Dataset& dataset) {
  if (dataset.config->order.empty()) return {};
  std::string order;
  for (const OrderKey& key : parse_order(dataset.config->order, dataset.config->sortable)) {
    order += (order.empty() ? "" : ",") + std::string(key.descending ? "-" : "") +
             dataset.output_name(key.column);
  }
  return order;
}

}  // namespace

DatasetCatalog::DatasetCatalog(const Config& config) : config_(config) {
  pipeline_metrics();  // the sources' and the pipeline's series are listed from the start
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
    if (!dataset.version_query.empty()) {
      try {
        ready.version_columns = ready.source->describe(dataset.version_query);
      } catch (const SourceError& error) {
        fail(config, dataset.line, key + ".version_query", error.what());
      }
      if (ready.version_columns.empty()) {
        fail(config, dataset.line, key + ".version_query", "the query returns no column");
      }
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
    compile_transforms(config, key, ready);
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

Source* DatasetCatalog::source(std::string_view name) const {
  auto it = sources_.find(std::string(name));
  return it == sources_.end() ? nullptr : it->second.get();
}

std::vector<std::string> DatasetCatalog::names() const {
  std::vector<std::string> names;
  for (const Dataset& dataset : datasets_) names.push_back(dataset.config->name);
  return names;
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
    for (const Column& column : dataset.output_columns) {
      columns.push_back({{"name", column.name}, {"type", to_string(column.type)}});
    }
    json::array filters;
    for (const FilterConfig& filter : dataset.config->filters) {
      json::array operators;
      for (FilterOp op : filter.operators) operators.push_back(json::string(to_string(op)));
      filters.push_back({{"name", filter.name},
                         {"column", dataset.output_name(filter.column)},
                         {"type", to_string(filter.type)},
                         {"operators", std::move(operators)}});
    }
    json::array sortable;
    for (const std::string& column : dataset.config->sortable) {
      sortable.push_back(json::string(dataset.output_name(column)));
    }
    const std::string& name = dataset.config->name;
    json::object entry{{"name", name},
                       {"description", dataset.config->description},
                       {"columns", std::move(columns)},
                       {"filters", std::move(filters)},
                       {"sortable", std::move(sortable)},
                       {"formats", {"csv", "tsv", "jsonl", "json"}},
                       {"compressions", {"gz", "zst"}},
                       {"urls", {{"csv", "/v1/exports/" + name + ".csv"},
                                 {"tsv", "/v1/exports/" + name + ".tsv"},
                                 {"jsonl", "/v1/exports/" + name + ".jsonl"},
                                 {"json", "/v1/exports/" + name + ".json"}}}};
    // Only a dataset with a default order has the key ("" would read as an order).
    if (!dataset.config->order.empty()) entry["order"] = default_order(dataset);
    list.push_back(std::move(entry));
  }
  return json::serialize(json::object{{"datasets", std::move(list)}});
}

}  // namespace sluice
