#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "features/archives/archive_layout.hpp"
#include "features/archives/archive_manifest.hpp"
#include "features/archives/archive_request.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// A manifest ready to serve: its layout (when all entries are stored), ETag and expiry,
// computed once.
struct LoadedArchive {
  ArchiveManifest manifest;
  std::optional<ArchiveLayout> layout;
  // Strong when the layout is known (stored entries: the bytes are determined by the manifest);
  // weak ("W/") for deflated archives, whose bytes are those of this build's compressor.
  std::string etag;
  // Seconds since the epoch: the manifest's, or for a manifest written before archives expired,
  // `created` + [archives] default_expires_in_s.
  std::int64_t expires_at = 0;

  bool expired(std::int64_t now) const { return now >= expires_at; }
};

// One bounded pass of the sweeper (ArchiveCatalog::sweep).
struct SweepPass {
  std::size_t examined = 0;               // manifests read
  std::size_t removed = 0;                // expired manifests deleted
  std::optional<std::string> next_after;  // where the next pass goes on; nothing: from the start
};

// Creates archives, finds and deletes them, and sweeps the expired ones. Manifests live in the
// object store under ".sluice/archives/{id}.json", so they survive a restart and every serve
// process sharing the store sees them; recently used ones stay parsed in memory (they never
// change), but a hit is confirmed against the store so a deletion by another process counts.
// Thread-safe.
class ArchiveCatalog {
 public:
  // `work` runs what is too much for an I/O thread: parsing a large body, naming and laying out
  // up to max_entries entries, reading a manifest back. `config` must outlive the catalog.
  ArchiveCatalog(ObjectStore& store, boost::asio::thread_pool& work, const ArchivesConfig& config,
                 std::size_t cached_archives);

  // The POST body as a request; throws ApiError 400 naming the field (archive_request.hpp).
  boost::asio::awaitable<ArchiveRequest> parse(std::string body);
  // Resolves `request` against the store (every object's size and mtime is captured now),
  // gives the entries unique, safe names and stores the manifest. REQUIRES: the selection was
  // checked (check_archive_selection). Throws ApiError: 404 object_not_found for a missing
  // explicit key, 422 empty_selection for a prefix matching nothing, 413 too_many_entries /
  // manifest_too_large beyond the limits, 400 for an expires_in beyond max_expires_in_s.
  boost::asio::awaitable<std::shared_ptr<const LoadedArchive>> create(ArchiveRequest request);
  // The archive `id` (expired or not), or nullptr when there is none.
  boost::asio::awaitable<std::shared_ptr<const LoadedArchive>> find(std::string id);
  // Deletes the archive's manifest; false when there was none.
  boost::asio::awaitable<bool> remove(std::string id);
  // Reads up to [archives] sweep_batch manifests after `after` ("" = from the first) and
  // deletes those expired at `now`. A manifest that cannot be read or parsed is left alone.
  boost::asio::awaitable<SweepPass> sweep(std::string after, std::int64_t now);

 private:
  std::shared_ptr<const LoadedArchive> load(ArchiveManifest manifest) const;
  std::shared_ptr<const LoadedArchive> remember(std::shared_ptr<const LoadedArchive> loaded);
  std::shared_ptr<const LoadedArchive> recall(const std::string& id);
  void forget(const std::string& id);
  boost::asio::awaitable<std::vector<ObjectInfo>> select(const ArchiveRequest& request,
                                                         std::vector<std::string>& paths);

  ObjectStore& store_;
  boost::asio::thread_pool& work_;
  const ArchivesConfig& config_;
  const std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::shared_ptr<const LoadedArchive>> recent_;  // most recently used first
};

}  // namespace sluice
