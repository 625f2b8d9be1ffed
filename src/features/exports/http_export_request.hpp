#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "http/handler.hpp"
#include "pipeline/export_request.hpp"

namespace sluice {

// GET /v1/exports/{dataset}.{format}[.gz|.zst]?{params}, parsed in this one place.
struct HttpExportRequest {
  ExportRequest request;
  // The URL's suffix chose the compression (`orders.csv.gz`): the download is a gzip/zstd file.
  // Else Accept-Encoding did, and the compression is a content coding (see export_compression).
  bool compressed_file = false;
};

// Reads the path segment (dataset name, format, compression suffix), the query parameters and
// Accept-Encoding. Throws ApiError: 400 `invalid_dataset_name`, 404 `unknown_format`, 406
// `not_acceptable`. The parameters are checked later, against the dataset (plan_export).
HttpExportRequest parse_http_export_request(const HttpRequest& request);

// "orders.csv" → dataset name and format; throws ApiError 400/404 as above.
std::pair<std::string, Format> split_export_name(std::string_view segment);

}  // namespace sluice
