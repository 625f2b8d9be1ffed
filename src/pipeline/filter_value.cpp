#include "pipeline/filter_value.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/utf8.hpp"

namespace sluice {
namespace {

constexpr std::size_t kMaxTextBytes = 4096;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool digits(std::string_view text, std::size_t pos, std::size_t count) {
  if (pos + count > text.size()) return false;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (!is_digit(text[i])) return false;
  }
  return true;
}

int number_at(std::string_view text, std::size_t pos, std::size_t count) {
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) value = value * 10 + (text[i] - '0');
  return value;
}

bool valid_date(std::string_view text) {
  if (text.size() != 10 || !digits(text, 0, 4) || text[4] != '-' || !digits(text, 5, 2) ||
      text[7] != '-' || !digits(text, 8, 2)) {
    return false;
  }
  int year = number_at(text, 0, 4);
  int month = number_at(text, 5, 2);
  int day = number_at(text, 8, 2);
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1]) return false;
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return !(month == 2 && day == 29 && !leap);
}

bool valid_zone(std::string_view zone) {
  if (zone.empty() || zone == "Z") return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2) &&
         zone[3] == ':' && digits(zone, 4, 2) && number_at(zone, 1, 2) <= 14 &&
         number_at(zone, 4, 2) <= 59;
}

bool valid_timestamp(std::string_view text) {
  if (text.size() < 10 || !valid_date(text.substr(0, 10))) return false;
  if (text.size() == 10) return true;
  if ((text[10] != 'T' && text[10] != ' ') || !digits(text, 11, 2) || text.size() < 16 ||
      text[13] != ':' || !digits(text, 14, 2)) {
    return false;
  }
  if (number_at(text, 11, 2) > 23 || number_at(text, 14, 2) > 59) return false;
  std::size_t pos = 16;
  if (pos < text.size() && text[pos] == ':') {
    if (!digits(text, pos + 1, 2) || number_at(text, pos + 1, 2) > 60) return false;
    pos += 3;
    if (pos < text.size() && text[pos] == '.') {
      std::size_t start = ++pos;
      while (pos < text.size() && is_digit(text[pos])) ++pos;
      if (pos == start || pos - start > 9) return false;
    }
  }
  return valid_zone(text.substr(pos));
}

bool valid_decimal(std::string_view text) {
  std::size_t pos = (!text.empty() && text[0] == '-') ? 1 : 0;
  std::size_t start = pos;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  if (pos == start || pos - start > 38) return false;
  if (pos == text.size()) return true;
  if (text[pos] != '.') return false;
  start = ++pos;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  return pos == text.size() && pos > start;
}

std::optional<BoundValue> parse_double(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return BoundValue(value);
}

}  // namespace

std::optional<BoundValue> parse_filter_value(FilterType type, std::string_view text) {
  switch (type) {
    case FilterType::kInt: {
      std::int64_t value = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return {};
      return BoundValue(value);
    }
    case FilterType::kFloat:
      if (text.empty() || text[0] == '+' || text.find_first_of("nNiI") != std::string_view::npos) {
        return {};
      }
      return parse_double(text);
    case FilterType::kDecimal:
      // Kept as text: a double would lose digits beyond 15-17; sources cast it exactly.
      if (!valid_decimal(text)) return {};
      return BoundValue(std::string(text));
    case FilterType::kBool:
      if (text == "true" || text == "1") return BoundValue(std::int64_t{1});
      if (text == "false" || text == "0") return BoundValue(std::int64_t{0});
      return {};
    case FilterType::kDate:
      if (!valid_date(text)) return {};
      return BoundValue(std::string(text));
    case FilterType::kTimestamp:
      if (!valid_timestamp(text)) return {};
      return BoundValue(std::string(text));
    case FilterType::kText:
      // NUL cannot be stored in PostgreSQL text and would cut a C string short.
      if (text.size() > kMaxTextBytes || !valid_utf8(text) ||
          text.find('\0') != std::string_view::npos) {
        return {};
      }
      return BoundValue(std::string(text));
  }
  return {};
}

std::string_view filter_value_syntax(FilterType type) {
  switch (type) {
    case FilterType::kInt: return "an integer";
    case FilterType::kFloat: return "a finite number";
    case FilterType::kDecimal: return "a decimal number like -12.50";
    case FilterType::kBool: return "true, false, 1 or 0";
    case FilterType::kDate: return "a date YYYY-MM-DD";
    case FilterType::kTimestamp: return "a timestamp YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]";
    case FilterType::kText: return "UTF-8 text without NUL of at most 4096 bytes";
  }
  return "a value";
}

}  // namespace sluice
