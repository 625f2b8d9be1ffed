#include "features/archives/archive_catalog.hpp"

#include <chrono>

#include "core/api_error.hpp"
#include "core/blocking_call.hpp"
#include "features/archives/zip_names.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

// What is read back at most: [archives] max_manifest_bytes may have been larger when an older
// manifest was written.
constexpr std::size_t kMaxManifestBytes = 64 << 20;

// "album/2024/a.jpg" under prefix "album/" → "2024/a.jpg": names start below the prefix's
// last complete folder.
std::string name_below_prefix(const std::string& key, const std::string& prefix) {
  const std::size_t slash = prefix.rfind('/');
  return slash == std::string::npos ? key : key.substr(slash + 1);
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ApiError manifest_too_large(std::size_t bytes, std::size_t limit) {
  return ApiError(413, "manifest_too_large",
                  "the archive's manifest would have " + std::to_string(bytes) +
                      " bytes, more than " + std::to_string(limit) +
                      " (the limit max_manifest_bytes): fewer entries or shorter names",
                  {{"limit", "max_manifest_bytes"}, {"max", std::to_string(limit)}});
}

}  // namespace

ArchiveCatalog::ArchiveCatalog(ObjectStore& store, asio::thread_pool& work,
                               const ArchivesConfig& config, std::size_t cached_archives)
    : store_(store), work_(work), config_(config), capacity_(cached_archives) {}

// A manifest with its layout, ETag (the ZipWriter run over every entry's size) and expiry.
std::shared_ptr<const LoadedArchive> ArchiveCatalog::load(ArchiveManifest manifest) const {
  auto loaded = std::make_shared<LoadedArchive>();
  loaded->layout = plan_layout(manifest);
  loaded->etag = archive_etag(manifest);
  if (!loaded->layout) loaded->etag = "W/" + loaded->etag;
  loaded->expires_at = manifest.expires_at != 0
                           ? manifest.expires_at
                           : manifest.created + config_.default_expires_in.count();
  loaded->manifest = std::move(manifest);
  return loaded;
}

asio::awaitable<ArchiveRequest> ArchiveCatalog::parse(std::string body) {
  // (The awaitable is made outside co_await: g++ 12 mishandles lambdas inside co_await.)
  auto parsed = run_blocking(work_, [body = std::move(body), max = config_.max_entries] {
    return parse_archive_request(body, max);
  });
  co_return co_await std::move(parsed);
}

// The objects `request` selects, as they are now, and the path each gets in the archive.
asio::awaitable<std::vector<ObjectInfo>> ArchiveCatalog::select(const ArchiveRequest& request,
                                                                std::vector<std::string>& paths) {
  std::vector<ObjectInfo> objects;
  if (request.prefix) {
    try {
      objects = co_await store_.list(*request.prefix, config_.max_entries);
    } catch (const StorageError& error) {
      // (list() says "more than N" when the limit is passed; anything else is the store's.)
      if (std::string_view(error.what()).find("more than ") == std::string_view::npos) throw;
      throw too_many_entries("prefix '" + *request.prefix + "'", config_.max_entries);
    }
    if (objects.empty()) {
      throw ApiError(422, "empty_selection",
                     "prefix: no stored object's key starts with '" + *request.prefix + "'",
                     {{"field", "prefix"}, {"prefix", *request.prefix}});
    }
    for (const ObjectInfo& object : objects)
      paths.push_back(name_below_prefix(object.key, *request.prefix));
    co_return objects;
  }
  std::vector<std::string> keys;
  keys.reserve(request.entries.size());
  for (const RequestedEntry& entry : request.entries) keys.push_back(entry.key);
  std::vector<std::optional<ObjectInfo>> found = co_await store_.head_many(std::move(keys));
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (!found[i]) {
      const std::string field = "entries[" + std::to_string(i) + "].key";
      throw ApiError(404, "object_not_found",
                     field + ": no object '" + request.entries[i].key + "'",
                     {{"field", field}, {"key", request.entries[i].key}});
    }
    objects.push_back(std::move(*found[i]));
    paths.push_back(request.entries[i].path);
  }
  co_return objects;
}

