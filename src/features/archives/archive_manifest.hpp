#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "encode/zip_writer.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// One entry of an archive, as captured when the archive was created: the object's identity
// (key, size, mtime) and the entry's final, unique, sanitised name.
struct ManifestEntry {
  std::string key;
  std::string name;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  ZipMethod method = ZipMethod::kStore;
  std::string etag;  // S3's ETag; empty for the local folder

  ObjectInfo object() const { return ObjectInfo{key, size, mtime_ns, etag}; }
};

// What POST /v1/archives created. Immutable once stored: every GET of the id produces the same
// bytes, or fails because an object changed.
struct ArchiveManifest {
  std::string id;
  std::string name;  // download name without ".zip"
  std::int64_t created = 0;  // seconds since the epoch
  // When downloads stop (410) and the sweeper may delete it, in seconds since the epoch; 0 in
  // manifests written before archives expired (the catalog then counts the default lifetime
  // from `created`).
  std::int64_t expires_at = 0;
  std::vector<ManifestEntry> entries;

  // True when every entry is stored: then the length is known before the first byte.
  bool all_stored() const;
};

// The manifest as JSON (how it is kept in the object store) and back. manifest_from_json
// throws std::runtime_error on anything malformed.
std::string manifest_to_json(const ArchiveManifest& manifest);
ArchiveManifest manifest_from_json(std::string_view text);

// Archive ids: 128 bits of OpenSSL's RAND_bytes as 32 lowercase hex digits (unguessable,
// URL-safe; the form ids always had, so older manifests keep theirs).
std::string new_archive_id();
bool is_archive_id(std::string_view text);
// Where the manifest of `id` lives in the object store (a reserved key), the folder of all
// manifests, and the id a key of that folder names (nothing for any other key).
std::string manifest_key(std::string_view id);
std::string manifest_folder();
std::optional<std::string> archive_id_of(std::string_view manifest_key);

}  // namespace sluice
