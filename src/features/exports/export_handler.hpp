#pragma once

#include "core/config.hpp"
#include "encode/encoder.hpp"
#include "features/exports/dataset_catalog.hpp"
#include "http/router.hpp"

namespace sluice {

// GET /v1/datasets and GET /v1/exports/{dataset}.{csv|jsonl}.
void add_export_routes(Router& router, const DatasetCatalog& catalog, const ServerConfig& config);

// The read budget and flush size that split a stream's byte budget between the reader's
// batches in flight and the encoder's output buffer.
ReadBudget read_budget_for(std::size_t stream_buffer_bytes);
std::size_t flush_bytes_for(std::size_t stream_buffer_bytes);

// "orders.csv" → dataset name and format; throws ApiError 400/404.
std::pair<std::string, Format> split_export_name(std::string_view segment);

}  // namespace sluice
