#include "storage/local_object_stream.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <deque>
#include <mutex>

#include "core/crc32.hpp"
#include "core/metrics.hpp"
#include "core/wake_signal.hpp"
#include "storage/object_file.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

struct PieceRecord {
  std::size_t step = 0;
  std::size_t offset = 0;  // in the buffer
  std::size_t length = 0;
  std::optional<std::uint32_t> crc32;
  bool last = false;
  std::shared_ptr<ObjectFile> file;  // a by_reference piece: a range of this file
  std::uint64_t file_offset = 0;
  std::uint64_t file_length = 0;
};

struct Buffer {
  std::unique_ptr<char[]> data;
  std::size_t used = 0;
  std::vector<PieceRecord> pieces;
};

// Thrown inside the job to stop a long checksum pass once the consumer has gone.
struct Cancelled {};

class ReadState : public std::enable_shared_from_this<ReadState> {
 public:
  ReadState(int root_fd, std::vector<ReadStep> plan, ReadAheadBudget budget,
            asio::thread_pool& pool, const asio::any_io_executor& executor)
      : root_fd_(root_fd),
        plan_(std::move(plan)),
        capacity_(std::max<std::size_t>(budget.buffer_bytes, 4096)),
        reference_bytes_(capacity_ * 16),
        pool_(pool),
        wake_(std::make_shared<WakeSignal>(executor)),
        buffers_(std::max<std::size_t>(budget.buffers, 1)) {
    for (Buffer& buffer : buffers_) free_.push_back(&buffer);
  }

  void start() {
    std::lock_guard lock(mutex_);
    if (plan_.empty()) finished_ = true;
    schedule_locked();
  }

