#include "features/archives/archive_stream.hpp"

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <limits>

#include "core/byte_buffer.hpp"
#include "features/archives/archive_metrics.hpp"
#include "encode/deflater.hpp"
#include "encode/zip_writer.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kNoStep = std::numeric_limits<std::size_t>::max();
// Stored data at least this long whose CRC is known goes by reference: sendfile from the page
// cache, no copy and no buffer. Smaller pieces are gathered with the headers into one write.
constexpr std::uint64_t kByReferenceBytes = 128 * 1024;

// What the read plan holds for one entry.
struct EntryPlan {
  std::optional<std::uint32_t> crc32;  // known before the header (cache, or empty object)
  std::size_t checksum_step = kNoStep;  // a checksum pass gives the CRC
  std::size_t data_step = kNoStep;      // the entry's bytes inside the window
  bool crc_from_data = false;           // small object: its one data piece carries the CRC
  std::uint64_t data_from = 0;          // [data_from, data_to) of the object is inside the window
  std::uint64_t data_to = 0;
};

bool overlaps(ByteWindow window, std::uint64_t start, std::uint64_t end) {
  return start < window.end && window.start < end;
}

// Decides, per entry, which CRCs are needed and how they are obtained, and which bytes to read.
std::vector<ReadStep> plan_reads(const ArchiveManifest& manifest,
                                 const std::optional<ArchiveLayout>& layout, ByteWindow window,
                                 CrcCache& crcs, std::size_t buffer_bytes,
                                 std::vector<EntryPlan>& plans) {
  std::vector<ReadStep> steps;
  plans.resize(manifest.entries.size());
  const bool central_wanted = !layout || window.end > layout->central_offset;
  for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
    const ManifestEntry& entry = manifest.entries[i];
    EntryPlan& plan = plans[i];
    const ObjectInfo object = entry.object();
    std::uint64_t from = 0;
    std::uint64_t to = entry.size;
    if (layout) {
      const std::uint64_t data = layout->data_offsets[i];
      from = std::clamp(window.start, data, data + entry.size) - data;
      to = std::clamp(window.end, data, data + entry.size) - data;
    }
    const bool header_wanted =
        !layout || overlaps(window, layout->header_offsets[i], layout->data_offsets[i]);
    if (entry.method == ZipMethod::kStore && (header_wanted || central_wanted)) {
      plan.crc32 = entry.size == 0 ? std::optional<std::uint32_t>(0) : crcs.find(object);
      if (!plan.crc32) {
        if (from == 0 && to == entry.size && entry.size <= buffer_bytes) {
          plan.crc_from_data = true;
        } else {
          plan.checksum_step = steps.size();
          steps.push_back(ReadStep{object, 0, 0, ReadStep::Delivery::kNone, true});
        }
      }
    }
    plan.data_from = from;
    plan.data_to = to;
    if (to > from) {
      plan.data_step = steps.size();
      ReadStep step{object, from, to - from};
      const bool whole = from == 0 && to == entry.size;
      if (plan.crc_from_data) {
        step.delivery = ReadStep::Delivery::kOneBuffer;
      } else if (entry.method == ZipMethod::kStore && to - from >= kByReferenceBytes) {
        step.delivery = ReadStep::Delivery::kFileRange;
      }
      // The CRC of every whole object read as bytes: it fills the cache, and a cached CRC that
      // the bytes contradict reveals an object changed in place.
      step.crc32 = whole && step.delivery != ReadStep::Delivery::kFileRange;
      steps.push_back(std::move(step));
    }
  }
  return steps;
}

// Writes the archive's bytes through `out`, keeping only those inside the window.
class WindowWriter {
 public:
  WindowWriter(ByteSink& sink, ByteWindow window, std::size_t flush_bytes)
      : sink_(sink), window_(window), flush_bytes_(flush_bytes), out_(flush_bytes + flush_bytes / 2) {}

  std::uint64_t position() const { return position_; }
  bool past_window() const { return position_ >= window_.end; }
  std::uint64_t sent() const { return sent_; }

