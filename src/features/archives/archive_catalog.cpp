#include "features/archives/archive_catalog.hpp"

#include <chrono>

#include "core/api_error.hpp"
#include "core/blocking_call.hpp"
#include "features/archives/zip_names.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kMaxManifestBytes = 64 << 20;  // 100,000 entries of long names

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

// A manifest with its layout and ETag (the ZipWriter run over every entry's size).
std::shared_ptr<const LoadedArchive> load(ArchiveManifest manifest) {
  auto loaded = std::make_shared<LoadedArchive>();
  loaded->layout = plan_layout(manifest);
  loaded->etag = archive_etag(manifest);
  loaded->manifest = std::move(manifest);
  return loaded;
}

struct Built {
  std::shared_ptr<const LoadedArchive> archive;
  std::string json;
};

// Names, methods, layout and JSON of a new manifest: linear in the entries, but 100,000 of them
// are still work an I/O thread should not do.
Built build(ArchiveManifest manifest, const ArchiveRequest& request,
            std::vector<ObjectInfo> objects, const std::vector<std::string>& paths) {
  ZipNameSet names;
  manifest.entries.reserve(objects.size());
  for (std::size_t i = 0; i < objects.size(); ++i) {
    ManifestEntry entry;
    entry.name = names.add(sanitize_zip_path(paths[i]));
    entry.method = method_for(request.method, entry.name);
    entry.key = std::move(objects[i].key);
    entry.size = objects[i].size;
    entry.mtime_ns = objects[i].mtime_ns;
    entry.etag = std::move(objects[i].etag);
    manifest.entries.push_back(std::move(entry));
  }
  std::string json = manifest_to_json(manifest);
  return Built{load(std::move(manifest)), std::move(json)};
}

}  // namespace

ArchiveCatalog::ArchiveCatalog(ObjectStore& store, asio::thread_pool& work,
                               std::size_t cached_archives)
    : store_(store), work_(work), capacity_(cached_archives) {}

asio::awaitable<ArchiveRequest> ArchiveCatalog::parse(std::string body) {
  // (The awaitable is made outside co_await: g++ 12 mishandles lambdas inside co_await.)
  auto parsed = run_blocking(work_, [body = std::move(body)] { return parse_archive_request(body); });
  co_return co_await std::move(parsed);
}

asio::awaitable<std::shared_ptr<const LoadedArchive>> ArchiveCatalog::create(
    ArchiveRequest request) {
  ArchiveManifest manifest;
  manifest.id = new_archive_id();
  manifest.name = request.name;
  manifest.created = now_seconds();
  std::vector<ObjectInfo> objects;
  std::vector<std::string> paths;
  if (request.prefix) {
    try {
      objects = co_await store_.list(*request.prefix, kMaxArchiveEntries);
    } catch (const StorageError& error) {
      throw ApiError(400, "too_many_entries", std::string("prefix: ") + error.what());
    }
    for (const ObjectInfo& object : objects) paths.push_back(name_below_prefix(object.key, *request.prefix));
  } else {
    std::vector<std::string> keys;
    keys.reserve(request.entries.size());
    for (const RequestedEntry& entry : request.entries) keys.push_back(entry.key);
    std::vector<std::optional<ObjectInfo>> found = co_await store_.head_many(std::move(keys));
    for (std::size_t i = 0; i < found.size(); ++i) {
      if (!found[i]) {
        throw ApiError(400, "object_not_found", "entries[" + std::to_string(i) + "].key: no object '" +
                                                    request.entries[i].key + "'");
      }
      objects.push_back(std::move(*found[i]));
      paths.push_back(std::move(request.entries[i].path));
    }
  }
  auto building = run_blocking(work_, [manifest = std::move(manifest), request = std::move(request),
                                       objects = std::move(objects), paths = std::move(paths)]() mutable {
    return build(std::move(manifest), request, std::move(objects), paths);
  });
  Built built = co_await std::move(building);
  co_await store_.put(manifest_key(built.archive->manifest.id), std::move(built.json));
  co_return remember(std::move(built.archive));
}

asio::awaitable<std::shared_ptr<const LoadedArchive>> ArchiveCatalog::find(std::string id) {
  if (!is_archive_id(id)) co_return nullptr;
  if (auto known = recall(id)) co_return known;
  std::optional<std::string> text = co_await store_.get(manifest_key(id), kMaxManifestBytes);
  if (!text) co_return nullptr;
  auto loading = run_blocking(work_, [text = std::move(*text)] {
    return load(manifest_from_json(text));
  });
  std::shared_ptr<const LoadedArchive> loaded = co_await std::move(loading);
  if (loaded->manifest.id != id) throw std::runtime_error("manifest " + id + " names another id");
  co_return remember(std::move(loaded));
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

}  // namespace sluice
