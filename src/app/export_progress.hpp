#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace sluice {

// The figures of a running export as one line: "1,234,567 rows  98.7 MB  45.2 MB/s  0:02".
std::string progress_line(std::uint64_t rows, std::uint64_t bytes,
                          std::chrono::steady_clock::duration elapsed);

// "98.7 MB", "512 B", "1.2 GB" (decimal units, as in rates).
std::string human_bytes(std::uint64_t bytes);

// `sluice export`'s progress on a terminal: the line above, redrawn in place (CR, erase to the
// end of the line) at most every `interval`, and erased before the final summary. Silent when
// `out` is null (not a terminal, or --quiet). Not thread-safe; `out` outlives it.
class ExportProgress {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kInterval{250};

  explicit ExportProgress(std::FILE* out) : out_(out), started_(Clock::now()), drawn_(started_) {}

  // Called often (every write of the export); draws when the interval has passed since the
  // last drawing.
  void update(std::uint64_t rows, std::uint64_t bytes, Clock::time_point now = Clock::now());
  // Erases the progress line if one was drawn (before the summary or an error message).
  void clear();
  Clock::duration elapsed(Clock::time_point now = Clock::now()) const { return now - started_; }

 private:
  std::FILE* out_;
  Clock::time_point started_;
  Clock::time_point drawn_;  // the first drawing after one interval: short exports show none
  bool visible_ = false;
};

}  // namespace sluice
