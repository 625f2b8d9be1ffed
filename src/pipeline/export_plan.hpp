#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/api_error.hpp"
#include "encode/compressor.hpp"
#include "encode/encoder.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "pipeline/export_request.hpp"

namespace sluice {

// What one export request asks for, validated against its dataset: the selected columns and
// the SQL with every user value bound as a parameter. No user text ever becomes SQL: column
// names come from the dataset's described columns, operators from a fixed set.
struct ExportPlan {
  const Dataset* dataset = nullptr;
  Format format = Format::kCsv;
  Compression compression = Compression::kNone;  // of the bytes the encoder writes
  OutputOptions output;         // the dataset's [datasets.output] with the request's overrides
  std::vector<Column> columns;  // selected, in output order
  QuerySpec query;
};

// Reserved (non-filter) parameters.
inline constexpr std::string_view kColumnsParam = "columns";
inline constexpr std::string_view kLimitParam = "limit";
inline constexpr std::string_view kOrderParam = "order";

struct OrderKey {
  std::string column;
  bool descending = false;
};

// Parses an order list, `-created_at,id` (a leading '-' sorts descending), against the
// dataset's sortable columns; throws ApiError(400) naming parameter 'order' and what is allowed.
std::vector<OrderKey> parse_order(std::string_view text, const std::vector<std::string>& sortable);

// Builds the plan; throws ApiError(400) naming the offending parameter and what is allowed.
// Parameters: declared filters as `name=v`, `name=v1,v2` (in), `name.op=v`; `columns=a,b`;
// `limit=n`; `order=-a,b` (else the dataset's default order, else the source's order);
// `header`, `bom`, `delimiter`, `line_ending` (see output_params.hpp).
ExportPlan plan_export(const Dataset& dataset, Format format, const QueryParams& params);

// ApiError 404 `unknown_dataset` for `name`, listing the datasets that exist (at most 100, in
// the message and as the body's "datasets" array); with `shown`, only those it accepts (the
// ones the caller may read).
ApiError unknown_dataset(const DatasetCatalog& catalog, std::string_view name,
                         const std::function<bool(std::string_view)>& shown = {});

// The plan for `request`: its dataset looked up in `catalog` (unknown_dataset() when there is
// none), then plan_export() above, with the request's compression and id.
ExportPlan plan_export(const DatasetCatalog& catalog, const ExportRequest& request);

}  // namespace sluice
