#include "storage/local_object_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/thread_pool.hpp>
#include <cerrno>
#include <cstring>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <thread>

#include "core/blocking_call.hpp"
#include "storage/local_object_stream.hpp"
#include "storage/local_object_writer.hpp"
#include "storage/object_file.hpp"
#include "storage/object_key.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

void require_key(std::string_view key) {
  if (auto problem = key_problem(key)) {
    throw StorageError(StorageError::Kind::kIo, "invalid object key: " + *problem);
  }
}

// The folder to walk for `prefix`: its complete segments ("album/2024/IMG" → "album/2024").
std::string walk_root(std::string_view prefix) {
  const std::size_t slash = prefix.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(prefix.substr(0, slash));
}

asio::awaitable<void> discard(asio::awaitable<bool> work) { co_await std::move(work); }

class LocalObjectStore final : public ObjectStore {
 public:
  LocalObjectStore(const fs::path& root, unsigned threads)
      : root_(root), pool_(threads != 0 ? threads : std::max(2u, std::thread::hardware_concurrency() * 2)) {
    root_fd_ = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd_ < 0) {
      throw StorageError(StorageError::Kind::kIo, "cannot open storage folder " + root.string() +
                                                      ": " + std::strerror(errno));
    }
    std::string leaf;
    temp_fd_ = open_parent_beneath(root_fd_, std::string(kTempFolder) + "/x", true, leaf);
    if (temp_fd_ < 0) {
      ::close(root_fd_);
      throw StorageError(StorageError::Kind::kIo, "cannot make " + (root / kTempFolder).string());
    }
    sweep_temporary_files();
  }
  ~LocalObjectStore() override {
    pool_.join();
    ::close(temp_fd_);
    ::close(root_fd_);
  }

  asio::awaitable<std::optional<ObjectInfo>> head(std::string key) override {
    require_key(key);
    // Not a coroutine itself: g++ 12 mishandles lambdas inside co_await expressions.
    return run_blocking(pool_, [this, key = std::move(key)] { return stat_object(key); });
  }

  asio::awaitable<std::vector<std::optional<ObjectInfo>>> head_many(
      std::vector<std::string> keys) override {
    for (const std::string& key : keys) require_key(key);
    return run_blocking(pool_, [this, keys = std::move(keys)] {
      std::vector<std::optional<ObjectInfo>> found;
      found.reserve(keys.size());
      for (const std::string& key : keys) found.push_back(stat_object(key));
      return found;
    });
  }

  asio::awaitable<std::vector<ObjectInfo>> list(std::string prefix, std::size_t limit) override {
    if (auto problem = prefix_problem(prefix)) {
      throw StorageError(StorageError::Kind::kIo, "invalid prefix: " + *problem);
    }
    return run_blocking(pool_, [this, prefix = std::move(prefix), limit] { return walk(prefix, limit); });
  }

  asio::awaitable<std::optional<std::string>> get(std::string key, std::size_t max_bytes) override {
    require_key(key);
    return run_blocking(pool_, [this, key = std::move(key), max_bytes] { return read_whole(key, max_bytes); });
  }

  asio::awaitable<ObjectPage> list_page(std::string prefix, std::string after,
                                        std::size_t max) override {
    if (auto problem = prefix_problem(prefix)) {
      throw StorageError(StorageError::Kind::kIo, "invalid prefix: " + *problem);
    }
    return run_blocking(pool_, [this, prefix = std::move(prefix), after = std::move(after), max] {
      return page(prefix, after, std::max<std::size_t>(max, 1));
    });
  }

  asio::awaitable<void> put(std::string key, std::string bytes) override {
    require_key(key);
    auto done = run_blocking(pool_, [this, key = std::move(key), bytes = std::move(bytes)] {
      TempObjectFile file(root_fd_, temp_fd_, key);
      file.append(bytes);
      file.publish();
      return true;
    });
    return discard(std::move(done));
  }

  asio::awaitable<std::unique_ptr<ObjectWriter>> write(std::string key) override {
    require_key(key);
    // The awaitable is made outside co_await: g++ 12 mishandles lambdas inside co_await
    // expressions (the capture is destroyed twice).
    auto created = run_blocking(pool_, [this, key = std::move(key)] {
      return std::make_unique<TempObjectFile>(root_fd_, temp_fd_, key);
    });
    std::unique_ptr<TempObjectFile> file = co_await std::move(created);
    co_return make_local_object_writer(std::move(file), pool_);
  }

  asio::awaitable<bool> remove(std::string key) override {
    require_key(key);
    return run_blocking(pool_, [this, key = std::move(key)] { return remove_file(key); });
  }

  asio::awaitable<std::string> read_range(std::string key, std::uint64_t offset,
                                          std::size_t length) override {
    require_key(key);
    const std::shared_ptr<const ObjectFile> file = range_file(key);
    std::string bytes(length, '\0');
    try {
      file->read_at(bytes.data(), length, offset, key);
    } catch (const StorageError&) {
      forget_range_file(key);  // the next read opens it again (it may have been repaired)
      throw;
    }
    co_return bytes;
  }

  std::unique_ptr<ObjectStream> read(std::vector<ReadStep> plan, ReadAheadBudget budget,
                                     asio::any_io_executor executor) override {
    for (const ReadStep& step : plan) require_key(step.object.key);
    return make_local_object_stream(root_fd_, std::move(plan), budget, pool_, executor);
  }

 private:
  // read_range's open files, the most recently used first: a lookup is then an fstat and a
  // pread instead of an open, a pread and a close. A file that was deleted or replaced (its
  // inode has no name any more) is opened again, so the cache never answers what an open would
  // not.
  std::shared_ptr<const ObjectFile> range_file(const std::string& key) {
    {
      std::lock_guard lock(range_mutex_);
      auto found = range_index_.find(key);
      if (found != range_index_.end()) {
        struct stat st {};
        if (::fstat(found->second->second->fd(), &st) == 0 && st.st_nlink > 0) {
          range_files_.splice(range_files_.begin(), range_files_, found->second);
          return found->second->second;
        }
        range_files_.erase(found->second);
        range_index_.erase(found);
      }
    }
    ObjectFile opened = ObjectFile::open(root_fd_, key, O_RDONLY);
    if (!opened.is_open()) throw StorageError(StorageError::Kind::kGone, "no object " + key);
    auto file = std::make_shared<const ObjectFile>(std::move(opened));
    std::lock_guard lock(range_mutex_);
    if (range_index_.contains(key)) return file;  // opened twice at once: this one is not kept
    range_files_.emplace_front(key, file);
    range_index_.emplace(key, range_files_.begin());
    if (range_files_.size() > kRangeFiles) {
      range_index_.erase(range_files_.back().first);
      range_files_.pop_back();  // closed when no read holds it any more
    }
    return file;
  }

  void forget_range_file(const std::string& key) {
    std::lock_guard lock(range_mutex_);
    auto found = range_index_.find(key);
    if (found == range_index_.end()) return;
    range_files_.erase(found->second);
    range_index_.erase(found);
  }

  std::optional<ObjectInfo> stat_object(const std::string& key) const {
    ObjectFile file = ObjectFile::open(root_fd_, key, O_PATH);
    if (!file.is_open()) return std::nullopt;
    struct stat st {};
    if (::fstat(file.fd(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return ObjectInfo{key, static_cast<std::uint64_t>(st.st_size), mtime_ns_of(st)};
  }

  // Every object whose key starts with `prefix`. The walk goes through folder descriptors,
  // each opened below the previous one without following a link (O_NOFOLLOW, openat2
  // RESOLVE_NO_SYMLINKS for the start): a link to /etc or / inside the store is skipped like any
  // other link, never walked.
  std::vector<ObjectInfo> walk(const std::string& prefix, std::size_t limit) const {
    std::vector<ObjectInfo> found;
    const std::string base = walk_root(prefix);
    std::string leaf;
    // A new open of the root, not a dup: a dup shares the root descriptor's read position.
    const int folder = base.empty() ? ::openat(root_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                                    : open_parent_beneath(root_fd_, base + "/x", false, leaf);
    if (folder < 0) return found;  // no such folder (or a link where it should be): no match
    walk_folder(folder, base.empty() ? std::string() : base + "/", prefix, limit, found);
    std::sort(found.begin(), found.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return found;
  }

  // Lists `folder` (whose keys start with `key_prefix`), closing it; recurses into subfolders
  // that can hold keys starting with `prefix`.
  void walk_folder(int folder, const std::string& key_prefix, const std::string& prefix,
                   std::size_t limit, std::vector<ObjectInfo>& found) const {
    const bool own_listing = is_reserved_key(prefix);  // Sluice's own objects, asked for by name
    DIR* listing = ::fdopendir(folder);
    if (listing == nullptr) {
      ::close(folder);
      throw StorageError(StorageError::Kind::kIo, "cannot list objects: " + std::string(std::strerror(errno)));
    }
    struct Closer {
      DIR* listing;
      ~Closer() { ::closedir(listing); }
    } closer{listing};
    while (const dirent* item = ::readdir(listing)) {
      const std::string_view name = item->d_name;
      if (name == "." || name == "..") continue;
      std::string key = key_prefix + std::string(name);
      struct stat st {};
      if (::fstatat(folder, item->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
      if (S_ISDIR(st.st_mode)) {
        key += '/';
        const bool may_match = key.compare(0, std::min(key.size(), prefix.size()), prefix, 0,
                                           std::min(key.size(), prefix.size())) == 0;
        if (!may_match || (is_reserved_key(key) && !own_listing)) continue;
        const int child = ::openat(folder, item->d_name,
                                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child >= 0) walk_folder(child, key, prefix, limit, found);
        continue;
      }
      if (!S_ISREG(st.st_mode)) continue;  // links, devices, sockets
      if (key.compare(0, prefix.size(), prefix) != 0 || (is_reserved_key(key) && !own_listing) ||
          key_problem(key)) {
        continue;
      }
      if (found.size() == limit) {
        throw StorageError(StorageError::Kind::kIo,
                           "more than " + std::to_string(limit) + " objects match the prefix");
      }
      found.push_back(ObjectInfo{std::move(key), static_cast<std::uint64_t>(st.st_size), mtime_ns_of(st)});
    }
  }

  std::optional<std::string> read_whole(const std::string& key, std::size_t max_bytes) const {
    ObjectFile file = ObjectFile::open(root_fd_, key, O_RDONLY);
    if (!file.is_open()) return std::nullopt;
    ObjectInfo info = file.info(key);
    if (info.size > max_bytes) {
      throw StorageError(StorageError::Kind::kIo, "object '" + key + "' is larger than " +
                                                      std::to_string(max_bytes) + " bytes");
    }
    std::string bytes(info.size, '\0');
    file.read_at(bytes.data(), bytes.size(), 0, key);
    return bytes;
  }

  bool remove_file(const std::string& key) const {
    std::string leaf;
    const int folder = open_parent_beneath(root_fd_, key, false, leaf);
    if (folder < 0) return false;
    struct stat st {};
    bool removed = false;
    if (::fstatat(folder, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
      removed = ::unlinkat(folder, leaf.c_str(), 0) == 0;
      const int error = errno;
      if (!removed && error != ENOENT) {
        ::close(folder);
        throw StorageError(StorageError::Kind::kIo,
                           "cannot delete object '" + key + "': " + std::strerror(error));
      }
    }
    ::close(folder);
    return removed;
  }

  // The whole matching listing, sorted, then the page after `after` (a local folder has no
  // index to seek in; S3 pages natively).
  ObjectPage page(const std::string& prefix, const std::string& after, std::size_t max) const {
    std::vector<ObjectInfo> all = walk(prefix, std::numeric_limits<std::size_t>::max());
    auto first = std::upper_bound(all.begin(), all.end(), after,
                                  [](const std::string& key, const ObjectInfo& object) {
                                    return key < object.key;
                                  });
    ObjectPage result;
    const auto available = static_cast<std::size_t>(all.end() - first);
    const std::size_t count = std::min(max, available);
    result.objects.assign(std::make_move_iterator(first),
                          std::make_move_iterator(first + static_cast<std::ptrdiff_t>(count)));
    if (count < available) result.next_after = result.objects.back().key;
    return result;
  }

  // Temporary files of writers that never finished (a crash, a kill) older than a day: younger
  // ones may belong to another process writing into the same folder right now.
  void sweep_temporary_files() const {
    std::error_code ec;
    const auto now = fs::file_time_type::clock::now();
    for (const auto& entry : fs::directory_iterator(root_ / kTempFolder, ec)) {
      if (entry.path().extension() != ".part") continue;
      const auto written = entry.last_write_time(ec);
      if (!ec && now - written > std::chrono::hours(24)) fs::remove(entry.path(), ec);
    }
  }

  static constexpr std::string_view kTempFolder = ".sluice/tmp";

  fs::path root_;
  int root_fd_ = -1;
  int temp_fd_ = -1;  // kTempFolder: writers' files until they are published
  static constexpr std::size_t kRangeFiles = 256;
  std::mutex range_mutex_;
  std::list<std::pair<std::string, std::shared_ptr<const ObjectFile>>> range_files_;
  std::unordered_map<std::string, decltype(range_files_)::iterator> range_index_;
  mutable asio::thread_pool pool_;
};

}  // namespace

std::unique_ptr<ObjectStore> make_local_object_store(const fs::path& root, unsigned threads) {
  return std::make_unique<LocalObjectStore>(root, threads);
}

}  // namespace sluice
