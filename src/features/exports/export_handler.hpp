#pragma once

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "pipeline/export_request.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "http/router.hpp"

namespace sluice {

// Answers an export request sent with `Prefer: respond-async` (RFC 7240): the background jobs
// feature queues it (202 Accepted, Content-Location: /v1/jobs/{id}). The request is the one the
// URL asks for; a compression chosen by Accept-Encoding is dropped (a job's result is a file).
using AsyncExportHandler = std::function<boost::asio::awaitable<void>(
    ExportRequest request, const HttpRequest& http, HttpResponder& responder)>;

// GET /v1/datasets and GET /v1/exports/{dataset}.{csv|jsonl}.
// Every download holds a slot of `limiter` (the server's one max_streams) while it runs.
// With `async`, a request that prefers respond-async goes there instead of streaming.
void add_export_routes(Router& router, const DatasetCatalog& catalog, const ServerConfig& config,
                       StreamLimiter& limiter, AsyncExportHandler async = {});

}  // namespace sluice
