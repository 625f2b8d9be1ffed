#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/byte_sink.hpp"

namespace sluice {

// A stored object's identity as a reader must find it again: a reader that opens an object
// whose size or modification time differ fails instead of delivering other bytes.
struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;  // nanoseconds since the epoch (S3: whole seconds)
  // The store's tag of the content when it has one (S3's ETag, without quotes): a reader that
  // finds another tag fails; empty for the local folder, where size and mtime identify.
  std::string etag;
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

// One step of a sequential read plan: a range of one object, delivered one of four ways.
struct ReadStep {
  enum class Delivery : std::uint8_t {
    kBytes,      // read into the stream's buffers, in pieces of any size
    kOneBuffer,  // read into one buffer, as a single piece. REQUIRES: length <= the buffer size
    kFileRange,  // pieces that name the open file instead of bytes, for ByteSink::write_file
                 // (sendfile); a store without local files delivers bytes instead
    kNone,       // no bytes: one empty piece, for the step's checksum (`crc32`)
  };

  ObjectInfo object;         // checked against the object when it is opened and when done
  std::uint64_t offset = 0;  // the bytes to deliver: [offset, offset + length)
  std::uint64_t length = 0;
  Delivery delivery = Delivery::kBytes;
  // Also compute the CRC-32 of the whole object, given on the step's last piece (a local store
  // computes it while reading; kNone reads the whole object for it). REQUIRES: the step covers
  // the whole object or delivers kNone; not with kFileRange.
  bool crc32 = false;
};

// A run of bytes of one step, in plan order.
struct ReadPiece {
  std::size_t step = 0;
  std::string_view bytes;              // valid until the next call of next() or cancel()
  std::optional<std::uint32_t> crc32;  // on the step's last piece when the step asked for it
  bool last = false;                   // the step's last piece
  // A piece of a kFileRange step: `file_length` bytes of the open file `file` at
  // `file_offset` (bytes is empty). The descriptor is valid until the next call of next().
  int file = -1;
  std::uint64_t file_offset = 0;
  std::uint64_t file_length = 0;
};

// How much a stream reads ahead: `buffers` recycled buffers of `buffer_bytes` each (a piece
// that names a file counts as one buffer). Reading stops when all are full and resumes when the
// consumer has taken one: nothing is read faster than it is consumed, beyond this budget.
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
  // After the consumer sent the last piece of a kFileRange step (sendfile reads the file as it
  // is then, not as it was planned): throws StorageError(kChanged) when the object changed in
  // place meanwhile, so the transfer is aborted instead of ending with other bytes. Bytes read
  // into buffers are checked while they are read; a store that delivers only bytes has nothing
  // to do. REQUIRES: `piece` is the last piece next() returned.
  virtual void check_sent(const ReadPiece& piece) { (void)piece; }
  virtual void cancel() noexcept = 0;
};

// Writes one object that becomes visible only when complete: write() appends (it is a ByteSink,
// so a pipeline writes a job's result straight into it), commit() publishes it under its key
// atomically — readers see the previous object or the whole new one, never a part — and
// abandon(), or destruction without commit(), leaves nothing visible. The shape of LevelDB's
// TableBuilder (Add / Finish / Abandon). A local store writes a hidden temporary file and
// renames it; S3 will use a multipart upload, completed or aborted.
// Not thread-safe: one coroutine.
class ObjectWriter : public ByteSink {
 public:
  // Publishes the object and returns its identity as stored. Throws StorageError; nothing is
  // visible then.
  virtual boost::asio::awaitable<ObjectInfo> commit() = 0;
  // Drops what was written. Never throws; idempotent; nothing to do after commit().
  virtual boost::asio::awaitable<void> abandon() = 0;
  // ByteSink's end of a complete body: commit().
  boost::asio::awaitable<void> finish() override;
  virtual std::uint64_t bytes_written() const = 0;
};

// One page of a listing: `objects` in byte order of their keys; `next_after` is the key to pass
// as `after` for the next page, or nothing on the last page.
struct ObjectPage {
  std::vector<ObjectInfo> objects;
  std::optional<std::string> next_after;
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
  // keys — unless `prefix` is itself reserved (".sluice/archives/": Sluice listing its own
  // objects). Throws StorageError(kIo) when more than `limit` match.
  virtual boost::asio::awaitable<std::vector<ObjectInfo>> list(std::string prefix,
                                                               std::size_t limit) = 0;
  // The same listing a page at a time: at most `max` objects whose keys sort after `after`
  // ("" = from the start). REQUIRES: max > 0.
  virtual boost::asio::awaitable<ObjectPage> list_page(std::string prefix, std::string after,
                                                       std::size_t max) = 0;
  // Whole small objects (manifests). get() returns nothing when absent; throws when the
  // object exceeds `max_bytes`. put() replaces atomically: readers see the old or the new.
  virtual boost::asio::awaitable<std::optional<std::string>> get(std::string key,
                                                                 std::size_t max_bytes) = 0;
  virtual boost::asio::awaitable<void> put(std::string key, std::string bytes) = 0;
  // Starts writing `key` (see ObjectWriter); the object appears only at commit(). Reserved keys
  // are allowed (Sluice's own objects). Throws StorageError(kIo) for an invalid key.
  virtual boost::asio::awaitable<std::unique_ptr<ObjectWriter>> write(std::string key) = 0;
  // Deletes the object; false when there was none. Never removes a folder or follows a link.
  virtual boost::asio::awaitable<bool> remove(std::string key) = 0;
  // Bytes [offset, offset + length) of `key` in one read, for small reads of immutable objects
  // (a cube's records): the local folder preads on the calling thread (the page cache makes it
  // a copy; no hop to the pool), S3 issues one ranged GET. Throws StorageError: kGone when there
  // is no such object, kChanged when it ends before offset + length.
  virtual boost::asio::awaitable<std::string> read_range(std::string key, std::uint64_t offset,
                                                         std::size_t length) = 0;
  // Starts reading `plan` ahead of the consumer; the consumer runs on `executor`.
  virtual std::unique_ptr<ObjectStream> read(std::vector<ReadStep> plan, ReadAheadBudget budget,
                                             boost::asio::any_io_executor executor) = 0;
  // A URL the store serves by itself, for a GET of `key` until now + `expires` (S3: a
  // presigned URL, whose answer carries `content_disposition` when given); nothing when the
  // store serves nothing (the local folder: Sluice's own /v1/files links). Throws StorageError
  // for an invalid key.
  // Closes the connections a remote store keeps alive between calls. Call it before the I/O
  // context they were opened on goes away (a command's own io_context); the store stays usable.
  virtual void close_idle() noexcept {}
  virtual std::optional<std::string> presign_get(std::string_view key, std::chrono::seconds expires,
                                                 std::string_view content_disposition) const {
    (void)key, (void)expires, (void)content_disposition;
    return std::nullopt;
  }
};

// Checks that `store` works end to end: lists one object, writes a probe object under the
// reserved prefix, reads it back and deletes it. Returns nothing; throws StorageError naming the
// step that failed (S3: with S3's error code).
boost::asio::awaitable<void> check_object_store(ObjectStore& store);

}  // namespace sluice
