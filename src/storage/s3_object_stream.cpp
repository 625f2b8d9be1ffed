#include "storage/s3_object_stream.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/channel.hpp"
#include "core/crc32.hpp"
#include "core/wake_signal.hpp"
#include "storage/s3_object_store.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

// One piece on its way to the consumer; `bytes` is a recycled buffer of the budget's size.
struct Chunk {
  std::string bytes;
  std::size_t size = 0;
  std::size_t step = 0;
  bool last = false;
  std::optional<std::uint32_t> crc32;
};

// The next step's GET, sent while the current step's body streams: its answer's head (and what
// TCP holds of its body) waits until the reader gets there, so an object's first-byte latency
// overlaps the previous object's transfer.
struct Prefetch {
  std::size_t step = 0;
  std::unique_ptr<S3Download> download;
  bool failed = false;  // the reader then asks again itself, and gets the error itself
  bool done = false;
  std::shared_ptr<WakeSignal> wake;
};

struct StreamState {
  std::shared_ptr<S3Client> client;
  std::vector<ReadStep> plan;
  ReadAheadBudget budget;
  std::shared_ptr<Channel<Chunk>> channel;
  std::shared_ptr<Prefetch> prefetch;  // at most one in flight
  // End the reader's and the prefetch's current waits (socket reads included). Here, not in the
  // stream: their operations hold the slots until they complete, after the stream may be gone.
  asio::cancellation_signal stop;
  asio::cancellation_signal stop_prefetch;
};

// The bytes a step reads: its range, or the whole object for a checksum-only step.
std::pair<std::uint64_t, std::uint64_t> initial_range(const ReadStep& step) {
  if (step.delivery != ReadStep::Delivery::kNone) return {step.offset, step.length};
  return {0, step.crc32 ? step.object.size : 0};
}

asio::awaitable<void> fetch(std::shared_ptr<StreamState> state, std::shared_ptr<Prefetch> next) {
  const ReadStep& step = state->plan[next->step];
  const std::pair<std::uint64_t, std::uint64_t> range = initial_range(step);
  next->download = co_await state->client->open_download(step.object.key, range.first, range.second,
                                                         step.object.etag);
}

// Sends the GET of the first step after `index` that reads bytes.
void start_prefetch(const std::shared_ptr<StreamState>& state, std::size_t index,
                    const asio::any_io_executor& executor) {
  std::size_t next = index + 1;
  while (next < state->plan.size() && initial_range(state->plan[next]).second == 0) ++next;
  if (next == state->plan.size()) return;
  auto prefetch = std::make_shared<Prefetch>();
  prefetch->step = next;
  prefetch->wake = std::make_shared<WakeSignal>(executor);
  state->prefetch = prefetch;
  asio::co_spawn(executor, fetch(state, prefetch),
                 asio::bind_cancellation_slot(state->stop_prefetch.slot(),
                                              [prefetch](const std::exception_ptr& error) {
                                                prefetch->failed = error != nullptr;
                                                prefetch->done = true;
                                                prefetch->wake->notify();
                                              }));
}

// The step's first answer: the prefetched one when there is one for it, else a new GET.
asio::awaitable<std::unique_ptr<S3Download>> first_download(StreamState& state, std::size_t index) {
  if (state.prefetch && state.prefetch->step == index) {
    std::shared_ptr<Prefetch> prefetch = std::move(state.prefetch);
    while (!prefetch->done) co_await prefetch->wake->wait();
    if (!prefetch->failed && prefetch->download) co_return std::move(prefetch->download);
  }
  const ReadStep& step = state.plan[index];
  const std::pair<std::uint64_t, std::uint64_t> range = initial_range(step);
  co_return co_await state.client->open_download(step.object.key, range.first, range.second,
                                                 step.object.etag);
}

[[noreturn]] void fail_changed(const ReadStep& step, const std::string& why) {
  throw StorageError(StorageError::Kind::kChanged,
                     "object '" + step.object.key + "' changed while it was read (" + why + ")");
}

// The answer must describe the planned object: the same size, and the same ETag (S3 checked
// If-Match) or, for a plan made without one, the same Last-Modified second.
void check_identity(const ReadStep& step, const S3ObjectHead& now) {
  if (now.size != step.object.size) fail_changed(step, "its size");
  if (!step.object.etag.empty() && now.etag != step.object.etag) fail_changed(step, "its ETag");
  if (step.object.etag.empty() &&
      s3_object_info(step.object.key, now).mtime_ns != step.object.mtime_ns) {
    fail_changed(step, "its modification time");
  }
}

Chunk take_chunk(StreamState& state, std::size_t step) {
  Chunk chunk = state.channel->take_spare().value_or(Chunk{});
  if (chunk.bytes.size() < state.budget.buffer_bytes) chunk.bytes.resize(state.budget.buffer_bytes);
  chunk.size = 0;
  chunk.step = step;
  chunk.last = false;
  chunk.crc32.reset();
  return chunk;
}

