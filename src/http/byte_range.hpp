#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

// [start, end) of a body.
struct ByteWindow {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t size() const { return end - start; }
};

struct RangeDecision {
  enum class Outcome { kFull, kPartial, kUnsatisfiable };
  Outcome outcome = Outcome::kFull;
  ByteWindow window;  // the bytes to send (all of them for kFull)
};

// What to answer for `range` (the Range header, "" when absent) and `if_range` (If-Range)
// on a body of `length` bytes whose strong ETag is `etag` (RFC 9110 §14):
// - no Range, an If-Range that is not exactly `etag` (a date or another tag), a malformed
//   Range, a unit other than bytes, or several ranges → kFull (the server may ignore Range);
// - "bytes=a-b", "bytes=a-", "bytes=-n" → kPartial, clamped to the body;
// - a first byte at or past the end, or "bytes=-0" → kUnsatisfiable (416).
// Thread-safe.
RangeDecision decide_range(std::string_view range, std::string_view if_range,
                           std::string_view etag, std::uint64_t length);

}  // namespace sluice
