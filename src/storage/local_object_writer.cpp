#include "storage/local_object_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "core/blocking_call.hpp"
#include "storage/object_file.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

[[noreturn]] void fail(const std::string& what, int error) {
  throw StorageError(StorageError::Kind::kIo, what + ": " + std::strerror(error));
}

std::string random_name() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string name;
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t bits = random();
    for (int shift = 0; shift < 32; shift += 4) name += kHex[(bits >> shift) & 15];
  }
  return name + ".part";
}

class LocalObjectWriter final : public ObjectWriter {
 public:
  LocalObjectWriter(std::unique_ptr<TempObjectFile> file, asio::thread_pool& pool)
      : file_(std::move(file)), pool_(pool) {}
  ~LocalObjectWriter() override {
    if (file_) file_->discard();  // not committed: nothing stays
  }

  asio::awaitable<void> write(std::string_view bytes) override {
    if (!file_) throw StorageError(StorageError::Kind::kIo, "the object writer was closed");
    // The caller keeps `bytes` valid until this completes (ByteSink's contract).
    // (The awaitable is made outside co_await: g++ 12 mishandles lambdas inside co_await.)
    auto appended = run_blocking(pool_, [file = file_.get(), bytes] {
      file->append(bytes);
      return true;
    });
    co_await std::move(appended);
    written_ += bytes.size();
  }

  asio::awaitable<ObjectInfo> commit() override {
    if (!file_) throw StorageError(StorageError::Kind::kIo, "the object writer was closed");
    std::shared_ptr<TempObjectFile> file(std::move(file_));
    auto published = run_blocking(pool_, [file] {
      try {
        return file->publish();
      } catch (...) {
        file->discard();
        throw;
      }
    });
    co_return co_await std::move(published);
  }

  asio::awaitable<void> abandon() override {
    if (!file_) co_return;
    std::shared_ptr<TempObjectFile> file(std::move(file_));
    auto discarded = run_blocking(pool_, [file] {
      file->discard();
      return true;
    });
    co_await std::move(discarded);
  }

  std::uint64_t bytes_written() const override { return written_; }

 private:
  std::unique_ptr<TempObjectFile> file_;  // null once committed or abandoned
  asio::thread_pool& pool_;
  std::uint64_t written_ = 0;
};

}  // namespace

TempObjectFile::TempObjectFile(int root_fd, int temp_fd, std::string key)
    : root_fd_(root_fd), temp_fd_(temp_fd), key_(std::move(key)), temp_name_(random_name()) {
  fd_ = ::openat(temp_fd_, temp_name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                 0644);
  if (fd_ < 0) fail("cannot create a temporary file for '" + key_ + "'", errno);
}

TempObjectFile::~TempObjectFile() {
  if (!published_) discard();
}

void TempObjectFile::append(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t wrote = ::write(fd_, bytes.data(), bytes.size());
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) fail("cannot write object '" + key_ + "'", errno);
    bytes.remove_prefix(static_cast<std::size_t>(wrote));
    size_ += static_cast<std::uint64_t>(wrote);
  }
}

ObjectInfo TempObjectFile::publish() {
  if (::fsync(fd_) != 0) fail("cannot flush object '" + key_ + "'", errno);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail("cannot stat object '" + key_ + "'", errno);
  std::string leaf;
  const int folder = open_parent_beneath(root_fd_, key_, true, leaf);
  if (folder < 0) {
    throw StorageError(StorageError::Kind::kIo,
                       "cannot store object '" + key_ + "': a file or link stands in its path");
  }
  const int renamed = ::renameat(temp_fd_, temp_name_.c_str(), folder, leaf.c_str());
  const int error = errno;
  if (renamed == 0) ::fsync(folder);  // the new name is durable too
  ::close(folder);
  if (renamed != 0) fail("cannot store object '" + key_ + "'", error);
  published_ = true;
  ::close(fd_);
  fd_ = -1;
  return ObjectInfo{key_, static_cast<std::uint64_t>(st.st_size), mtime_ns_of(st)};
}

void TempObjectFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!published_ && !temp_name_.empty()) {
    ::unlinkat(temp_fd_, temp_name_.c_str(), 0);
    temp_name_.clear();
  }
}

std::unique_ptr<ObjectWriter> make_local_object_writer(std::unique_ptr<TempObjectFile> file,
                                                       asio::thread_pool& pool) {
  return std::make_unique<LocalObjectWriter>(std::move(file), pool);
}

}  // namespace sluice
