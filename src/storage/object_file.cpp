#include "storage/object_file.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "storage/storage_metrics.hpp"

namespace sluice {
namespace {

std::string errno_text(int error) { return std::strerror(error); }

// openat2 with RESOLVE_BENEATH keeps every lookup inside the root, whatever symlinks the
// folder holds. Kernels before 5.6 lack it: keys never hold "..", so O_NOFOLLOW on the last
// component is the fallback.
int open_beneath(int root_fd, const std::string& key, int flags) {
  // openat2 rejects flags that O_PATH ignores, such as O_NOCTTY.
  if ((flags & O_PATH) == 0) flags |= O_NOCTTY;
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags) | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = syscall(SYS_openat2, root_fd, key.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || errno == EAGAIN) continue;
    if (errno != ENOSYS) return -1;
    return ::openat(root_fd, key.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
  }
}

}  // namespace

ObjectFile::ObjectFile(int fd) : fd_(fd) {
  storage_metrics().open_files.add(1);
}

ObjectFile& ObjectFile::operator=(ObjectFile&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void ObjectFile::close() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  storage_metrics().open_files.sub(1);
}

ObjectFile ObjectFile::open(int root_fd, std::string_view key, int flags) {
  const std::string path(key);
  const int fd = open_beneath(root_fd, path, flags);
  if (fd >= 0) return ObjectFile(fd);
  // ELOOP: a symlink where O_NOFOLLOW forbids one; EXDEV: a path that leaves the root.
  if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV) return {};
  throw StorageError(StorageError::Kind::kIo, "cannot open object '" + path + "': " +
                                                  errno_text(errno));
}

ObjectInfo ObjectFile::info(std::string_view key) const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    throw StorageError(StorageError::Kind::kIo,
                       "cannot stat object '" + std::string(key) + "': " + errno_text(errno));
  }
  return ObjectInfo{std::string(key), static_cast<std::uint64_t>(st.st_size), mtime_ns_of(st)};
}

void ObjectFile::check_unchanged(const ObjectInfo& expected) const {
  ObjectInfo now = info(expected.key);
  if (now.size != expected.size || now.mtime_ns != expected.mtime_ns) {
    throw StorageError(StorageError::Kind::kChanged,
                       "object '" + expected.key + "' changed (size " +
                           std::to_string(expected.size) + " -> " + std::to_string(now.size) +
                           ")");
  }
}

void ObjectFile::read_at(char* into, std::size_t length, std::uint64_t offset,
                         std::string_view key) const {
  while (length > 0) {
    const ssize_t got = ::pread(fd_, into, length, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      throw StorageError(StorageError::Kind::kIo,
                         "cannot read object '" + std::string(key) + "': " + errno_text(errno));
    }
    if (got == 0) {
      throw StorageError(StorageError::Kind::kChanged,
                         "object '" + std::string(key) + "' ended early (truncated while read)");
    }
    into += got;
    length -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
}

int open_parent_beneath(int root_fd, std::string_view key, bool create, std::string& leaf) {
  const std::size_t slash = key.rfind('/');
  leaf = std::string(slash == std::string_view::npos ? key : key.substr(slash + 1));
  int folder = ::fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
  if (folder < 0) throw StorageError(StorageError::Kind::kIo, "dup: " + errno_text(errno));
  std::string_view rest = slash == std::string_view::npos ? std::string_view() : key.substr(0, slash);
  while (!rest.empty()) {
    const std::size_t next = rest.find('/');
    const std::string segment(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    open_how how{};
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long child = -1;
    for (int attempt = 0; attempt < 2; ++attempt) {
      do {
        child = syscall(SYS_openat2, folder, segment.c_str(), &how, sizeof(how));
      } while (child < 0 && (errno == EINTR || errno == EAGAIN));
      if (child >= 0 || errno != ENOENT || !create) break;
      if (::mkdirat(folder, segment.c_str(), 0755) != 0 && errno != EEXIST) break;
    }
    const int error = errno;
    ::close(folder);
    if (child < 0) {
      if (error == ENOENT || error == ENOTDIR || error == ELOOP || error == EXDEV) return -1;
      throw StorageError(StorageError::Kind::kIo, "cannot open the folder of '" +
                                                      std::string(key) + "': " + errno_text(error));
    }
    folder = static_cast<int>(child);
  }
  return folder;
}

std::int64_t mtime_ns_of(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace sluice
