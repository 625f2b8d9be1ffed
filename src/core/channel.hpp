#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/wake_signal.hpp"

namespace sluice {

// Items from one producer to one consumer, bounded in bytes: the producer may push while the
// bytes pushed and not yet released by the consumer are below the capacity (so a push overshoots
// it by one item at most), and the consumer releases an item by asking for the next one. The
// released items come back to the producer as spares to fill again (row batches, read buffers):
// no allocation per item once a stream is warm.
//
// The producer is a job on a blocking pool or a coroutine on any executor. A pool job must not
// block its thread: when there is no space it registers when_space() to be posted again, and
// returns. A coroutine awaits wait_for_space(). The consumer is one coroutine, on the executor
// given at construction, which must be a strand or a single-threaded context.
//
// Either end stops it: the producer with close() (the end) or fail() (an error the consumer
// gets after the queued items), the consumer with cancel() (the producer sees cancelled(), and
// items still queued or pushed later are dropped through the `discard` hook).
//
// Thread-safe as described; create with std::make_shared (pending wake-ups keep it alive).
template <typename T>
class Channel : public std::enable_shared_from_this<Channel<T>> {
 public:
  // `discard` (optional) sees every item dropped after cancel(), e.g. to count its rows.
  Channel(const boost::asio::any_io_executor& consumer, std::size_t capacity_bytes,
          std::function<void(T&)> discard = {})
      : capacity_(capacity_bytes),
        discard_(std::move(discard)),
        wake_consumer_(std::make_shared<WakeSignal>(consumer)) {}

  // ---- Producer side (one producer at a time; any thread) ----

  // True when a push() now stays within the capacity.
  bool has_space() const {
    std::lock_guard lock(mutex_);
    return space_locked();
  }
  // Arranges for `resume` to run once, from whichever thread frees space (the consumer's) or
  // cancels, and returns true; or returns false, without keeping `resume`, when there is space
  // or the channel is cancelled already. A pool job re-posts itself from `resume`.
  bool when_space(std::function<void()> resume) {
    std::lock_guard lock(mutex_);
    if (space_locked() || cancelled_) return false;
    on_space_ = std::move(resume);
    return true;
  }
  // For a coroutine producer: completes when there is space (true) or the channel was
  // cancelled (false).
  boost::asio::awaitable<bool> wait_for_space() {
    std::shared_ptr<WakeSignal> wake;
    for (;;) {
      if (cancelled()) co_return false;
      if (!wake) wake = std::make_shared<WakeSignal>(co_await boost::asio::this_coro::executor);
      if (!when_space([wake] { wake->notify(); })) {
        if (cancelled()) co_return false;
        co_return true;
      }
      co_await wake->wait();
    }
  }
  // An item the consumer released, to fill again; nothing when none is spare.
  std::optional<T> take_spare() {
    std::lock_guard lock(mutex_);
    if (spares_.empty()) return std::nullopt;
    std::optional<T> spare(std::move(spares_.back()));
    spares_.pop_back();
    return spare;
  }
  // Hands `item`, counted as `bytes`, to the consumer. After cancel() it is dropped instead.
  void push(T item, std::size_t bytes) {
    {
      std::unique_lock lock(mutex_);
      if (!cancelled_ && !closed_) {
        queue_.push_back(Entry{std::move(item), bytes});
        bytes_ += bytes;
        lock.unlock();
        wake_consumer_->notify();
        return;
      }
    }
    if (discard_) discard_(item);
  }
  // The end: the consumer gets nullptr after the queued items.
  void close() { finish(nullptr); }
  // An error: the consumer gets the queued items, then `error` is rethrown, by every next().
  void fail(std::exception_ptr error) { finish(std::move(error)); }
  bool cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }

  // ---- Consumer side (one coroutine on the consumer executor) ----

  // The next item, valid until the following next() or cancel(), or nullptr after close().
  // Rethrows the producer's failure, or the reason given to cancel(), once the queue is empty.
  boost::asio::awaitable<T*> next() {
    for (;;) {
      std::function<void()> resume;
      T* item = nullptr;
      bool ended = false;
      {
        std::lock_guard lock(mutex_);
        resume = release_locked();
        if (!queue_.empty()) {
          held_.emplace(std::move(queue_.front()));
          queue_.pop_front();
          item = &held_->item;
        } else if (closed_ || cancelled_) {
          if (error_) std::rethrow_exception(error_);
          ended = true;
        }
      }
      if (resume) resume();
      if (item != nullptr) co_return item;
      if (ended) co_return nullptr;
      co_await wake_consumer_->wait();
    }
  }
  // True when next() completes without waiting for the producer.
  bool ready() const {
    std::lock_guard lock(mutex_);
    return !queue_.empty() || closed_ || cancelled_;
  }
  // Stops the stream from the consumer's end: the producer's has_space() wait ends and it sees
  // cancelled(); queued items are dropped (through `discard`); next() rethrows `reason` (or
  // returns nullptr without one). Idempotent; callable from any thread.
  void cancel(std::exception_ptr reason = nullptr) {
    std::function<void()> resume;
    std::deque<Entry> dropped;
    {
      std::lock_guard lock(mutex_);
      if (cancelled_) return;
      cancelled_ = true;
      if (!closed_ || !error_) error_ = std::move(reason);
      dropped.swap(queue_);
      for (const Entry& entry : dropped) bytes_ -= entry.bytes;
      resume = std::move(on_space_);
      on_space_ = nullptr;
    }
    if (discard_) {
      for (Entry& entry : dropped) discard_(entry.item);
    }
    if (resume) resume();
    wake_consumer_->notify();
  }

 private:
  struct Entry {
    T item;
    std::size_t bytes;
  };

  bool space_locked() const { return bytes_ < capacity_; }

  // Takes back the item the consumer held; the producer's resume callback when that made space.
  std::function<void()> release_locked() {
    if (!held_) return nullptr;
    bytes_ -= held_->bytes;
    spares_.push_back(std::move(held_->item));
    held_.reset();
    if (!space_locked() || !on_space_) return nullptr;
    std::function<void()> resume = std::move(on_space_);
    on_space_ = nullptr;
    return resume;
  }

  void finish(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      if (closed_ || cancelled_) return;
      closed_ = true;
      error_ = std::move(error);
    }
    wake_consumer_->notify();
  }

  const std::size_t capacity_;
  const std::function<void(T&)> discard_;
  const std::shared_ptr<WakeSignal> wake_consumer_;

  mutable std::mutex mutex_;  // guards everything below
  std::deque<Entry> queue_;
  std::optional<Entry> held_;  // the item the consumer has
  std::vector<T> spares_;
  std::size_t bytes_ = 0;      // of queue_ and held_
  std::function<void()> on_space_;
  bool closed_ = false;
  bool cancelled_ = false;
  std::exception_ptr error_;
};

}  // namespace sluice
