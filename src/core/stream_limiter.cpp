#include "core/stream_limiter.hpp"

#include <cassert>
#include <utility>

#include "core/api_error.hpp"

namespace sluice {

StreamLimiter::StreamLimiter(std::size_t max_streams)
    : max_streams_(max_streams),
      active_(metrics().gauge("sluice_active_streams",
                              "Streaming responses now (exports and archives), against max_streams.")),
      rejected_(metrics().counter("sluice_streams_rejected_total",
                                  "Streaming responses refused with 503 at max_streams.")) {}

StreamSlot StreamLimiter::acquire(const StreamCounters& counters) {
  // Count first, then check: two requests racing for the last slot cannot both get it.
  if (active_.add(1) > static_cast<std::int64_t>(max_streams_)) {
    active_.sub(1);
    rejected_.add();
    throw ApiError(503, "too_many_streams",
                   "the server is at its limit of " + std::to_string(max_streams_) +
                       " concurrent downloads");
  }
  if (counters.active != nullptr) counters.active->add(1);
  return StreamSlot(this, counters);
}

StreamSlot::StreamSlot(StreamSlot&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)),
      counters_(other.counters_),
      begun_(other.begun_),
      completed_(other.completed_) {}

StreamSlot::~StreamSlot() {
  if (limiter_ == nullptr) return;
  if (begun_ && !completed_) counters_->aborted.add();
  if (counters_->active != nullptr) counters_->active->sub(1);
  limiter_->active_.sub(1);
}

void StreamSlot::begin() {
  if (begun_) return;
  begun_ = true;
  counters_->started.add();
}

void StreamSlot::complete() {
  assert(begun_ && !completed_);
  completed_ = true;
  counters_->completed.add();
}

}  // namespace sluice
