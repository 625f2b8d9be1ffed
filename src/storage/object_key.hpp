#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// Object keys are '/'-separated paths relative to the store's root: "album/2024/IMG_0001.jpg".
// The same rules hold for every store (local folder, S3), so a key valid in one is valid in all.
inline constexpr std::size_t kMaxKeyBytes = 1024;      // S3's limit
inline constexpr std::size_t kMaxKeySegmentBytes = 255;  // a file name on Linux filesystems
// Keys under this prefix belong to Sluice (archive manifests, ...): clients cannot address them
// and listings leave them out.
inline constexpr std::string_view kReservedKeyPrefix = ".sluice/";

// Why `key` is not a valid object key, or nothing when it is. Rejected: empty, longer than
// kMaxKeyBytes, not UTF-8, a NUL or other control character, a backslash, a leading '/',
// empty segments ("a//b", trailing '/'), "." or ".." segments, a segment over
// kMaxKeySegmentBytes. Thread-safe.
std::optional<std::string> key_problem(std::string_view key);

// Same rules for a listing prefix, except that it may be empty (everything) or end with '/'.
std::optional<std::string> prefix_problem(std::string_view prefix);

// True for keys under kReservedKeyPrefix (and ".sluice" itself).
bool is_reserved_key(std::string_view key);

}  // namespace sluice
