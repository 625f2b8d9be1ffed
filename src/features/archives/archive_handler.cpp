#include "features/archives/archive_handler.hpp"

#include <boost/json.hpp>
#include <chrono>
#include <limits>

#include "core/api_error.hpp"
#include "core/log.hpp"
#include "features/archives/archive_metrics.hpp"
#include "features/archives/archive_stream.hpp"
#include "http/conditional.hpp"
#include "http/auth.hpp"
#include "http/content_disposition.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr std::string_view kZipSuffix = ".zip";

std::string archive_url(const std::string& id) { return "/v1/archives/" + id + ".zip"; }

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string instant(std::int64_t seconds) {
  return rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::seconds(seconds)));
}

// The archive as POST answers it and GET /v1/archives/{id} describes it.
std::string description(const LoadedArchive& archive) {
  const ArchiveManifest& manifest = archive.manifest;
  json::object body{{"id", manifest.id},
                    {"url", archive_url(manifest.id)},
                    {"name", manifest.name + ".zip"},
                    {"entries", manifest.entries.size()},
                    {"ranges", archive.layout.has_value()},
                    {"created_at", instant(manifest.created)},
                    {"expires_at", instant(archive.expires_at)}};
  if (archive.layout) {
    body["size"] = archive.layout->length;
  } else {
    body["size"] = nullptr;
  }
  return json::serialize(body);
}

// The id a path segment names: "{id}.zip" (the download) or "{id}" (the description).
std::string id_of(std::string_view segment, bool& zip) {
  zip = segment.size() > kZipSuffix.size() && segment.ends_with(kZipSuffix);
  if (zip) segment.remove_suffix(kZipSuffix.size());
  return std::string(segment);
}

// The archive `id` while it may be downloaded: 404 when there is none (never was, deleted or
// swept), 410 once it expired (until the sweeper deletes it).
asio::awaitable<std::shared_ptr<const LoadedArchive>> live_archive(const ArchiveService& service,
                                                                   std::string id) {
  std::shared_ptr<const LoadedArchive> archive = co_await service.catalog.find(std::move(id));
  if (!archive) throw ApiError(404, "unknown_archive", "no archive with this id");
  if (archive->expired(now_seconds())) {
    throw ApiError(410, "archive_expired",
                   "the archive expired at " + instant(archive->expires_at));
  }
  co_return archive;
}

asio::awaitable<void> handle_create(const ArchiveService& service, const HttpRequest& request,
                                    HttpResponder& responder) {
  ArchiveRequest parsed = co_await service.catalog.parse(request.body);
  // An archive holds stored objects, which the `files` scope reads; the whole store (an empty
  // prefix) is the administrator's. Who may not is told so before what is wrong with the body.
  require_scope(request, "files");
  if (parsed.prefix && parsed.prefix->empty()) require_scope(request, "admin");
  check_archive_selection(parsed);
  std::shared_ptr<const LoadedArchive> archive = co_await service.catalog.create(std::move(parsed));
  Headers headers{{"Content-Type", "application/json"},
                  {"Location", archive_url(archive->manifest.id)},
                  {"Cache-Control", "no-store"}};
  co_await responder.send(201, std::move(headers), description(*archive));
}

// The objects as they are now must be those the manifest captured: 410 when one vanished,
// 409 when one changed — before the first byte.
asio::awaitable<void> check_objects(const ArchiveService& service, const ArchiveManifest& manifest) {
  std::vector<std::string> keys;
  keys.reserve(manifest.entries.size());
  for (const ManifestEntry& entry : manifest.entries) keys.push_back(entry.key);
  std::vector<std::optional<ObjectInfo>> now = co_await service.store.head_many(std::move(keys));
  for (std::size_t i = 0; i < now.size(); ++i) {
    const ManifestEntry& entry = manifest.entries[i];
    if (!now[i]) {
      throw ApiError(410, "object_gone", "object '" + entry.key + "' of this archive no longer exists");
    }
    if (now[i]->size != entry.size || now[i]->mtime_ns != entry.mtime_ns ||
        now[i]->etag != entry.etag) {
      throw ApiError(409, "object_changed",
                     "object '" + entry.key + "' changed since the archive was created");
    }
  }
}

Headers download_headers(const LoadedArchive& archive) {
  Headers headers{{"Content-Type", "application/zip"},
                  {"Content-Disposition", content_disposition(archive.manifest.name + ".zip")},
                  {"Cache-Control", "private, no-cache"},
                  {"ETag", archive.etag},
                  {"X-Accel-Buffering", "no"},
                  {"X-Content-Type-Options", "nosniff"}};
  if (archive.layout) headers.emplace_back("Accept-Ranges", "bytes");
  return headers;
}

// If-Match / If-None-Match against the archive's ETag: true when the answer (304) went out;
// throws 412. (If-Range is decided with the Range.)
asio::awaitable<bool> answered_conditionally(const LoadedArchive& archive,
                                             const HttpRequest& request, HttpResponder& responder) {
  const Precondition decision = evaluate_preconditions(
      request.header("If-Match"), request.header("If-None-Match"), archive.etag);
  if (decision == Precondition::kFailed) {
    ApiError failed(412, "precondition_failed", "If-Match does not match the archive's ETag");
    failed.with_header("ETag", archive.etag);
    throw failed;
  }
  if (decision == Precondition::kProceed) co_return false;
  Headers headers{{"ETag", archive.etag}, {"Cache-Control", "private, no-cache"}};
  co_await responder.send(304, std::move(headers), std::string());
  co_return true;
}