  // Bytes the ZipWriter generated (headers, descriptors, directory) at the current position.
  asio::awaitable<void> generated(ByteBuffer& bytes) {
    const std::uint64_t end = position_ + bytes.size();
    if (overlaps(window_, position_, end)) {
      const std::uint64_t from = std::max(window_.start, position_) - position_;
      const std::uint64_t to = std::min(window_.end, end) - position_;
      out_.append(bytes.view().substr(from, to - from));
    }
    position_ = end;
    bytes.clear();
    if (out_.size() >= flush_bytes_) co_await flush();
  }

  // Entry data read for the window (all of it lies inside).
  asio::awaitable<void> data(std::string_view bytes) {
    if (bytes.size() >= flush_bytes_ / 2) {
      co_await flush();
      co_await write(bytes);
    } else {
      out_.append(bytes);
      if (out_.size() >= flush_bytes_) co_await flush();
    }
  }

  // `length` bytes of an open file, sent without copying (ByteSink::write_file).
  asio::awaitable<void> file(int fd, std::uint64_t offset, std::uint64_t length) {
    co_await flush();
    co_await sink_.write_file(fd, offset, length);
    sent_ += length;
    archive_metrics().bytes_sent.add(length);
  }

  // Skips entry data that lies (partly) outside the window; `bytes` of it were read.
  void advance(std::uint64_t bytes) { position_ += bytes; }

  // Compressed output goes straight into the buffer (deflated archives have no window).
  ByteBuffer& buffer() { return out_; }
  asio::awaitable<void> flush_if_full() {
    if (out_.size() >= flush_bytes_) co_await flush();
  }

  asio::awaitable<void> flush() {
    if (out_.empty()) co_return;
    co_await write(out_.view());
    out_.clear();
  }

 private:
  asio::awaitable<void> write(std::string_view bytes) {
    co_await sink_.write(bytes);
    sent_ += bytes.size();
    archive_metrics().bytes_sent.add(bytes.size());
  }

  ByteSink& sink_;
  ByteWindow window_;
  std::size_t flush_bytes_;
  ByteBuffer out_;
  std::uint64_t position_ = 0;
  std::uint64_t sent_ = 0;
};

class ArchiveRun {
 public:
  ArchiveRun(const ArchiveManifest& manifest, const std::optional<ArchiveLayout>& layout,
             ByteWindow window, CrcCache& crcs, ByteSink& sink, const ArchiveBudget& budget)
      : manifest_(manifest), layout_(layout), crcs_(crcs), out_(sink, window, budget.flush_bytes) {}

  asio::awaitable<std::uint64_t> run(ObjectStore& store, const ArchiveBudget& budget,
                                     ByteWindow window) {
    std::vector<ReadStep> steps = plan_reads(manifest_, layout_, window, crcs_,
                                             budget.read_ahead.buffer_bytes, plans_);
    stream_ = store.read(std::move(steps), budget.read_ahead, co_await asio::this_coro::executor);
    for (std::size_t i = 0; i < manifest_.entries.size() && !out_.past_window(); ++i) {
      if (manifest_.entries[i].method == ZipMethod::kStore) {
        co_await stored_entry(i);
      } else {
        co_await deflated_entry(i);
      }
    }
    if (!out_.past_window()) {
      while (!zip_.finish(generated_, 64 * 1024)) co_await out_.generated(generated_);
      co_await out_.generated(generated_);
    }
    co_await out_.flush();
    co_return out_.sent();
  }

 private:
  asio::awaitable<ReadPiece> next_piece(std::size_t step) {
    std::optional<ReadPiece> piece = co_await stream_->next();
    if (!piece || piece->step != step) throw ZipError("archive read plan out of order");
    co_return *piece;
  }

  void learn_crc(const ManifestEntry& entry, std::optional<std::uint32_t> crc32) {
    if (crc32) crcs_.insert(entry.object(), *crc32);
  }

