#include "app/export_progress.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace sluice {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ExportProgressTest, LineHasRowsBytesRateAndElapsed) {
  EXPECT_EQ(progress_line(1234567, 98'800'000, seconds(2)),
            "1,234,567 rows  98.8 MB  49.4 MB/s  0:02");
  EXPECT_EQ(progress_line(0, 0, milliseconds(0)), "0 rows  0 B  0 B/s  0:00");
  EXPECT_EQ(progress_line(999, 512, seconds(3725)), "999 rows  512 B  0 B/s  1:02:05");
  EXPECT_EQ(human_bytes(1'500'000'000), "1.5 GB");
  EXPECT_EQ(human_bytes(1000), "1.0 kB");
}

// What a terminal would get: nothing before the first interval, then at most one drawing per
// interval, each starting with CR and ending with erase-to-end-of-line; clear() erases it.
TEST(ExportProgressTest, RedrawsAtMostEveryIntervalAndClears) {
  char* buffer = nullptr;
  std::size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  ASSERT_NE(out, nullptr);
  {
    ExportProgress progress(out);
    const auto start = ExportProgress::Clock::now();
    progress.update(1, 10, start);  // before one interval: nothing
    std::fflush(out);
    EXPECT_EQ(size, 0u);
    for (int ms = 300; ms < 1300; ms += 50) progress.update(ms, ms, start + milliseconds(ms));
    std::fflush(out);
    const std::string drawn(buffer, size);
    std::size_t drawings = 0;
    for (std::size_t at = drawn.find('\r'); at != std::string::npos; at = drawn.find('\r', at + 1)) {
      ++drawings;
    }
    EXPECT_EQ(drawings, 4u);  // at 300, 550, 800 and 1050 ms of updates every 50 ms
    EXPECT_TRUE(drawn.ends_with("\x1b[K"));
    progress.clear();
    progress.clear();  // once only
  }
  std::fclose(out);
  const std::string all(buffer, size);
  std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): open_memstream's buffer
  EXPECT_TRUE(all.ends_with("\x1b[K\r\x1b[K")) << all;
}

}  // namespace
}  // namespace sluice
