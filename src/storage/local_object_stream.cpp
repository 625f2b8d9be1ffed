#include "storage/local_object_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "core/channel.hpp"
#include "core/crc32.hpp"
#include "storage/object_file.hpp"
#include "storage/storage_metrics.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
using Delivery = ReadStep::Delivery;

struct PieceRecord {
  std::size_t step = 0;
  std::size_t offset = 0;  // in the buffer
  std::size_t length = 0;
  std::optional<std::uint32_t> crc32;
  bool last = false;
  std::shared_ptr<ObjectFile> file;  // a kFileRange piece: a range of this file
  std::uint64_t file_offset = 0;
  std::uint64_t file_length = 0;
};

// What travels through the channel: a buffer of bytes and the pieces that point into it (or
// name files). Pieces of several small objects share a buffer: one wake-up per buffer.
struct Buffer {
  std::unique_ptr<char[]> data;
  std::size_t used = 0;
  std::vector<PieceRecord> pieces;
};
using BufferChannel = Channel<Buffer>;

// Thrown inside the job to stop a long checksum pass once the consumer has gone.
struct Cancelled {};

// The producer: a job on the store's blocking pool that reads the plan in order into buffers
// (pread; CRC-32 of whole objects on the way) and pushes them through the channel. When the
// channel is full the job returns its thread and is posted again once the consumer frees a
// buffer, so a slow client parks no thread. It owns the open file; a cancel closes it at the
// job's next step.
class PlanReader : public std::enable_shared_from_this<PlanReader> {
 public:
  PlanReader(int root_fd, std::shared_ptr<const std::vector<ReadStep>> plan, std::size_t capacity,
             asio::thread_pool& pool, std::shared_ptr<BufferChannel> channel)
      : root_fd_(root_fd),
        plan_holder_(std::move(plan)),
        plan_(*plan_holder_),
        capacity_(capacity),
        reference_bytes_(capacity * 16),
        pool_(pool),
        channel_(std::move(channel)) {}

  void start() { asio::post(pool_, [self = shared_from_this()] { self->read(); }); }

 private:
  // Runs on a pool thread: fills buffers until the channel is full, the plan is done, or the
  // consumer cancelled.
  void read() {
    storage_metrics().busy_reads.add(1);
    try {
      for (;;) {
        if (channel_->cancelled()) {
          file_.reset();
          break;
        }
        if (next_step_ == plan_.size()) {
          channel_->close();
          break;
        }
        if (!channel_->has_space()) {
          // Posted again when the consumer frees a buffer or cancels; nothing of this object is
          // touched after a successful registration.
          if (channel_->when_space([self = shared_from_this()] { self->start(); })) break;
          continue;
        }
        Buffer buffer = channel_->take_spare().value_or(Buffer{});
        fill(buffer);
        // Every buffer counts in full, a piece naming a file too: that bounds the readahead.
        channel_->push(std::move(buffer), capacity_);
      }
    } catch (const Cancelled&) {
      file_.reset();
    } catch (const StorageError& error) {
      file_.reset();
      channel_->fail(std::make_exception_ptr(error));
    } catch (const std::exception& error) {
      file_.reset();
      channel_->fail(std::make_exception_ptr(StorageError(StorageError::Kind::kIo, error.what())));
    }
    storage_metrics().busy_reads.sub(1);
  }

  // Fills `buffer` with pieces of the plan from next_step_ on.
  void fill(Buffer& buffer) {
    buffer.used = 0;
    buffer.pieces.clear();
    while (next_step_ < plan_.size()) {
      const ReadStep& step = plan_[next_step_];
      if (step.delivery == Delivery::kFileRange) {
        if (!buffer.pieces.empty()) return;  // hand over the bytes first
        refer(step, buffer);
        return;
      }
      // Memory only for buffers that carry bytes: archives of large stored files need none.
      if (!buffer.data) buffer.data.reset(new char[capacity_]);
      if (step.delivery == Delivery::kNone) {
        if (!buffer.pieces.empty()) return;  // hand over the data first
        buffer.pieces.push_back(PieceRecord{next_step_, 0, 0, checksum(step, buffer), true});
        ++next_step_;
        return;
      }
      const std::size_t room = capacity_ - buffer.used;
      if (!file_) {
        const bool wait_for_next = step.delivery == Delivery::kOneBuffer && step.length > room;
        if (room == 0 || (wait_for_next && buffer.used > 0)) return;
        open_step(step);
      }
      buffer.pieces.push_back(PieceRecord{next_step_, buffer.used, 0, std::nullopt, false});
      if (!read_into(step, buffer, buffer.pieces.back())) return;  // buffer full
    }
  }

  void open_step(const ReadStep& step) {
    ObjectFile file = ObjectFile::open(root_fd_, step.object.key, O_RDONLY);
    if (!file.is_open()) {
      throw StorageError(StorageError::Kind::kGone,
                         "object '" + step.object.key + "' no longer exists");
    }
    file.check_unchanged(step.object);
    if (step.length >= 4 * capacity_) ::posix_fadvise(file.fd(), 0, 0, POSIX_FADV_SEQUENTIAL);
    file_ = std::make_shared<ObjectFile>(std::move(file));
    position_ = 0;
    crc_ = 0;
  }