  asio::awaitable<std::optional<ReadPiece>> next() {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (handed_out_ != nullptr && ++piece_index_ < handed_out_->pieces.size()) {
          co_return piece_locked();
        }
        if (handed_out_ != nullptr) {
          handed_out_->pieces.clear();  // lets go of files sent by reference
          free_.push_back(handed_out_);
          handed_out_ = nullptr;
          schedule_locked();
        }
        if (!ready_.empty()) {
          handed_out_ = ready_.front();
          ready_.pop_front();
          piece_index_ = 0;
          co_return piece_locked();
        }
        if (finished_) {
          if (error_) throw *error_;
          co_return std::nullopt;
        }
      }
      co_await wake_->wait();
    }
  }

  void cancel() noexcept {
    cancelled_.store(true);
    std::lock_guard lock(mutex_);
    if (!reading_) file_.reset();  // otherwise the job closes it at its next check
  }

 private:
  ReadPiece piece_locked() const {
    const PieceRecord& record = handed_out_->pieces[piece_index_];
    if (record.file) {
      return ReadPiece{record.step, {}, std::nullopt, record.last, record.file->fd(),
                       record.file_offset, record.file_length};
    }
    return ReadPiece{record.step,
                     std::string_view(handed_out_->data.get() + record.offset, record.length),
                     record.crc32, record.last};
  }

  void schedule_locked() {
    if (reading_ || finished_ || free_.empty() || cancelled_.load()) return;
    reading_ = true;
    asio::post(pool_, [self = shared_from_this()] { self->read_buffers(); });
  }

  // Runs on a pool thread: fills free buffers until none is left, the plan is done, or the
  // consumer cancelled.
  void read_buffers() {
    metrics().busy_object_reads.fetch_add(1, std::memory_order_relaxed);
    try {
      for (;;) {
        Buffer* buffer = nullptr;
        {
          std::lock_guard lock(mutex_);
          if (free_.empty() || cancelled_.load()) {
            stop_locked();
            break;
          }
          buffer = free_.back();
          free_.pop_back();
        }
        fill(*buffer);
        const bool done = next_step_ == plan_.size();
        {
          std::lock_guard lock(mutex_);
          ready_.push_back(buffer);
          if (done) finished_ = true;
          if (done) stop_locked();
        }
        wake_->notify();
        if (done) break;
      }
    } catch (const Cancelled&) {
      std::lock_guard lock(mutex_);
      stop_locked();
    } catch (const StorageError& error) {
      fail(error);
    } catch (const std::exception& error) {
      fail(StorageError(StorageError::Kind::kIo, error.what()));
    }
    metrics().busy_object_reads.fetch_sub(1, std::memory_order_relaxed);
  }

  void stop_locked() {
    reading_ = false;
    if (cancelled_.load() || finished_) file_.reset();
  }

  void fail(const StorageError& error) {
    {
      std::lock_guard lock(mutex_);
      error_ = error;
      finished_ = true;
      file_.reset();
      reading_ = false;
    }
    wake_->notify();
  }

  // Fills `buffer` with pieces of the plan from next_step_ on.
  void fill(Buffer& buffer) {
    buffer.used = 0;
    buffer.pieces.clear();
    while (next_step_ < plan_.size()) {
      const ReadStep& step = plan_[next_step_];
      if (step.by_reference) {
        if (!buffer.pieces.empty()) return;  // hand over the bytes first
        refer(step, buffer);
        return;
      }
      // Memory only for buffers that carry bytes: archives of large stored files need none.
      if (!buffer.data) buffer.data.reset(new char[capacity_]);
      if (step.checksum_only) {
        if (!buffer.pieces.empty()) return;  // hand over the data first
        buffer.pieces.push_back(PieceRecord{next_step_, 0, 0, checksum(step, buffer), true});
        ++next_step_;
        return;
      }
      const std::size_t room = capacity_ - buffer.used;
      if (!file_) {
        const bool wait_for_next = step.whole_in_one_buffer && step.length > room;
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
    auto shared = std::make_shared<ObjectFile>(std::move(file));
    std::lock_guard lock(mutex_);
    file_ = std::move(shared);
    position_ = 0;
    crc_ = 0;
  }

  // Reads as much of the current step as fits; true when the step is complete.
  bool read_into(const ReadStep& step, Buffer& buffer, PieceRecord& piece) {
    const std::size_t want = static_cast<std::size_t>(
        std::min<std::uint64_t>(capacity_ - buffer.used, step.length - position_));
    char* at = buffer.data.get() + buffer.used;
    file_->read_at(at, want, step.offset + position_, step.object.key);
    const bool whole = step.offset == 0 && step.length == step.object.size;
    if (whole) crc_ = crc32_update(crc_, std::string_view(at, want));
    buffer.used += want;
    piece.length += want;
    position_ += want;
    if (position_ < step.length) return false;
    file_->check_unchanged(step.object);
    piece.last = true;
    if (whole) piece.crc32 = crc_;
    close_file();
    ++next_step_;
    return true;
  }

  // Reads the whole object through `scratch` for its CRC-32.
  std::uint32_t checksum(const ReadStep& step, Buffer& scratch) {
    open_step(step);
    std::uint32_t crc = 0;
    for (std::uint64_t at = 0; at < step.object.size;) {
      if (cancelled_.load()) throw Cancelled{};
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(capacity_, step.object.size - at));
      file_->read_at(scratch.data.get(), want, at, step.object.key);
      crc = crc32_update(crc, std::string_view(scratch.data.get(), want));
      at += want;
    }
    file_->check_unchanged(step.object);
    close_file();
    return crc;
  }

  // The next range of a by_reference step as one piece naming the file; readahead(2) brings
  // it into the page cache here, on the pool, so the consumer's sendfile does not wait for
  // the disk.
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
      close_file();
      ++next_step_;
    }
    buffer.pieces.push_back(std::move(piece));
  }

  void close_file() {
    std::lock_guard lock(mutex_);
    file_.reset();
  }

  const int root_fd_;
  const std::vector<ReadStep> plan_;
  const std::size_t capacity_;
  const std::size_t reference_bytes_;  // per by_reference piece: no memory, only page cache
  asio::thread_pool& pool_;
  std::shared_ptr<WakeSignal> wake_;
  std::atomic<bool> cancelled_{false};

  // Touched only by the job (one at a time), except file_ which cancel() may close while no
  // job runs; swaps of file_ happen under mutex_.
  std::size_t next_step_ = 0;
  std::uint64_t position_ = 0;  // within the current step
  std::uint32_t crc_ = 0;       // of the current step so far
  std::shared_ptr<ObjectFile> file_;  // pieces sent by reference share it

  std::mutex mutex_;  // guards everything below
  std::vector<Buffer> buffers_;
  std::vector<Buffer*> free_;
  std::deque<Buffer*> ready_;
  Buffer* handed_out_ = nullptr;
  std::size_t piece_index_ = 0;
  bool reading_ = false;
  bool finished_ = false;
  std::optional<StorageError> error_;
};

class LocalObjectStream final : public ObjectStream {
 public:
  explicit LocalObjectStream(std::shared_ptr<ReadState> state) : state_(std::move(state)) {}
  ~LocalObjectStream() override { state_->cancel(); }
  asio::awaitable<std::optional<ReadPiece>> next() override { return state_->next(); }
  void cancel() noexcept override { state_->cancel(); }

 private:
  std::shared_ptr<ReadState> state_;
};

}  // namespace

std::unique_ptr<ObjectStream> make_local_object_stream(int root_fd, std::vector<ReadStep> plan,
                                                       ReadAheadBudget budget,
                                                       asio::thread_pool& pool,
                                                       const asio::any_io_executor& executor) {
  auto state = std::make_shared<ReadState>(root_fd, std::move(plan), budget, pool, executor);
  state->start();
  return std::make_unique<LocalObjectStream>(std::move(state));
}

}  // namespace sluice