  asio::awaitable<void> stored_entry(std::size_t i) {
    const ManifestEntry& entry = manifest_.entries[i];
    const EntryPlan& plan = plans_[i];
    std::optional<std::uint32_t> crc32 = plan.crc32;
    if (plan.checksum_step != kNoStep) {
      crc32 = (co_await next_piece(plan.checksum_step)).crc32;
      learn_crc(entry, crc32);
    }
    std::optional<ReadPiece> held;  // a small object read before its header
    if (plan.crc_from_data) {
      held = co_await next_piece(plan.data_step);
      if (!held->last) throw ZipError("a small object did not arrive in one piece");
      crc32 = held->crc32;
      learn_crc(entry, crc32);
    }
    // Entries whose header and CRC lie outside the window are written with a placeholder CRC:
    // none of their bytes are sent.
    zip_.add_entry(zip_entry_for(entry, crc32.value_or(0)), generated_);
    co_await out_.generated(generated_);
    out_.advance(plan.data_from);  // data before the window is neither read nor sent
    if (plan.data_step != kNoStep) {
      std::optional<ReadPiece> piece = held;
      for (;;) {
        if (!piece) piece = co_await next_piece(plan.data_step);
        if (piece->file >= 0) {
          co_await out_.file(piece->file, piece->file_offset, piece->file_length);
          out_.advance(piece->file_length);
          // sendfile sent the file as it is now: an object overwritten in place meanwhile
          // must abort the transfer, never end it as a complete-looking, corrupt ZIP.
          if (piece->last) stream_->check_sent(*piece);
        } else {
          co_await out_.data(piece->bytes);
          out_.advance(piece->bytes.size());
        }
        if (piece->last) break;
        piece.reset();
      }
      // A whole object read again: its CRC must still be the one in the header.
      if (piece->crc32 && crc32 && *piece->crc32 != *crc32) {
        throw ZipError("object '" + entry.key + "' changed while the archive was sent");
      }
      if (!crc32) learn_crc(entry, piece->crc32);
    }
    out_.advance(entry.size - plan.data_to);
    zip_.end_entry(crc32.value_or(0), entry.size, entry.size, generated_);
  }

  asio::awaitable<void> deflated_entry(std::size_t i) {
    const ManifestEntry& entry = manifest_.entries[i];
    zip_.add_entry(zip_entry_for(entry, 0), generated_);
    co_await out_.generated(generated_);
    if (!deflater_) deflater_ = std::make_unique<Deflater>();  // only archives that deflate
    Deflater& deflater = *deflater_;
    deflater.reset();
    std::optional<std::uint32_t> crc32 = entry.size == 0 ? std::optional<std::uint32_t>(0) : std::nullopt;
    if (plans_[i].data_step != kNoStep) {
      for (;;) {
        ReadPiece piece = co_await next_piece(plans_[i].data_step);
        deflater.add(piece.bytes, out_.buffer());
        co_await out_.flush_if_full();
        if (piece.last) {
          crc32 = piece.crc32;
          break;
        }
      }
    }
    deflater.finish(out_.buffer());
    out_.advance(deflater.bytes_out());
    if (!crc32) throw ZipError("no CRC-32 for '" + entry.key + "'");
    zip_.end_entry(*crc32, deflater.bytes_in(), deflater.bytes_out(), generated_);
    co_await out_.generated(generated_);
  }

  const ArchiveManifest& manifest_;
  const std::optional<ArchiveLayout>& layout_;
  CrcCache& crcs_;
  WindowWriter out_;
  std::vector<EntryPlan> plans_;
  std::unique_ptr<ObjectStream> stream_;
  ZipWriter zip_;
  ByteBuffer generated_;
  std::unique_ptr<Deflater> deflater_;
};

}  // namespace

ArchiveBudget archive_budget_for(std::size_t stream_buffer_bytes) {
  ArchiveBudget budget;
  budget.read_ahead.buffers = 2;
  budget.read_ahead.buffer_bytes = stream_buffer_bytes / 4;
  budget.flush_bytes = stream_buffer_bytes / 8;
  return budget;
}

asio::awaitable<std::uint64_t> stream_archive(const ArchiveManifest& manifest,
                                              const std::optional<ArchiveLayout>& layout,
                                              ByteWindow window, ObjectStore& store,
                                              CrcCache& crcs, ByteSink& sink,
                                              ArchiveBudget budget) {
  ArchiveRun run(manifest, layout, window, crcs, sink, budget);
  const std::uint64_t sent = co_await run.run(store, budget, window);
  co_await sink.finish();
  co_return sent;
}

}  // namespace sluice
