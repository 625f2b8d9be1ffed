#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string_view>

#include "storage/object_store.hpp"

namespace sluice {

// An open file of the local object store: owns the descriptor (closed by the destructor or
// close()) and counts itself in storage_metrics().open_files.
// Not thread-safe.
class ObjectFile {
 public:
  ObjectFile() = default;
  ~ObjectFile() { close(); }
  ObjectFile(ObjectFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ObjectFile& operator=(ObjectFile&& other) noexcept;
  ObjectFile(const ObjectFile&) = delete;
  ObjectFile& operator=(const ObjectFile&) = delete;

  // Opens `key` below the directory `root_fd` for reading, never leaving it (no "..", no
  // symlink out of the root, no magic links). Returns a closed ObjectFile when the object does
  // not exist; throws StorageError(kIo) on other failures.
  static ObjectFile open(int root_fd, std::string_view key, int flags);

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void close() noexcept;

  // The object's identity, from fstat. REQUIRES: is_open(). Throws StorageError(kIo).
  ObjectInfo info(std::string_view key) const;
  // Throws StorageError(kChanged) unless size and mtime are still those of `expected`.
  void check_unchanged(const ObjectInfo& expected) const;
  // Reads exactly `length` bytes at `offset` (pread, retried on EINTR and short reads); throws
  // StorageError(kChanged) when the file ends early, kIo on errors.
  void read_at(char* into, std::size_t length, std::uint64_t offset, std::string_view key) const;

 private:
  explicit ObjectFile(int fd);
  int fd_ = -1;
};

// The folder that holds `key` below the root `root_fd` (for "a/b/c.txt": "a/b"), opened as a
// directory descriptor, or -1 when it does not exist (or a link or a non-folder stands in the
// way: no link is followed, not even one that stays inside). With `create`, missing folders
// are made (0755). The caller closes it. `leaf` receives the last segment ("c.txt").
// Throws StorageError(kIo) on other failures. REQUIRES: key_problem(key) is nothing.
int open_parent_beneath(int root_fd, std::string_view key, bool create, std::string& leaf);

// Nanoseconds since the epoch of a stat's modification time.
std::int64_t mtime_ns_of(const struct stat& st);

}  // namespace sluice
