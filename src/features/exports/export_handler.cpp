#include "features/exports/export_handler.hpp"

#include <boost/json.hpp>
#include <chrono>
#include <optional>

#include "core/api_error.hpp"
#include "core/file_name_template.hpp"
#include "core/sha256.hpp"
#include "http/auth.hpp"
#include "encode/compressing_sink.hpp"
#include "features/exports/export_compression.hpp"
#include "features/exports/export_metrics.hpp"
#include "features/exports/source_error_response.hpp"
#include "features/exports/http_export_request.hpp"
#include "pipeline/export_pipeline.hpp"
#include "http/content_disposition.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr std::string_view kIntegrityTrailers = "Sluice-Rows, Sluice-Sha256, Content-Digest";

// RFC 9530's Content-Digest (base64 in a byte sequence) for generic clients, and the same
// digest as hex, comparable with `sha256sum`, with the row count.
Headers integrity_trailers(std::uint64_t rows, const std::array<std::uint8_t, 32>& digest) {
  return {{"Sluice-Rows", std::to_string(rows)},
          {"Sluice-Sha256", to_hex(digest)},
          {"Content-Digest", "sha-256=:" + to_base64(digest) + ":"}};
}

Headers download_headers(const Dataset& dataset, Format format,
                         const ExportCompression& compression) {
  std::string file_name =
      expand_file_name(dataset.config->file_name, dataset.config->name,
                       std::chrono::system_clock::now()) +
      "." + std::string(file_extension(format));
  if (compression.as_file) {
    file_name += "." + std::string(compression_suffix(compression.compression));
  }
  return {
      {"Content-Type", std::string(content_type(format))},
      {"Content-Disposition", content_disposition(file_name)},
      {"Cache-Control", "no-store"},
      {"X-Accel-Buffering", "no"},
      {"X-Content-Type-Options", "nosniff"},
  };
}

asio::awaitable<void> handle_export(const DatasetCatalog& catalog, const ServerConfig& config,
                                    StreamLimiter& limiter, const AsyncExportHandler& async,
                                    const HttpRequest& request, HttpResponder& responder) {
  // Before the request is read further: a caller who may not read the dataset learns nothing
  // about it (dataset names hold no '.': the name ends at the first one).
  const std::string& file = request.segments.at(2);
  require_scope(request, "datasets:" + file.substr(0, file.find('.')));
  const HttpExportRequest parsed = parse_http_export_request(request);
  if (catalog.find(parsed.request.dataset) == nullptr) {  // listing only what the caller may read
    throw unknown_dataset(catalog, parsed.request.dataset, [&request](std::string_view name) {
      return may_read_dataset(request, name);
    });
  }
  if (async && request.method == "GET" && request.has_token("Prefer", "respond-async")) {
    ExportRequest queued = parsed.request;
    if (!parsed.compressed_file) queued.compression = Compression::kNone;
    co_await async(std::move(queued), request, responder);
    co_return;
  }
  ExportPlan plan = plan_export(catalog, parsed.request);
  const Dataset& dataset = *plan.dataset;
  if (request.method == "HEAD") {
    // The headers a GET would get once its request checked out (a 4xx for a wrong one, as for
    // GET), without running the query: a HEAD costs the database nothing. An error that only
    // the query would find (the source down, a failing SQL) shows on the GET.
    const ExportCompression compression{plan.compression, parsed.compressed_file};
    Headers headers = download_headers(dataset, plan.format, compression);
    add_compression_headers(headers, compression);
    ByteSink* sink = co_await responder.start_stream(200, std::move(headers));
    co_await sink->finish();
    co_return;
  }
  StreamSlot slot = limiter.acquire(export_metrics().streams);

  // The first batch is awaited before the headers go out, so a failing query still gets a
  // proper status and JSON body; it is small, so the first bytes leave at once.
  // A client that leaves meanwhile cancels this coroutine (the session's peer watch): the
  // awaited step fails and the pipeline's destructor stops the query.
  std::unique_ptr<ExportPipeline> pipeline;
  try {
    pipeline = co_await ExportPipeline::open(std::move(plan),
                                             StreamBudget{config.stream_buffer_bytes});
  } catch (const SourceError& error) {
    throw api_error_from(error);
  }
  const ExportPlan& running = pipeline->plan();
  const ExportCompression compression{running.compression, parsed.compressed_file};
  Headers headers = download_headers(dataset, running.format, compression);
  add_compression_headers(headers, compression);
  if (responder.trailers_accepted()) headers.emplace_back("Trailer", kIntegrityTrailers);
  ByteSink* sink = co_await responder.start_stream(200, std::move(headers));
  slot.begin();
  // pipeline (encoder → [compressor]) → [SHA-256] → wire count → socket: the digest is of the
  // bytes on the wire, as RFC 9530 defines Content-Digest for a content-encoded representation.
  CountingSink wire(*sink, export_metrics().bytes_sent);
  sink = &wire;
  // `TE: trailers`: the row count and the SHA-256 of the body follow the last chunk.
  std::uint64_t rows = 0;
  std::optional<Sha256Sink> integrity;
  if (responder.trailers_accepted()) {
    integrity.emplace(*sink, [&responder, &rows](const std::array<std::uint8_t, 32>& digest) {
      responder.set_trailers(integrity_trailers(rows, digest));
    });
    sink = &*integrity;
  }
  const std::function<void(const PipelineStats&)> count_rows = [&rows](const PipelineStats& stats) {
    rows = stats.rows;
  };
  std::string failure;
  try {
    co_await pipeline->run(*sink, count_rows);
  } catch (const std::exception& error) {
    failure = describe_failure(error);
  }
  if (failure.empty()) {
    slot.complete();
    co_return;
  }
  // Stop the database first, then end the transfer without its last chunk (the access log
  // says why).
  pipeline->cancel();
  responder.abort(failure);
}

// GET /v1/datasets: only the datasets the caller may read; a caller without a token who may
// read none is told to bring one.
std::string readable_datasets_json(const DatasetCatalog& catalog, const HttpRequest& request) {
  std::string all = catalog.describe_json();
  if (request.caller == nullptr) return all;  // no access control
  boost::json::value listing = boost::json::parse(all);
  boost::json::array& datasets = listing.at("datasets").as_array();
  for (auto it = datasets.begin(); it != datasets.end();) {
    const boost::json::string& name = it->at("name").as_string();
    it = may_read_dataset(request, std::string_view(name.data(), name.size())) ? it + 1
                                                                                 : datasets.erase(it);
  }
  if (datasets.empty() && !request.caller->authenticated) require_scope(request, "datasets");
  return boost::json::serialize(listing);
}

}  // namespace

void add_export_routes(Router& router, const DatasetCatalog& catalog, const ServerConfig& config,
                       StreamLimiter& limiter, AsyncExportHandler async) {
  export_metrics();  // every series is listed from the start
  router.add("GET", {"v1", "datasets"},
             [&catalog](const HttpRequest& request,
                        HttpResponder& responder) -> asio::awaitable<void> {
               std::string body = readable_datasets_json(catalog, request);
               // Built outside co_await: g++ 12 miscompiles braced pair lists inside it.
               Headers headers{{"Content-Type", "application/json"}};
               co_await responder.send(200, std::move(headers), std::move(body));
             },
             Access::by_handler());
  router.add("GET", {"v1", "exports", "*"},
             [&catalog, &config, &limiter, async = std::move(async)](const HttpRequest& request,
                                                                     HttpResponder& responder) {
               return handle_export(catalog, config, limiter, async, request, responder);
             },
             Access::by_handler());
}

}  // namespace sluice
