#include "http/conditional.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

constexpr std::string_view kStrong = "\"a-ff\"";
constexpr std::string_view kWeak = "W/\"a-ff\"";

TEST(ConditionalTest, WeakComparisonIgnoresTheWeakMark) {
  EXPECT_TRUE(etag_matches("\"a-ff\"", kStrong, TagComparison::kWeak));
  EXPECT_TRUE(etag_matches("W/\"a-ff\"", kStrong, TagComparison::kWeak));
  EXPECT_TRUE(etag_matches("\"a-ff\"", kWeak, TagComparison::kWeak));
  EXPECT_TRUE(etag_matches("\"x\", \"a-ff\"", kStrong, TagComparison::kWeak));
  EXPECT_TRUE(etag_matches("\"x\",W/\"a-ff\" ", kStrong, TagComparison::kWeak));
  EXPECT_TRUE(etag_matches(" * ", kStrong, TagComparison::kWeak));
  EXPECT_FALSE(etag_matches("\"a-fe\"", kStrong, TagComparison::kWeak));
  EXPECT_FALSE(etag_matches("a-ff", kStrong, TagComparison::kWeak));  // not quoted
  EXPECT_FALSE(etag_matches("\"a-ff", kStrong, TagComparison::kWeak));
  EXPECT_FALSE(etag_matches("", kStrong, TagComparison::kWeak));
  EXPECT_FALSE(etag_matches(",,", kStrong, TagComparison::kWeak));
}

TEST(ConditionalTest, StrongComparisonNeedsTwoStrongTags) {
  EXPECT_TRUE(etag_matches("\"a-ff\"", kStrong, TagComparison::kStrong));
  EXPECT_TRUE(etag_matches("\"b\", \"a-ff\"", kStrong, TagComparison::kStrong));
  EXPECT_FALSE(etag_matches("W/\"a-ff\"", kStrong, TagComparison::kStrong));
  EXPECT_FALSE(etag_matches("\"a-ff\"", kWeak, TagComparison::kStrong));
  EXPECT_FALSE(etag_matches("W/\"a-ff\"", kWeak, TagComparison::kStrong));
  EXPECT_TRUE(etag_matches("*", kWeak, TagComparison::kStrong));  // "*": any representation
  EXPECT_FALSE(etag_matches("*", "", TagComparison::kStrong));    // none
}

TEST(ConditionalTest, PreconditionsInTheOrderOfRfc9110) {
  EXPECT_EQ(evaluate_preconditions("", "", kStrong), Precondition::kProceed);
  EXPECT_EQ(evaluate_preconditions("", "\"old\"", kStrong), Precondition::kProceed);
  EXPECT_EQ(evaluate_preconditions("", "W/\"a-ff\"", kStrong), Precondition::kNotModified);
  EXPECT_EQ(evaluate_preconditions("", "*", kStrong), Precondition::kNotModified);
  EXPECT_EQ(evaluate_preconditions("\"a-ff\"", "", kStrong), Precondition::kProceed);
  EXPECT_EQ(evaluate_preconditions("*", "", kStrong), Precondition::kProceed);
  EXPECT_EQ(evaluate_preconditions("\"old\"", "", kStrong), Precondition::kFailed);
  EXPECT_EQ(evaluate_preconditions("W/\"a-ff\"", "", kStrong), Precondition::kFailed);
  // If-Match is evaluated first: a failing one wins over a matching If-None-Match.
  EXPECT_EQ(evaluate_preconditions("\"old\"", "\"a-ff\"", kStrong), Precondition::kFailed);
  EXPECT_EQ(evaluate_preconditions("\"a-ff\"", "\"a-ff\"", kStrong), Precondition::kNotModified);
}

}  // namespace
}  // namespace sluice
