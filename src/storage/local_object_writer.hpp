#pragma once

#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>

#include "storage/object_store.hpp"

namespace sluice {

// A file of the local store being written: a temporary file in the store's hidden folder
// (.sluice/tmp), published by rename under its key. Synchronous: runs on the store's pool.
// Not thread-safe.
class TempObjectFile {
 public:
  // Creates the temporary file. Throws StorageError(kIo).
  TempObjectFile(int root_fd, int temp_fd, std::string key);
  ~TempObjectFile();  // removes the file unless published
  TempObjectFile(const TempObjectFile&) = delete;
  TempObjectFile& operator=(const TempObjectFile&) = delete;

  void append(std::string_view bytes);
  // fsync, then rename to the key (folders made as needed, never through a link), then fsync
  // the folder: the object is whole and durable when this returns. Throws StorageError(kIo).
  ObjectInfo publish();
  // Closes and removes the temporary file. Never throws.
  void discard() noexcept;
  std::uint64_t size() const { return size_; }
  const std::string& key() const { return key_; }

 private:
  int root_fd_;
  int temp_fd_;  // .sluice/tmp, owned by the store
  std::string key_;
  std::string temp_name_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool published_ = false;
};

// The local store's ObjectWriter: each write and the commit run on `pool`, so the I/O thread
// never waits for the disk.
std::unique_ptr<ObjectWriter> make_local_object_writer(std::unique_ptr<TempObjectFile> file,
                                                       boost::asio::thread_pool& pool);

}  // namespace sluice
