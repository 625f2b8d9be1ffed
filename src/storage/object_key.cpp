#include "storage/object_key.hpp"

#include "core/utf8.hpp"

namespace sluice {
namespace {

std::optional<std::string> segments_problem(std::string_view path) {
  std::size_t start = 0;
  while (start < path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment.empty()) return "has an empty path segment";
    if (segment == "." || segment == "..") return "has a '.' or '..' segment";
    if (segment.size() > kMaxKeySegmentBytes) {
      return "has a segment longer than " + std::to_string(kMaxKeySegmentBytes) + " bytes";
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> character_problem(std::string_view text) {
  if (text.size() > kMaxKeyBytes) {
    return "is longer than " + std::to_string(kMaxKeyBytes) + " bytes";
  }
  if (!valid_utf8(text)) return "is not valid UTF-8";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) return "contains a control character";
    if (c == '\\') return "contains a backslash";
  }
  if (!text.empty() && text.front() == '/') return "starts with '/'";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> key_problem(std::string_view key) {
  if (key.empty()) return "is empty";
  if (auto problem = character_problem(key)) return problem;
  if (key.back() == '/') return "ends with '/'";
  return segments_problem(key);
}

std::optional<std::string> prefix_problem(std::string_view prefix) {
  if (auto problem = character_problem(prefix)) return problem;
  // "album/" and "album/IMG_" are both prefixes; only the complete segments are checked.
  const std::size_t last_slash = prefix.rfind('/');
  if (last_slash == std::string_view::npos) return std::nullopt;
  return segments_problem(prefix.substr(0, last_slash));
}

bool is_reserved_key(std::string_view key) {
  return key == kReservedKeyPrefix.substr(0, kReservedKeyPrefix.size() - 1) ||
         key.substr(0, kReservedKeyPrefix.size()) == kReservedKeyPrefix;
}

}  // namespace sluice
