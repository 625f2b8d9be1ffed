#include "storage/s3_object_writer.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

constexpr std::uint64_t kMiB = 1ULL << 20;

TEST(S3PartSize, GrowsEveryThousandPartsFromEightMiB) {
  EXPECT_EQ(s3_part_size(1), 8 * kMiB);
  EXPECT_EQ(s3_part_size(1000), 8 * kMiB);
  EXPECT_EQ(s3_part_size(1001), 16 * kMiB);
  EXPECT_EQ(s3_part_size(2001), 32 * kMiB);
  EXPECT_EQ(s3_part_size(9001), 4096 * kMiB);
}

TEST(S3PartSize, TenThousandPartsHoldFiveTerabytesWithinS3sPartLimits) {
  std::uint64_t total = 0;
  for (int part = 1; part <= 10000; ++part) {
    const std::uint64_t size = s3_part_size(part);
    EXPECT_GE(size, 5 * kMiB) << "part " << part;    // S3's minimum for all but the last part
    EXPECT_LE(size, 5ULL << 30) << "part " << part;  // S3's maximum
    EXPECT_GE(size, s3_part_size(part - 1 > 0 ? part - 1 : 1)) << "part " << part;
    total += size;
  }
  EXPECT_GT(total, 5'000'000'000'000ULL);  // S3's largest object: 5 TB
}

}  // namespace
}  // namespace sluice
