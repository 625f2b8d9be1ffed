#include "features/exports/export_handler.hpp"

#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <iostream>
#include <optional>

#include "core/api_error.hpp"
#include "core/file_name_template.hpp"
#include "core/metrics.hpp"
#include "core/sha256.hpp"
#include "encode/compressing_sink.hpp"
#include "features/exports/export_compression.hpp"
#include "features/exports/export_pipeline.hpp"
#include "features/exports/export_plan.hpp"
#include "features/exports/output_params.hpp"
#include "http/content_disposition.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Holds one of the server's `max_streams` export slots for the lifetime of a download.
class StreamSlot {
 public:
  explicit StreamSlot(std::size_t max_streams) {
    std::int64_t active = metrics().active_streams.fetch_add(1) + 1;
    if (active > static_cast<std::int64_t>(max_streams)) {
      metrics().active_streams.fetch_sub(1);
      throw ApiError(503, "too_many_streams", "the server is at its limit of concurrent downloads");
    }
    metrics().streams_started_total.fetch_add(1, std::memory_order_relaxed);
  }
  ~StreamSlot() { metrics().active_streams.fetch_sub(1); }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;
};

// Clears the responder's client-gone callback when the handler's scope ends, whichever way.
struct ClientGoneHook {
  HttpResponder& responder;
  ~ClientGoneHook() { responder.on_client_gone({}); }
};

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
                                    const HttpRequest& request, HttpResponder& responder) {
  auto [segment, suffix] = split_compression_suffix(request.segments.back());
  auto [name, format] = split_export_name(segment);
  const Dataset* dataset = catalog.find(name);
  if (dataset == nullptr) {
    throw ApiError(404, "unknown_dataset", "no dataset named '" + name + "'; see /v1/datasets");
  }
  ExportPlan plan = plan_export(*dataset, format, request.params);
  plan.query.request_id = request.request_id;
  const ExportCompression compression = choose_export_compression(suffix, request);
  StreamSlot slot(config.max_streams);

  auto executor = co_await asio::this_coro::executor;
  // The first batch is awaited before the headers go out, so a failing query still gets a
  // proper status and JSON body; it is small, so the first bytes leave at once.
  std::unique_ptr<BatchReader> reader;
  ClientGoneHook hook{responder};  // declared after `reader`: unhooked before it is destroyed
  RowBatch* first = nullptr;
  bool failed_for_gone_client = false;
  try {
    reader = co_await dataset->source->open(std::move(plan.query),
                                            read_budget_for(config.stream_buffer_bytes), executor,
                                            plan.columns);
    // A client that leaves while the query finds no rows must stop it, not only the next write.
    responder.on_client_gone([&reader] { reader->cancel(); });
    if (responder.client_gone()) reader->cancel();
    first = co_await reader->next();
  } catch (const SourceError& error) {
    if (!responder.client_gone()) throw api_error_from(error);
    failed_for_gone_client = true;
  }
  if (failed_for_gone_client) {
    responder.abort();
    metrics().streams_aborted_total.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  try {
    check_first_batch_utf8(first, reader->columns(), format, plan.output);
  } catch (const ApiError&) {
    reader->cancel();
    throw;
  }
  Headers headers = download_headers(*dataset, format, compression);
  add_compression_headers(headers, compression);
  if (responder.trailers_accepted()) headers.emplace_back("Trailer", kIntegrityTrailers);
  ByteSink* sink = co_await responder.start_stream(200, std::move(headers));
  if (request.method == "HEAD") {
    co_await sink->finish();
    co_return;
  }
  // encoder → [compression] → [SHA-256] → wire count → socket: the digest is of the bytes on
  // the wire, as RFC 9530 defines Content-Digest for a content-encoded representation.
  CountingSink wire(*sink, metrics().bytes_sent_total);
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
  std::optional<CompressingSink> compressing;
  if (compression.compression != Compression::kNone) {
    compressing.emplace(*sink, make_compressor(compression.compression));
    sink = &*compressing;
  }
  std::unique_ptr<Encoder> encoder = encoder_for(*reader, format, plan.output);
  std::string failure;
  try {
    co_await run_pipeline(*reader, first, *encoder, *sink, flush_bytes_for(config.stream_buffer_bytes),
                          [&rows](const PipelineStats& stats) { rows = stats.rows; },
                          &dataset->transforms);
  } catch (const std::exception& error) {
    failure = error.what();
  }
  if (failure.empty()) {
    metrics().streams_completed_total.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  // Stop the database first, then end the transfer without its last chunk.
  reader->cancel();
  responder.abort();
  metrics().streams_aborted_total.fetch_add(1, std::memory_order_relaxed);
  std::clog << "export " << request.request_id << " aborted: "
            << (responder.client_gone() ? "the client left" : failure) << '\n';
}

}  // namespace

ReadBudget read_budget_for(std::size_t stream_buffer_bytes) {
  ReadBudget budget;
  // Two batches (one filling, one being encoded) of 1/8 of the budget, each with a cell index of
  // at most as much again, plus the output buffer (1/4): the pipeline stays within its budget.
  budget.batches_in_flight = 2;
  budget.batch_bytes = stream_buffer_bytes / 8;
  return budget;
}

std::size_t flush_bytes_for(std::size_t stream_buffer_bytes) { return stream_buffer_bytes / 4; }

std::pair<std::string, Format> split_export_name(std::string_view segment) {
  std::size_t dot = segment.find('.');
  std::string_view name = segment.substr(0, dot);
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), is_name_char)) {
    throw ApiError(400, "invalid_dataset_name",
                   "a dataset name is 1 to 64 characters of A-Z a-z 0-9 _ -");
  }
  std::string_view extension = dot == std::string_view::npos ? "" : segment.substr(dot + 1);
  std::optional<Format> format = parse_format(extension);
  if (!format) {
    throw ApiError(404, "unknown_format", "unknown format '" + std::string(extension.substr(0, 16)) +
                                              "'; available: csv, tsv, jsonl, json (each optionally + .gz or .zst)");
  }
  return {std::string(name), *format};
}

void add_export_routes(Router& router, const DatasetCatalog& catalog, const ServerConfig& config) {
  router.add("GET", {"v1", "datasets"},
             [&catalog](const HttpRequest&, HttpResponder& responder) -> asio::awaitable<void> {
               // Built outside co_await: g++ 12 miscompiles braced pair lists inside it.
               Headers headers{{"Content-Type", "application/json"}};
               co_await responder.send(200, std::move(headers), catalog.describe_json());
             });
  router.add("GET", {"v1", "exports", "*"},
             [&catalog, &config](const HttpRequest& request, HttpResponder& responder) {
               return handle_export(catalog, config, request, responder);
             });
}

}  // namespace sluice
