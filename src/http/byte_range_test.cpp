#include "http/byte_range.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

using Outcome = RangeDecision::Outcome;

void expect(std::string_view range, Outcome outcome, std::uint64_t start = 0,
            std::uint64_t end = 1000, std::string_view if_range = "") {
  RangeDecision decision = decide_range(range, if_range, "\"tag\"", 1000);
  EXPECT_EQ(decision.outcome, outcome) << range;
  if (outcome != Outcome::kUnsatisfiable) {
    EXPECT_EQ(decision.window.start, start) << range;
    EXPECT_EQ(decision.window.end, end) << range;
  }
}

TEST(ByteRangeTest, SingleRanges) {
  expect("", Outcome::kFull);
  expect("bytes=0-99", Outcome::kPartial, 0, 100);
  expect("bytes=900-", Outcome::kPartial, 900, 1000);
  expect("bytes=900-5000", Outcome::kPartial, 900, 1000);
  expect("bytes=-10", Outcome::kPartial, 990, 1000);
  expect("bytes=-5000", Outcome::kPartial, 0, 1000);
  expect("bytes = 5-5", Outcome::kFull);  // not the syntax: ignored
  expect("bytes=5-5", Outcome::kPartial, 5, 6);
}

TEST(ByteRangeTest, UnsatisfiableAndIgnored) {
  expect("bytes=1000-", Outcome::kUnsatisfiable);
  expect("bytes=-0", Outcome::kUnsatisfiable);
  expect("bytes=10-5", Outcome::kFull);
  expect("bytes=0-1,5-6", Outcome::kFull);
  expect("items=0-1", Outcome::kFull);
  expect("bytes=abc", Outcome::kFull);
}

// RFC 9110 14.1: any number of digits (a last position past the end is clamped, a first one
// past it is unsatisfiable), and the unit is case-insensitive.
TEST(ByteRangeTest, HugePositionsAndTheUnitsCase) {
  expect("bytes=0-18446744073709551615", Outcome::kPartial, 0, 1000);
  expect("bytes=0-99999999999999999999999", Outcome::kPartial, 0, 1000);
  expect("bytes=10-00000000000000000000000000020", Outcome::kPartial, 10, 21);
  expect("bytes=99999999999999999999-", Outcome::kUnsatisfiable);
  expect("bytes=-99999999999999999999", Outcome::kPartial, 0, 1000);
  expect("BYTES=0-9", Outcome::kPartial, 0, 10);
  expect("Bytes=990-", Outcome::kPartial, 990, 1000);
  expect("bytes=0-9x", Outcome::kFull);
  expect("bytes=+0-9", Outcome::kFull);
}

// Found by fuzz/fuzz_range: both positions beyond 2^64 - 1 clamp to the same value, but a last
// position below the first one is still an invalid range, ignored (200), not a 416.
TEST(ByteRangeTest, HugeLastBelowHugeFirstIsIgnored) {
  expect("bytes=99999999999999999999-99999999999999999998", Outcome::kFull);
  expect("bytes=184467449937099551551614-99999999999999999999999", Outcome::kFull);
  expect("bytes=99999999999999999999-000099999999999999999999", Outcome::kUnsatisfiable);
  expect("bytes=99999999999999999998-99999999999999999999", Outcome::kUnsatisfiable);
  expect("bytes=5-0000000000000000000000000004", Outcome::kFull);
}

TEST(ByteRangeTest, IfRangeMustMatchTheStrongTag) {
  expect("bytes=0-9", Outcome::kPartial, 0, 10, "\"tag\"");
  expect("bytes=0-9", Outcome::kFull, 0, 1000, "\"other\"");
  expect("bytes=0-9", Outcome::kFull, 0, 1000, "W/\"tag\"");
  expect("bytes=0-9", Outcome::kFull, 0, 1000, "Sat, 01 Jan 2022 00:00:00 GMT");
}

}  // namespace
}  // namespace sluice
