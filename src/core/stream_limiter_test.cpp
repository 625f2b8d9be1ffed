#include "core/stream_limiter.hpp"

#include <gtest/gtest.h>

#include <optional>

#include "core/api_error.hpp"

namespace sluice {
namespace {

struct Counters {
  Counter started;
  Counter completed;
  Counter aborted;
  Gauge active;
  StreamCounters view{started, completed, aborted, &active};
};

TEST(StreamLimiterTest, OneLimitAcrossFeatures) {
  StreamLimiter limiter(2);
  Counters exports;
  Counters archives;
  const std::int64_t before = limiter.active();
  std::optional<StreamSlot> a(limiter.acquire(exports.view));
  std::optional<StreamSlot> b(limiter.acquire(archives.view));
  EXPECT_EQ(limiter.active() - before, 2);
  try {
    limiter.acquire(exports.view);
    ADD_FAILURE() << "a third stream was admitted";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.status(), 503);
    EXPECT_EQ(error.code(), "too_many_streams");
  }
  EXPECT_EQ(limiter.active() - before, 2);
  a.reset();
  std::optional<StreamSlot> c(limiter.acquire(archives.view));
  EXPECT_EQ(archives.active.value(), 2);
}

TEST(StreamLimiterTest, EveryStartedStreamEndsCompletedOrAborted) {
  StreamLimiter limiter(10);
  Counters counters;
  { StreamSlot never_began = limiter.acquire(counters.view); }  // an error status, HEAD, 416
  {
    StreamSlot whole = limiter.acquire(counters.view);
    whole.begin();
    whole.complete();
  }
  {
    StreamSlot cut = limiter.acquire(counters.view);
    cut.begin();
  }
  {
    StreamSlot moved_from = limiter.acquire(counters.view);
    moved_from.begin();
    StreamSlot moved(std::move(moved_from));
    moved.complete();
  }
  EXPECT_EQ(counters.started.value(), 3u);
  EXPECT_EQ(counters.completed.value(), 2u);
  EXPECT_EQ(counters.aborted.value(), 1u);
  EXPECT_EQ(counters.active.value(), 0);
}

}  // namespace
}  // namespace sluice
