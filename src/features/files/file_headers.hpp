#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/object_store.hpp"

namespace sluice {

// The header values of a stored object's download (GET /v1/files/{key}). Thread-safe.

// Content-Type from the key's extension (case-insensitive), from a small table; anything else
// is application/octet-stream.
std::string_view content_type_for(std::string_view key);

// A strong ETag of the object as stored: "\"<size hex>-<mtime_ns hex>\"" (a file rewritten in
// place gets a new mtime, hence a new tag), with "-<S3 ETag>" appended when the store has one.
std::string object_etag(const ObjectInfo& object);

// An IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT", of `unix_seconds`.
std::string http_date(std::int64_t unix_seconds);

// Whether an If-None-Match value matches `etag` (weak comparison, RFC 9110 13.1.2): "*" or
// a comma-separated list of entity tags, one of which equals `etag` ignoring "W/"
// (http/conditional.hpp's etag_matches).
bool if_none_match_matches(std::string_view if_none_match, std::string_view etag);

// The key's last segment: the download's file name.
std::string_view base_name(std::string_view key);

}  // namespace sluice
