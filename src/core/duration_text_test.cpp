#include "core/duration_text.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(DurationTextTest, UnitsGiveSeconds) {
  EXPECT_EQ(parse_duration_text("90s"), 90);
  EXPECT_EQ(parse_duration_text("30m"), 1'800);
  EXPECT_EQ(parse_duration_text("24h"), 86'400);
  EXPECT_EQ(parse_duration_text("7d"), 7 * 86'400);
  EXPECT_EQ(parse_duration_text("0s"), 0);  // the caller's bounds decide
}

TEST(DurationTextTest, AnythingElseIsRefused) {
  for (const char* text : {"", "s", "24", "24H", "1.5h", "-1h", "+1h", " 1h", "1 h", "1w", "h1",
                           "99999999999999999999d", "106751991167301d"}) {
    EXPECT_FALSE(parse_duration_text(text).has_value()) << text;
  }
  EXPECT_EQ(parse_duration_text("106751991167300d"), 106751991167300LL * 86'400);  // fits
}

}  // namespace
}  // namespace sluice
