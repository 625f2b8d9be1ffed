#pragma once

#include <string>
#include <utility>
#include <vector>

#include "encode/compressor.hpp"
#include "encode/encoder.hpp"

namespace sluice {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// What one export asks for, whoever asks: the HTTP endpoint (its path, query string and
// Accept-Encoding), `sluice export` (its flags), later a background job (its JSON body). Each
// transport parses its own form into this one value, in one place; plan_export() then checks it
// against the dataset. Nothing in it has been validated yet.
struct ExportRequest {
  std::string dataset;
  Format format = Format::kCsv;
  Compression compression = Compression::kNone;
  // Filters (`country=DE`, `id.gte=10`), `columns`, `order`, `limit` and the output options
  // (`header`, `bom`, `delimiter`, `line_ending`), as given and in the order given.
  QueryParams params;
  std::string request_id;  // for logs and the database's application_name
};

}  // namespace sluice
