#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "features/archives/archive_layout.hpp"
#include "features/archives/archive_manifest.hpp"
#include "features/archives/archive_request.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// A manifest ready to serve: its layout (when all entries are stored) and ETag, computed once.
struct LoadedArchive {
  ArchiveManifest manifest;
  std::optional<ArchiveLayout> layout;
  std::string etag;
};

// Creates archives and finds them again. Manifests live in the object store under
// ".sluice/archives/{id}.json", so they survive a restart and every serve process sharing the
// store sees them; recently used ones stay parsed in memory (they never change).
// Thread-safe.
class ArchiveCatalog {
 public:
  // `work` runs what is too much for an I/O thread: parsing a large body, naming and laying out
  // up to 100,000 entries, reading a manifest back.
  ArchiveCatalog(ObjectStore& store, boost::asio::thread_pool& work, std::size_t cached_archives);

  // The POST body as a request; throws ApiError 400 naming the field (archive_request.hpp).
  boost::asio::awaitable<ArchiveRequest> parse(std::string body);
  // Resolves `request` against the store (every object's size and mtime is captured now),
  // gives the entries unique, safe names and stores the manifest. Throws ApiError 400 naming
  // the entry when an object does not exist or a prefix matches too many.
  boost::asio::awaitable<std::shared_ptr<const LoadedArchive>> create(ArchiveRequest request);
  // The archive `id`, or nullptr when there is none.
  boost::asio::awaitable<std::shared_ptr<const LoadedArchive>> find(std::string id);

 private:
  std::shared_ptr<const LoadedArchive> remember(std::shared_ptr<const LoadedArchive> loaded);
  std::shared_ptr<const LoadedArchive> recall(const std::string& id);

  ObjectStore& store_;
  boost::asio::thread_pool& work_;
  const std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::shared_ptr<const LoadedArchive>> recent_;  // most recently used first
};

}  // namespace sluice
