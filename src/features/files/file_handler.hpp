#pragma once

#include "core/config.hpp"
#include "core/stream_limiter.hpp"
#include "features/files/presigned_link.hpp"
#include "http/router.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// What the file routes share; owned by the file feature, outliving the server.
struct FileService {
  ObjectStore& store;
  LinkSecrets secrets;  // read from the environment once, at start
  const ServerConfig& server;
  StreamLimiter& limiter;  // the server's one max_streams, shared with every streaming feature
};

// GET and HEAD /v1/files/{key}?expires=..&sig=.. (the key may span segments): a stored object
// through a presigned link (presigned_link.hpp), with Content-Length, a strong ETag,
// Last-Modified, If-None-Match (304), one Range (206/416) and If-Range; the body goes out with
// sendfile. Errors: 404 links_disabled (no secret), 403 link_invalid / link_expired, then
// 404 object_not_found.
void add_file_routes(Router& router, const FileService& service);

// The download itself, after the link checked out: stored object `key` (any key the store
// accepts, reserved ones too: job results) with the headers, conditional answers and Range of
// GET /v1/files, `Cache-Control: private, max-age=max_age`. 404 object_not_found when absent.
// `file_name` (default: the key's last segment) names the download and its Content-Type.
boost::asio::awaitable<void> send_stored_object(const FileService& service, const std::string& key,
                                                std::int64_t max_age, const HttpRequest& request,
                                                HttpResponder& responder,
                                                std::string file_name = {});

}  // namespace sluice
