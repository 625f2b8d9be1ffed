#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// A stored object's identity as a reader must find it again: a reader that opens an object
// whose size or modification time differ fails instead of delivering other bytes.
struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;  // nanoseconds since the epoch
};

// The store failed: I/O error, or an object changed or vanished while a plan was read.
class StorageError : public std::runtime_error {
 public:
  enum class Kind { kIo, kChanged, kGone };
  StorageError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// One step of a sequential read plan.
struct ReadStep {
  ObjectInfo object;            // checked against the object when it is opened and when done
  std::uint64_t offset = 0;     // the bytes to deliver: [offset, offset + length)
  std::uint64_t length = 0;
  // Read the whole object only for its CRC-32 and deliver no bytes (one empty piece with the
  // crc): a ZIP entry stored without compression needs its CRC before its data.
  bool checksum_only = false;
  // Deliver this step's bytes inside one buffer (a single piece). REQUIRES: length <= the
  // stream's buffer size. For small objects whose CRC is computed while they are read.
  bool whole_in_one_buffer = false;
  // The consumer can send file ranges (ByteSink::write_file): a store with local files may
  // deliver this step as pieces that name an open file instead of bytes read into a buffer.
  // No CRC is computed then. The store still reads ahead (into the page cache), within the
  // number of buffers of the budget.
  bool by_reference = false;
};

// A run of bytes of one step, in plan order.
struct ReadPiece {
  std::size_t step = 0;
  std::string_view bytes;              // valid until the next call of next() or cancel()
  std::optional<std::uint32_t> crc32;  // on the step's last piece when it covered the object
  bool last = false;                   // the step's last piece
  // A piece of a by_reference step: `file_length` bytes of the open file `file` at
  // `file_offset` (bytes is empty). The descriptor is valid until the next call of next().
  int file = -1;
  std::uint64_t file_offset = 0;
  std::uint64_t file_length = 0;
};

// How much a stream reads ahead: `buffers` recycled buffers of `buffer_bytes` each. Reading
// stops when all are full and resumes when the consumer has taken one: nothing is read faster
// than it is consumed, beyond this budget.
struct ReadAheadBudget {
  std::size_t buffers = 2;
  std::size_t buffer_bytes = 64 * 1024;
};

// Reads a plan of object ranges in order, ahead of the consumer, within a ReadAheadBudget.
// The next object is opened and read as soon as the previous one is in the buffers.
// Not thread-safe: one consumer coroutine, running on the executor given at open.
// Destroying it (or cancel()) stops reading and closes open objects promptly.
class ObjectStream {
 public:
  virtual ~ObjectStream() = default;
  // The next piece, or nothing after the last step. Every step delivers at least one piece
  // (an empty one for an empty range). Throws StorageError.
  virtual boost::asio::awaitable<std::optional<ReadPiece>> next() = 0;
  virtual void cancel() noexcept = 0;
};

// Where stored objects live: a local folder today, an S3 bucket later. Everything is
// asynchronous so a remote store fits the same interface; keys are validated by the caller
// (object_key.hpp) and again by the store.
// Thread-safe.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // The object's size and modification time, or nothing when there is no such object.
  virtual boost::asio::awaitable<std::optional<ObjectInfo>> head(std::string key) = 0;
  // head() of many keys at once (a remote store issues them concurrently), in order.
  virtual boost::asio::awaitable<std::vector<std::optional<ObjectInfo>>> head_many(
      std::vector<std::string> keys) = 0;
  // Objects whose key starts with `prefix`, in byte order of their keys, leaving out reserved
  // keys. Throws StorageError(kIo) when more than `limit` match.
  virtual boost::asio::awaitable<std::vector<ObjectInfo>> list(std::string prefix,
                                                               std::size_t limit) = 0;
  // Whole small objects (manifests). get() returns nothing when absent; throws when the
  // object exceeds `max_bytes`. put() replaces atomically: readers see the old or the new.
  virtual boost::asio::awaitable<std::optional<std::string>> get(std::string key,
                                                                 std::size_t max_bytes) = 0;
  virtual boost::asio::awaitable<void> put(std::string key, std::string bytes) = 0;
  // Starts reading `plan` ahead of the consumer; the consumer runs on `executor`.
  virtual std::unique_ptr<ObjectStream> read(std::vector<ReadStep> plan, ReadAheadBudget budget,
                                             boost::asio::any_io_executor executor) = 0;
};

}  // namespace sluice