  // Reads as much of the current step as fits; true when the step is complete.
  bool read_into(const ReadStep& step, Buffer& buffer, PieceRecord& piece) {
    const std::size_t want = static_cast<std::size_t>(
        std::min<std::uint64_t>(capacity_ - buffer.used, step.length - position_));
    char* at = buffer.data.get() + buffer.used;
    file_->read_at(at, want, step.offset + position_, step.object.key);
    if (step.crc32) crc_ = crc32_update(crc_, std::string_view(at, want));
    buffer.used += want;
    piece.length += want;
    position_ += want;
    if (position_ < step.length) return false;
    file_->check_unchanged(step.object);
    piece.last = true;
    if (step.crc32) piece.crc32 = crc_;
    file_.reset();
    ++next_step_;
    return true;
  }

  // Reads the whole object through `scratch` for its CRC-32.
  std::uint32_t checksum(const ReadStep& step, Buffer& scratch) {
    open_step(step);
    std::uint32_t crc = 0;
    for (std::uint64_t at = 0; at < step.object.size;) {
      if (channel_->cancelled()) throw Cancelled{};
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(capacity_, step.object.size - at));
      file_->read_at(scratch.data.get(), want, at, step.object.key);
      crc = crc32_update(crc, std::string_view(scratch.data.get(), want));
      at += want;
    }
    file_->check_unchanged(step.object);
    file_.reset();
    return crc;
  }

  // The next range of a kFileRange step as one piece naming the file; readahead(2) brings it
  // into the page cache here, on the pool, so the consumer's sendfile does not wait for the disk.
  void refer(const ReadStep& step, Buffer& buffer) {
    if (!file_) open_step(step);
    const std::uint64_t want = std::min<std::uint64_t>(reference_bytes_, step.length - position_);
    const std::uint64_t at = step.offset + position_;
    ::readahead(file_->fd(), static_cast<off64_t>(at), want);
    PieceRecord piece{next_step_, 0, 0, std::nullopt, false, file_, at, want};
    position_ += want;
    if (position_ == step.length) {
      file_->check_unchanged(step.object);
      piece.last = true;
      file_.reset();
      ++next_step_;
    }
    buffer.pieces.push_back(std::move(piece));
  }

  const int root_fd_;
  const std::shared_ptr<const std::vector<ReadStep>> plan_holder_;  // shared with the stream
  const std::vector<ReadStep>& plan_;
  const std::size_t capacity_;
  const std::size_t reference_bytes_;  // per kFileRange piece: no memory, only page cache
  asio::thread_pool& pool_;
  const std::shared_ptr<BufferChannel> channel_;

  // Touched only by the job, one at a time.
  std::size_t next_step_ = 0;
  std::uint64_t position_ = 0;        // within the current step
  std::uint32_t crc_ = 0;             // of the current step so far
  std::shared_ptr<ObjectFile> file_;  // pieces sent by reference share it
};

// The consumer's end: the pieces of one buffer after the other.
class LocalObjectStream final : public ObjectStream {
 public:
  LocalObjectStream(std::shared_ptr<BufferChannel> channel,
                    std::shared_ptr<const std::vector<ReadStep>> plan)
      : channel_(std::move(channel)), plan_(std::move(plan)) {}
  ~LocalObjectStream() override { cancel(); }

  asio::awaitable<std::optional<ReadPiece>> next() override {
    if (current_ != nullptr && ++piece_ < current_->pieces.size()) co_return piece();
    if (current_ != nullptr) current_->pieces.clear();  // lets go of files sent by reference
    current_ = co_await channel_->next();
    piece_ = 0;
    if (current_ == nullptr) co_return std::nullopt;
    co_return piece();
  }

  void check_sent(const ReadPiece& piece) override {
    if (piece.file < 0 || !piece.last) return;
    struct stat st {};
    const ObjectInfo& planned = (*plan_)[piece.step].object;
    if (::fstat(piece.file, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != planned.size ||
        mtime_ns_of(st) != planned.mtime_ns) {
      throw StorageError(StorageError::Kind::kChanged,
                         "object '" + planned.key + "' changed while it was sent");
    }
  }

  void cancel() noexcept override {
    if (current_ != nullptr) current_->pieces.clear();
    channel_->cancel(std::make_exception_ptr(
        StorageError(StorageError::Kind::kIo, "the object stream was cancelled")));
  }

 private:
  ReadPiece piece() const {
    const PieceRecord& record = current_->pieces[piece_];
    if (record.file) {
      return ReadPiece{record.step, {}, std::nullopt, record.last, record.file->fd(),
                       record.file_offset, record.file_length};
    }
    return ReadPiece{record.step,
                     std::string_view(current_->data.get() + record.offset, record.length),
                     record.crc32, record.last};
  }

  std::shared_ptr<BufferChannel> channel_;
  std::shared_ptr<const std::vector<ReadStep>> plan_;
  Buffer* current_ = nullptr;  // the channel's item, valid until its next next()
  std::size_t piece_ = 0;
};

}  // namespace

std::unique_ptr<ObjectStream> make_local_object_stream(int root_fd, std::vector<ReadStep> plan,
                                                       ReadAheadBudget budget,
                                                       asio::thread_pool& pool,
                                                       const asio::any_io_executor& executor) {
  const std::size_t capacity = std::max<std::size_t>(budget.buffer_bytes, 4096);
  auto channel = std::make_shared<BufferChannel>(
      executor, std::max<std::size_t>(budget.buffers, 1) * capacity);
  auto steps = std::make_shared<const std::vector<ReadStep>>(std::move(plan));
  auto reader = std::make_shared<PlanReader>(root_fd, steps, capacity, pool, channel);
  reader->start();
  return std::make_unique<LocalObjectStream>(std::move(channel), std::move(steps));
}

}  // namespace sluice
