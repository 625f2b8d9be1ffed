#include "storage/object_key.hpp"

namespace sluice {
namespace {

// Length of the UTF-8 sequence at text[i], or 0 when it is malformed.
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

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
  if (!is_valid_utf8(text)) return "is not valid UTF-8";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) return "contains a control character";
    if (c == '\\') return "contains a backslash";
  }
  if (!text.empty() && text.front() == '/') return "starts with '/'";
  return std::nullopt;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = utf8_sequence(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

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
