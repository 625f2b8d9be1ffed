#include "http/byte_range.hpp"

#include <limits>
#include <optional>

#include "http/field_value.hpp"

namespace sluice {
namespace {

// A position: one or more digits. RFC 9110 sets no limit on their count; a value beyond 64 bits
// is as good as the largest (a last position past the end is clamped to it, a first one makes
// the range unsatisfiable).
std::optional<std::uint64_t> number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
      value = std::numeric_limits<std::uint64_t>::max();
    } else {
      value = value * 10 + digit;
    }
  }
  return value;
}

// Whether the position `a` is below `b` (both 1*DIGIT), compared exactly however many digits
// they have: two positions past 2^64 - 1 both clamp to it, yet a last one below the first still
// makes the range invalid.
bool position_below(std::string_view a, std::string_view b) {
  auto significant = [](std::string_view digits) {
    const std::size_t first = digits.find_first_not_of('0');
    return first == std::string_view::npos ? std::string_view() : digits.substr(first);
  };
  a = significant(a);
  b = significant(b);
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

// The range unit is case-insensitive (RFC 9110 14.1): "bytes=", "BYTES=", "Bytes=".
bool starts_with_bytes_unit(std::string_view range) {
  constexpr std::string_view kUnit = "bytes=";
  if (range.size() < kUnit.size()) return false;
  for (std::size_t i = 0; i < kUnit.size(); ++i) {
    const char c = range[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kUnit[i]) return false;
  }
  return true;
}

}  // namespace

RangeDecision decide_range(std::string_view range, std::string_view if_range,
                           std::string_view etag, std::uint64_t length) {
  const RangeDecision full{RangeDecision::Outcome::kFull, {0, length}};
  const RangeDecision unsatisfiable{RangeDecision::Outcome::kUnsatisfiable, {0, length}};
  range = trim_ows(range);
  if (range.empty()) return full;
  if_range = trim_ows(if_range);
  if (!if_range.empty() && if_range != etag) return full;
  if (!starts_with_bytes_unit(range)) return full;
  const std::string_view spec = trim_ows(range.substr(std::string_view("bytes=").size()));
  if (spec.find(',') != std::string_view::npos) return full;
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return full;
  const std::string_view first_text = trim_ows(spec.substr(0, dash));
  const std::string_view last_text = trim_ows(spec.substr(dash + 1));
  if (first_text.empty()) {  // suffix: the last n bytes
    const auto suffix = number(last_text);
    if (!suffix) return full;
    if (*suffix == 0 || length == 0) return unsatisfiable;
    const std::uint64_t take = *suffix < length ? *suffix : length;
    return {RangeDecision::Outcome::kPartial, {length - take, length}};
  }
  const auto first = number(first_text);
  if (!first) return full;
  std::uint64_t end = length;
  if (!last_text.empty()) {
    const auto last = number(last_text);
    if (!last || position_below(last_text, first_text)) return full;  // invalid: ignored
    end = length > 0 && *last < length - 1 ? *last + 1 : length;  // (no overflow at 2^64 - 1)
  }
  if (*first >= length) return unsatisfiable;
  return {RangeDecision::Outcome::kPartial, {*first, end}};
}

}  // namespace sluice