// Starts the response: the status, headers and body framing for `request`'s Range. Returns the
// window to send, or nothing when the answer (416) is complete already.
asio::awaitable<std::optional<ByteWindow>> start_response(const LoadedArchive& archive,
                                                          const HttpRequest& request,
                                                          HttpResponder& responder,
                                                          ByteSink*& sink) {
  Headers headers = download_headers(archive);
  if (!archive.layout) {
    sink = co_await responder.start_stream(200, std::move(headers));
    co_return ByteWindow{0, std::numeric_limits<std::uint64_t>::max()};
  }
  const std::uint64_t length = archive.layout->length;
  const RangeDecision range =
      decide_range(request.header("Range"), request.header("If-Range"), archive.etag, length);
  if (range.outcome == RangeDecision::Outcome::kUnsatisfiable) {
    Headers extra{{"Content-Range", "bytes */" + std::to_string(length)}};
    co_await responder.send_error(416, "range_not_satisfiable",
                                  "the archive has " + std::to_string(length) + " bytes",
                                  request.request_id, std::move(extra));
    co_return std::nullopt;
  }
  int status = 200;
  if (range.outcome == RangeDecision::Outcome::kPartial) {
    status = 206;
    headers.emplace_back("Content-Range", "bytes " + std::to_string(range.window.start) + "-" +
                                              std::to_string(range.window.end - 1) + "/" +
                                              std::to_string(length));
  }
  sink = co_await responder.start_body(status, std::move(headers), range.window.size());
  co_return range.window;
}

asio::awaitable<void> handle_describe(const ArchiveService& service, std::string id,
                                      HttpResponder& responder) {
  std::shared_ptr<const LoadedArchive> archive = co_await live_archive(service, std::move(id));
  Headers headers{{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
  co_await responder.send(200, std::move(headers), description(*archive));
}

asio::awaitable<void> handle_get(const ArchiveService& service, const HttpRequest& request,
                                 HttpResponder& responder) {
  // `archives:read` reads archives (by their unguessable id) without reading any object alone;
  // `files` reads every object an archive can hold, so it reads them too (the creator of an
  // archive has it).
  if (!may(request, "files")) require_scope(request, "archives:read");
  bool zip = false;
  std::string id = id_of(request.segments.back(), zip);
  if (!zip) {
    co_await handle_describe(service, std::move(id), responder);
    co_return;
  }
  std::shared_ptr<const LoadedArchive> archive = co_await live_archive(service, std::move(id));
  co_await check_objects(service, archive->manifest);
  const bool answered = co_await answered_conditionally(*archive, request, responder);
  if (answered) co_return;
  StreamSlot slot = service.limiter.acquire(archive_metrics().streams);
  ByteSink* sink = nullptr;
  std::optional<ByteWindow> window = co_await start_response(*archive, request, responder, sink);
  if (!window) co_return;
  if (request.method == "HEAD") {
    co_await sink->finish();
    co_return;
  }
  slot.begin();
  std::string failure;
  try {
    co_await stream_archive(archive->manifest, archive->layout, *window, service.store,
                            service.crcs, *sink, archive_budget_for(service.server.stream_buffer_bytes));
  } catch (const std::exception& error) {
    failure = describe_failure(error);
  }
  if (failure.empty()) {
    slot.complete();
    co_return;
  }
  // The stream's destructor stopped the reads already; end the transfer without its end (the
  // access log says why).
  responder.abort("archive " + archive->manifest.id + ": " + failure);
}

// DELETE /v1/archives/{id} (or {id}.zip): 204, then 404; expired archives may be deleted too.
asio::awaitable<void> handle_delete(const ArchiveService& service, const HttpRequest& request,
                                    HttpResponder& responder) {
  bool zip = false;
  std::string id = id_of(request.segments.back(), zip);
  const bool removed = co_await service.catalog.remove(std::move(id));
  if (!removed) throw ApiError(404, "unknown_archive", "no archive with this id");
  Headers headers;
  co_await responder.send(204, std::move(headers), std::string());
}

}  // namespace

void add_archive_routes(Router& router, const ArchiveService& service) {
  archive_metrics();  // every series is listed from the start
  router.add("POST", {"v1", "archives"},
             [&service](const HttpRequest& request, HttpResponder& responder) {
               return handle_create(service, request, responder);
             }, Access::needs("archives:create"));
  router.add("GET", {"v1", "archives", "*"},
             [&service](const HttpRequest& request, HttpResponder& responder) {
               return handle_get(service, request, responder);
             }, Access::by_handler());
  router.add("DELETE", {"v1", "archives", "*"},
             [&service](const HttpRequest& request, HttpResponder& responder) {
               return handle_delete(service, request, responder);
             }, Access::needs("archives:create"));
}

}  // namespace sluice
