#include "features/archives/archive_manifest.hpp"

#include <boost/json.hpp>
#include <stdexcept>

#include "core/random_id.hpp"
#include "storage/object_key.hpp"

namespace sluice {
namespace {

namespace json = boost::json;

constexpr std::int64_t kManifestVersion = 1;

const json::value& field(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr) throw std::runtime_error("manifest lacks '" + std::string(name) + "'");
  return *value;
}

std::string text_field(const json::object& object, std::string_view name) {
  return std::string(field(object, name).as_string());
}

}  // namespace

bool ArchiveManifest::all_stored() const {
  for (const ManifestEntry& entry : entries) {
    if (entry.method != ZipMethod::kStore) return false;
  }
  return true;
}

std::string manifest_to_json(const ArchiveManifest& manifest) {
  json::array entries;
  entries.reserve(manifest.entries.size());
  for (const ManifestEntry& entry : manifest.entries) {
    entries.push_back(json::object{
        {"key", entry.key},
        {"name", entry.name},
        {"size", entry.size},
        {"mtime_ns", entry.mtime_ns},
        {"etag", entry.etag},
        {"method", entry.method == ZipMethod::kStore ? "store" : "deflate"}});
  }
  return json::serialize(json::object{{"version", kManifestVersion},
                                      {"id", manifest.id},
                                      {"name", manifest.name},
                                      {"created", manifest.created},
                                      {"expires_at", manifest.expires_at},
                                      {"entries", std::move(entries)}});
}

ArchiveManifest manifest_from_json(std::string_view text) {
  try {
    const json::object root = json::parse(text).as_object();
    if (field(root, "version").to_number<std::int64_t>() != kManifestVersion) {
      throw std::runtime_error("unknown manifest version");
    }
    ArchiveManifest manifest;
    manifest.id = text_field(root, "id");
    manifest.name = text_field(root, "name");
    manifest.created = field(root, "created").to_number<std::int64_t>();
    // Manifests written before archives expired carry no expiry (0: the catalog's default).
    if (const json::value* expires = root.if_contains("expires_at")) {
      manifest.expires_at = expires->to_number<std::int64_t>();
    }
    const json::array& entries = field(root, "entries").as_array();
    manifest.entries.reserve(entries.size());
    for (const json::value& value : entries) {
      const json::object& object = value.as_object();
      ManifestEntry entry;
      entry.key = text_field(object, "key");
      entry.name = text_field(object, "name");
      entry.size = field(object, "size").to_number<std::uint64_t>();
      entry.mtime_ns = field(object, "mtime_ns").to_number<std::int64_t>();
      // Manifests written before stores had ETags carry none.
      if (const json::value* etag = object.if_contains("etag")) entry.etag = etag->as_string();
      entry.method = text_field(object, "method") == "store" ? ZipMethod::kStore : ZipMethod::kDeflate;
      if (key_problem(entry.key) || entry.name.empty()) throw std::runtime_error("bad entry");
      manifest.entries.push_back(std::move(entry));
    }
    return manifest;
  } catch (const std::exception& error) {
    throw std::runtime_error(std::string("malformed archive manifest: ") + error.what());
  }
}

std::string new_archive_id() {
  return random_hex(16);
}

bool is_archive_id(std::string_view text) {
  if (text.size() != 32) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string manifest_folder() {
  return std::string(kReservedKeyPrefix) + "archives/";
}

std::string manifest_key(std::string_view id) {
  return manifest_folder() + std::string(id) + ".json";
}

std::optional<std::string> archive_id_of(std::string_view manifest_key) {
  const std::string folder = manifest_folder();
  constexpr std::string_view kSuffix = ".json";
  if (!manifest_key.starts_with(folder) || !manifest_key.ends_with(kSuffix)) return std::nullopt;
  manifest_key.remove_prefix(folder.size());
  manifest_key.remove_suffix(kSuffix.size());
  if (!is_archive_id(manifest_key)) return std::nullopt;
  return std::string(manifest_key);
}

}  // namespace sluice
