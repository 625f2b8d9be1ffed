#include "features/archives/byte_range.hpp"

#include <charconv>
#include <optional>

namespace sluice {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::optional<std::uint64_t> number(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

RangeDecision decide_range(std::string_view range, std::string_view if_range,
                           std::string_view etag, std::uint64_t length) {
  const RangeDecision full{RangeDecision::Outcome::kFull, {0, length}};
  const RangeDecision unsatisfiable{RangeDecision::Outcome::kUnsatisfiable, {0, length}};
  range = trim(range);
  if (range.empty()) return full;
  if_range = trim(if_range);
  if (!if_range.empty() && if_range != etag) return full;
  constexpr std::string_view kUnit = "bytes=";
  if (range.substr(0, kUnit.size()) != kUnit) return full;
  const std::string_view spec = trim(range.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return full;
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return full;
  const std::string_view first_text = trim(spec.substr(0, dash));
  const std::string_view last_text = trim(spec.substr(dash + 1));
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
    if (!last || *last < *first) return full;
    end = *last + 1 < length ? *last + 1 : length;
  }
  if (*first >= length) return unsatisfiable;
  return {RangeDecision::Outcome::kPartial, {*first, end}};
}

}  // namespace sluice
