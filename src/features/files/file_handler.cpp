#include "features/files/file_handler.hpp"

#include <unistd.h>

#include <boost/asio/this_coro.hpp>
#include <algorithm>
#include <chrono>

#include "core/api_error.hpp"
#include "features/files/file_headers.hpp"
#include "features/files/file_metrics.hpp"
#include "http/auth.hpp"
#include "http/byte_range.hpp"
#include "http/conditional.hpp"
#include "http/content_disposition.hpp"
#include "storage/object_key.hpp"

namespace sluice {
namespace {

// Bodies up to this size are read into memory and sent with the headers in one write.
constexpr std::size_t kSmallBodyBytes = 64 * 1024;

namespace asio = boost::asio;

// The value of query parameter `name`, or nothing when it is absent; `repeated` is set when it
// appears more than once (such a link is invalid: which value was signed?).
std::optional<std::string_view> param(const HttpRequest& request, std::string_view name,
                                      bool& repeated) {
  std::optional<std::string_view> value;
  for (const auto& [key, text] : request.params) {
    if (key != name) continue;
    if (value) repeated = true;
    value = text;
  }
  return value;
}

std::string key_of(const HttpRequest& request) {
  std::string key;
  for (std::size_t i = 2; i < request.segments.size(); ++i) {  // after "v1", "files"
    if (i > 2) key += '/';
    key += request.segments[i];
  }
  return key;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Checks the link; returns its expiry. Throws the 403s.
std::int64_t check_link(const FileService& service, const HttpRequest& request,
                        const std::string& key, std::int64_t now) {
  bool repeated = false;
  const std::optional<std::string_view> expires = param(request, "expires", repeated);
  const std::optional<std::string_view> sig = param(request, "sig", repeated);
  const LinkVerdict verdict =
      repeated ? LinkVerdict::kInvalid : verify_link(service.secrets, key, expires, sig, now);
  if (verdict == LinkVerdict::kInvalid) {
    file_metrics().rejected.add(1);
    throw ApiError(403, "link_invalid",
                   "the link is not valid: its signature does not match its key and expiry "
                   "(or expires / sig is missing)");
  }
  const std::int64_t when = parse_link_expires(*expires).value_or(0);
  if (verdict == LinkVerdict::kExpired) {
    file_metrics().rejected.add(1);
    throw ApiError(403, "link_expired", "the link expired at " + http_date(when));
  }
  return when;
}

ApiError object_not_found() {
  return ApiError(404, "object_not_found", "no stored object with this key");
}

Headers download_headers(std::string_view key, const ObjectInfo& object,
                         const std::string& etag, std::int64_t max_age) {
  const std::int64_t mtime = object.mtime_ns >= 0 ? object.mtime_ns / 1'000'000'000
                                                  : -((-object.mtime_ns + 999'999'999) / 1'000'000'000);
  Headers headers{{"Content-Type", std::string(content_type_for(key))},
                  {"Content-Disposition", content_disposition(base_name(key))},
                  {"ETag", etag},
                  {"Last-Modified", http_date(mtime)},
                  {"Accept-Ranges", "bytes"},
                  {"Cache-Control", "private, max-age=" + std::to_string(max_age)},
                  {"X-Content-Type-Options", "nosniff"}};
  return headers;
}

// Sends [window) of the object from `first` on (the plan's first piece) and finishes the body.
// The last byte is held back until the object is known unchanged: sendfile sends the file as it
// is when it is sent, so an object rewritten in place meanwhile must cut the transfer before
// its Content-Length is reached, never end it complete with other bytes.
asio::awaitable<void> send_pieces(ObjectStream& stream, ReadPiece first, ByteSink& sink) {
  std::optional<ReadPiece> piece = first;
  for (;;) {
    if (piece->file >= 0) {
      const std::uint64_t length = piece->file_length;
      if (piece->last && length > 0) {
        char held = 0;
        const auto at = static_cast<off_t>(piece->file_offset + length - 1);
        if (::pread(piece->file, &held, 1, at) != 1) {
          throw StorageError(StorageError::Kind::kChanged, "the object ended early");
        }
        if (length > 1) co_await sink.write_file(piece->file, piece->file_offset, length - 1);
        stream.check_sent(*piece);
        co_await sink.write(std::string_view(&held, 1));
      } else {
        if (length > 0) co_await sink.write_file(piece->file, piece->file_offset, length);
        if (piece->last) stream.check_sent(*piece);
      }
      file_metrics().bytes_sent.add(length);
    } else {
      if (!piece->bytes.empty()) co_await sink.write(piece->bytes);
      file_metrics().bytes_sent.add(piece->bytes.size());
    }
    if (piece->last) break;
    piece = co_await stream.next();
    if (!piece) throw StorageError(StorageError::Kind::kIo, "the read plan ended early");
  }
  co_await sink.finish();
}

bool has_link_params(const HttpRequest& request) {
  return std::ranges::any_of(request.params, [](const auto& param) {
    return param.first == "sig" || param.first == "expires";
  });
}

asio::awaitable<void> handle_file(const FileService& service, const HttpRequest& request,
                                  HttpResponder& responder) {
  // A link's signature is its own credential. Without one, where there is access control
  // ([auth]), a token with the `files` scope reads any object (not cached by shared caches).
  if (request.caller && !has_link_params(request)) {
    require_scope(request, "files");
    const std::string key = key_of(request);
    if (key_problem(key) || is_reserved_key(key)) throw object_not_found();
    co_await send_stored_object(service, key, 0, request, responder);
    co_return;
  }
  if (!service.secrets.enabled()) {
    throw ApiError(404, "links_disabled", "presigned file links are not enabled on this server");
  }
  const std::string key = key_of(request);
  const std::int64_t now = unix_now();
  const std::int64_t expires = check_link(service, request, key, now);
  if (key_problem(key) || is_reserved_key(key)) throw object_not_found();
  co_await send_stored_object(service, key, expires - now, request, responder);
}

}  // namespace

asio::awaitable<void> send_stored_object(const FileService& service, const std::string& key,
                                         std::int64_t max_age, const HttpRequest& request,
                                         HttpResponder& responder, std::string file_name) {
  const std::optional<ObjectInfo> object = co_await service.store.head(key);
  if (!object) throw object_not_found();

  const std::string etag = object_etag(*object);
  Headers headers =
      download_headers(file_name.empty() ? std::string_view(key) : file_name, *object, etag, max_age);
  const Precondition precondition =
      evaluate_preconditions(request.header("If-Match"), request.header("If-None-Match"), etag);
  if (precondition == Precondition::kFailed) {
    ApiError failed(412, "precondition_failed", "If-Match does not match the object's ETag");
    failed.with_header("ETag", etag);
    throw failed;
  }
  if (precondition == Precondition::kNotModified) {
    Headers not_modified;
    for (auto& field : headers) {
      if (field.first == "ETag" || field.first == "Last-Modified" || field.first == "Cache-Control") {
        not_modified.push_back(std::move(field));
      }
    }
    co_await responder.send(304, std::move(not_modified), std::string());
    co_return;
  }

  const RangeDecision range =
      decide_range(request.header("Range"), request.header("If-Range"), etag, object->size);
  if (range.outcome == RangeDecision::Outcome::kUnsatisfiable) {
    Headers extra{{"Content-Range", "bytes */" + std::to_string(object->size)}};
    co_await responder.send_error(416, "range_not_satisfiable",
                                  "the object has " + std::to_string(object->size) + " bytes",
                                  request.request_id, std::move(extra));
    co_return;
  }
  int status = 200;
  if (range.outcome == RangeDecision::Outcome::kPartial) {
    status = 206;
    headers.emplace_back("Content-Range", "bytes " + std::to_string(range.window.start) + "-" +
                                              std::to_string(range.window.end - 1) + "/" +
                                              std::to_string(object->size));
  }
  StreamSlot slot = service.limiter.acquire(file_metrics().streams);
  if (request.method == "HEAD" || range.window.size() == 0) {
    ByteSink* sink = co_await responder.start_body(status, std::move(headers), range.window.size());
    co_await sink->finish();
    co_return;
  }

  // The first piece before the headers: an object that changed or vanished since head() is
  // still an error status.
  // (Plain assignments: g++ 12 miscompiles some braced initializers in coroutines.)
  // A small body (a typical Range request) is read into one buffer and goes out with the
  // headers in one write; a large one is sent from the file (sendfile).
  const bool small = range.window.size() <= kSmallBodyBytes;
  std::vector<ReadStep> plan(1);
  plan[0].object = *object;
  plan[0].offset = range.window.start;
  plan[0].length = range.window.size();
  plan[0].delivery = small ? ReadStep::Delivery::kOneBuffer : ReadStep::Delivery::kFileRange;
  ReadAheadBudget budget;
  budget.buffers = 2;
  budget.buffer_bytes = std::max<std::size_t>(service.server.stream_buffer_bytes / 4, 4096);
  if (small) budget.buffer_bytes = std::max<std::size_t>(budget.buffer_bytes, kSmallBodyBytes);
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  std::unique_ptr<ObjectStream> stream = service.store.read(std::move(plan), budget, executor);
  std::optional<ReadPiece> first;
  std::optional<StorageError::Kind> early;
  try {
    first = co_await stream->next();
  } catch (const StorageError& error) {
    if (error.kind() == StorageError::Kind::kIo) throw;
    early = error.kind();
  }
  if (early == StorageError::Kind::kGone) throw object_not_found();
  if (early || !first) {
    throw ApiError(409, "object_changed", "the object changed as the download started; retry");
  }

  if (small && first->last) {
    // The bytes were read and checked against the object as planned: one response, one write.
    slot.begin();
    co_await responder.send(status, std::move(headers), std::string(first->bytes));
    file_metrics().bytes_sent.add(first->bytes.size());
    slot.complete();
    co_return;
  }
  ByteSink* sink = co_await responder.start_body(status, std::move(headers), range.window.size());
  slot.begin();
  std::string failure;
  try {
    co_await send_pieces(*stream, *first, *sink);
  } catch (const std::exception& error) {
    failure = describe_failure(error);
  }
  if (failure.empty()) {
    slot.complete();
    co_return;
  }
  stream.reset();  // stops the reads
  responder.abort("file " + key + ": " + failure);
}

void add_file_routes(Router& router, const FileService& service) {
  file_metrics();  // every series is listed from the start
  router.add("GET", {"v1", "files", "**"},
             [&service](const HttpRequest& request, HttpResponder& responder) {
               return handle_file(service, request, responder);
             }, Access::by_handler());
}

}  // namespace sluice