asio::awaitable<std::shared_ptr<const LoadedArchive>> ArchiveCatalog::create(
    ArchiveRequest request) {
  const std::int64_t lifetime = request.expires_in.value_or(config_.default_expires_in.count());
  if (lifetime > config_.max_expires_in.count()) {
    throw ApiError(400, "invalid_archive",
                   "expires_in: at most " + std::to_string(config_.max_expires_in.count()) +
                       " seconds (max_expires_in_s)",
                   {{"field", "expires_in"}});
  }
  ArchiveManifest manifest;
  manifest.id = new_archive_id();
  manifest.name = request.name;
  manifest.created = now_seconds();
  manifest.expires_at = manifest.created + lifetime;
  std::vector<std::string> paths;
  std::vector<ObjectInfo> objects = co_await select(request, paths);
  // Names, methods, layout and JSON of the manifest: linear in the entries, but 100,000 of them
  // are still work an I/O thread should not do.
  auto building =
      run_blocking(work_, [this, manifest = std::move(manifest), method = request.method,
                           objects = std::move(objects), paths = std::move(paths)]() mutable {
        ZipNameSet names;
        manifest.entries.reserve(objects.size());
        for (std::size_t i = 0; i < objects.size(); ++i) {
          ManifestEntry entry;
          entry.name = names.add(sanitize_zip_path(paths[i]));
          entry.method = method_for(method, entry.name);
          entry.key = std::move(objects[i].key);
          entry.size = objects[i].size;
          entry.mtime_ns = objects[i].mtime_ns;
          entry.etag = std::move(objects[i].etag);
          manifest.entries.push_back(std::move(entry));
        }
        std::string json = manifest_to_json(manifest);
        if (json.size() > config_.max_manifest_bytes)
          throw manifest_too_large(json.size(), config_.max_manifest_bytes);
        return std::make_pair(load(std::move(manifest)), std::move(json));
      });
  auto [archive, json] = co_await std::move(building);
  co_await store_.put(manifest_key(archive->manifest.id), std::move(json));
  co_return remember(std::move(archive));
}

asio::awaitable<std::shared_ptr<const LoadedArchive>> ArchiveCatalog::find(std::string id) {
  if (!is_archive_id(id)) co_return nullptr;
  if (auto known = recall(id)) {
    // Deleted meanwhile (by DELETE or the sweeper of this or another process)?
    if (co_await store_.head(manifest_key(id))) co_return known;
    forget(id);
    co_return nullptr;
  }
  std::optional<std::string> text = co_await store_.get(manifest_key(id), kMaxManifestBytes);
  if (!text) co_return nullptr;
  auto loading = run_blocking(
      work_, [this, text = std::move(*text)] { return load(manifest_from_json(text)); });
  std::shared_ptr<const LoadedArchive> loaded = co_await std::move(loading);
  if (loaded->manifest.id != id) throw std::runtime_error("manifest " + id + " names another id");
  co_return remember(std::move(loaded));
}

asio::awaitable<bool> ArchiveCatalog::remove(std::string id) {
  if (!is_archive_id(id)) co_return false;
  forget(id);
  co_return co_await store_.remove(manifest_key(id));
}

asio::awaitable<SweepPass> ArchiveCatalog::sweep(std::string after, std::int64_t now) {
  SweepPass pass;
  ObjectPage page =
      co_await store_.list_page(manifest_folder(), std::move(after), config_.sweep_batch);
  pass.next_after = std::move(page.next_after);
  for (const ObjectInfo& object : page.objects) {
    const std::optional<std::string> id = archive_id_of(object.key);
    if (!id) continue;  // not a manifest (nothing else is kept there)
    std::optional<std::string> text;
    try {
      text = co_await store_.get(object.key, kMaxManifestBytes);
    } catch (const StorageError&) {
      continue;  // unreadable now; the next round tries again
    }
    if (!text) continue;  // deleted meanwhile
    ++pass.examined;
    auto reading =
        run_blocking(work_, [this, text = std::move(*text)]() -> std::optional<std::int64_t> {
          try {
            return load(manifest_from_json(text))->expires_at;
          } catch (const std::runtime_error&) {
            return std::nullopt;  // malformed: left for a person to look at
          }
        });
    const std::optional<std::int64_t> expires_at = co_await std::move(reading);
    if (!expires_at || now < *expires_at) continue;
    forget(*id);
    if (co_await store_.remove(object.key)) ++pass.removed;
  }
  co_return pass;
}

std::shared_ptr<const LoadedArchive> ArchiveCatalog::remember(
    std::shared_ptr<const LoadedArchive> loaded) {
  std::lock_guard lock(mutex_);
  recent_.push_front(loaded);
  if (recent_.size() > capacity_) recent_.pop_back();
  return loaded;
}

std::shared_ptr<const LoadedArchive> ArchiveCatalog::recall(const std::string& id) {
  std::lock_guard lock(mutex_);
  for (auto it = recent_.begin(); it != recent_.end(); ++it) {
    if ((*it)->manifest.id == id) {
      recent_.splice(recent_.begin(), recent_, it);
      return recent_.front();
    }
  }
  return nullptr;
}

void ArchiveCatalog::forget(const std::string& id) {
  std::lock_guard lock(mutex_);
  recent_.remove_if([&id](const std::shared_ptr<const LoadedArchive>& known) {
    return known->manifest.id == id;
  });
}

}  // namespace sluice
