#pragma once

#include <cstddef>
#include <string>

#include "core/metrics.hpp"

namespace sluice {

// The outcome counters of one feature's streams (exports, archives, ...): every stream that
// starts (its response headers went out) ends as exactly one of completed or aborted.
struct StreamCounters {
  Counter& started;
  Counter& completed;
  Counter& aborted;
  Gauge* active = nullptr;  // the feature's own streams now (optional)
};

class StreamLimiter;

// One admitted streaming response. Counts in the limiter's active streams from admission until
// destruction; in its feature's counters from begin() on: complete() marks a body that ended
// whole, and a slot destroyed after begin() without complete() counts as aborted. A response that
// never began (an error status, a HEAD request, a 416) counts in none of them.
// Not thread-safe; movable.
class StreamSlot {
 public:
  StreamSlot(StreamSlot&& other) noexcept;
  StreamSlot& operator=(StreamSlot&&) = delete;
  StreamSlot(const StreamSlot&) = delete;
  ~StreamSlot();

  // The body starts (call once its headers went out).
  void begin();
  // The body ended complete. REQUIRES: begin() was called.
  void complete();

 private:
  friend class StreamLimiter;
  StreamSlot(StreamLimiter* limiter, const StreamCounters& counters)
      : limiter_(limiter), counters_(&counters) {}

  StreamLimiter* limiter_;  // null once moved from
  const StreamCounters* counters_;
  bool begun_ = false;
  bool completed_ = false;
};

// The one admission limit for every streaming response: exports, archives, and later file
// downloads and job uploads all count against the same `max_streams`; beyond it the answer is
// 503 `too_many_streams` with Retry-After, before any work starts.
// Thread-safe.
class StreamLimiter {
 public:
  explicit StreamLimiter(std::size_t max_streams);

  // A slot for one streaming response of the feature that counts in `counters` (which must
  // outlive the slot). Throws ApiError(503, "too_many_streams") when max_streams are running.
  StreamSlot acquire(const StreamCounters& counters);
  std::size_t max_streams() const { return max_streams_; }
  std::int64_t active() const { return active_.value(); }

 private:
  friend class StreamSlot;
  std::size_t max_streams_;
  Gauge& active_;
  Counter& rejected_;
};

}  // namespace sluice