// Reads one step. Returns false when the consumer cancelled.
asio::awaitable<bool> read_step(const std::shared_ptr<StreamState>& owner, std::size_t index) {
  StreamState& state = *owner;
  const ReadStep& step = state.plan[index];
  const bool deliver = step.delivery != ReadStep::Delivery::kNone;
  // kNone with a checksum reads the whole object for it and delivers none of it.
  std::uint64_t offset = initial_range(step).first;
  std::uint64_t remaining = initial_range(step).second;
  bool first = true;
  std::uint32_t crc = 0;
  Chunk chunk = take_chunk(state, index);
  // Breaks in a row without a byte between them: a body that keeps breaking after progress
  // (a slow consumer, an endpoint that drops long transfers) is resumed as often as it takes.
  int breaks = 0;
  while (remaining > 0) {
    std::unique_ptr<S3Download> body;
    if (first) {
      body = co_await first_download(state, index);
    } else {
      body = co_await state.client->open_download(step.object.key, offset, remaining,
                                                  step.object.etag);
    }
    if (!body) {
      throw StorageError(StorageError::Kind::kGone, "object '" + step.object.key + "' is gone");
    }
    check_identity(step, body->object());
    if (first && !state.prefetch) {
      const asio::any_io_executor executor = co_await asio::this_coro::executor;
      start_prefetch(owner, index, executor);
    }
    first = false;
    bool broke = false;
    while (remaining > 0 && !broke) {
      if (deliver && chunk.size == 0 && !co_await state.channel->wait_for_space()) co_return false;
      const std::size_t want = step.delivery == ReadStep::Delivery::kOneBuffer
                                   ? static_cast<std::size_t>(step.length)
                                   : static_cast<std::size_t>(std::min<std::uint64_t>(
                                         state.budget.buffer_bytes, chunk.size + remaining));
      if (chunk.bytes.size() < want) chunk.bytes.resize(want);
      std::size_t got = 0;
      try {
        got =
            co_await body->read_some(std::span(chunk.bytes).subspan(chunk.size, want - chunk.size));
        if (got == 0) throw S3Error(0, "ConnectionLost", "the body ended early");
      } catch (const S3Error&) {
        if (state.channel->cancelled()) co_return false;
        if (++breaks >= state.client->max_attempts()) throw;
        broke = true;  // asked for again from `offset`, below
      }
      if (broke) break;
      breaks = 0;
      if (step.crc32)
        crc = crc32_update(crc, std::string_view(chunk.bytes.data() + chunk.size, got));
      chunk.size += got;
      offset += got;
      remaining -= got;
      if (chunk.size < want) continue;
      if (!deliver) {
        chunk.size = 0;
        continue;
      }
      chunk.last = remaining == 0;
      if (chunk.last && step.crc32) chunk.crc32 = crc;
      const std::size_t counted = state.budget.buffer_bytes;
      state.channel->push(std::move(chunk), counted);
      chunk = take_chunk(state, index);
    }
  }
  if (deliver && step.length > 0) co_return true;
  // An empty range, or a checksum only: one empty piece.
  if (!co_await state.channel->wait_for_space()) co_return false;
  chunk.last = true;
  if (step.crc32) chunk.crc32 = crc;
  state.channel->push(std::move(chunk), state.budget.buffer_bytes);
  co_return true;
}

asio::awaitable<void> produce(std::shared_ptr<StreamState> state) {
  try {
    for (std::size_t i = 0; i < state->plan.size(); ++i) {
      if (!co_await read_step(state, i)) co_return;
    }
    state->channel->close();
  } catch (const S3Error& error) {
    state->channel->fail(std::make_exception_ptr(storage_error_of(error)));
  } catch (const StorageError&) {
    state->channel->fail(std::current_exception());
  } catch (const std::exception& error) {
    state->channel->fail(std::make_exception_ptr(
        StorageError(StorageError::Kind::kIo, std::string("S3 read: ") + error.what())));
  }
}

class S3ObjectStream final : public ObjectStream {
 public:
  S3ObjectStream(std::shared_ptr<StreamState> state, const asio::any_io_executor& executor)
      : state_(std::move(state)) {
    // The completion handler keeps the state (and its signal) until the reader has ended.
    asio::co_spawn(executor, produce(state_),
                   asio::bind_cancellation_slot(state_->stop.slot(),
                                                [state = state_](const std::exception_ptr&) {}));
  }
  ~S3ObjectStream() override { cancel(); }

  asio::awaitable<std::optional<ReadPiece>> next() override {
    Chunk* chunk = co_await state_->channel->next();
    if (chunk == nullptr) co_return std::nullopt;
    ReadPiece piece;
    piece.step = chunk->step;
    piece.bytes = std::string_view(chunk->bytes.data(), chunk->size);
    piece.crc32 = chunk->crc32;
    piece.last = chunk->last;
    co_return piece;
  }

  void cancel() noexcept override {
    if (cancelled_) return;
    cancelled_ = true;
    state_->channel->cancel();
    state_->stop.emit(asio::cancellation_type::terminal);  // ends a socket read at once
    state_->stop_prefetch.emit(asio::cancellation_type::terminal);
  }

 private:
  std::shared_ptr<StreamState> state_;
  bool cancelled_ = false;
};

}  // namespace

std::unique_ptr<ObjectStream> make_s3_object_stream(std::shared_ptr<S3Client> client,
                                                    std::vector<ReadStep> plan,
                                                    ReadAheadBudget budget,
                                                    const asio::any_io_executor& executor) {
  auto state = std::make_shared<StreamState>();
  state->client = std::move(client);
  state->plan = std::move(plan);
  state->budget = budget;
  state->channel = std::make_shared<Channel<Chunk>>(executor, budget.buffers * budget.buffer_bytes);
  return std::make_unique<S3ObjectStream>(std::move(state), executor);
}

}  // namespace sluice
