#include "pipeline/text_functions.hpp"

#include "core/utf8.hpp"

#include <locale.h>

#include <cstring>
#include <cwctype>
#include <stdexcept>
#include <string>

namespace sluice {
namespace {

constexpr int kMaxExponent = 400;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Decodes the code point of a valid sequence of `length` bytes.
char32_t decode(std::string_view text, std::size_t i, std::size_t length) {
  const auto byte = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(text[i + k])); };
  switch (length) {
    case 1: return byte(0);
    case 2: return ((byte(0) & 0x1f) << 6) | (byte(1) & 0x3f);
    case 3: return ((byte(0) & 0x0f) << 12) | ((byte(1) & 0x3f) << 6) | (byte(2) & 0x3f);
    default:
      return ((byte(0) & 0x07) << 18) | ((byte(1) & 0x3f) << 12) | ((byte(2) & 0x3f) << 6) |
             (byte(3) & 0x3f);
  }
}

char* encode(char32_t cp, char* out) {
  if (cp < 0x80) {
    *out++ = static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out++ = static_cast<char>(0xc0 | (cp >> 6));
    *out++ = static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *out++ = static_cast<char>(0xe0 | (cp >> 12));
    *out++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out++ = static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    *out++ = static_cast<char>(0xf0 | (cp >> 18));
    *out++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    *out++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out++ = static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

// glibc's built-in C.UTF-8 locale (always present since glibc 2.35) carries the Unicode
// simple case mappings; created once, never freed.
locale_t utf8_locale() {
  static const locale_t locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return locale;
}

template <bool kUpper>
std::size_t change_case(std::string_view text, char* out) {
  const locale_t locale = utf8_locale();
  char* p = out;
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) < 0x80) {
      if constexpr (kUpper) {
        *p++ = c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
      } else {
        *p++ = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
      }
      ++i;
      continue;
    }
    const std::size_t length = utf8_sequence_length(text, i);
    if (length == 0 || locale == nullptr) {
      *p++ = c;
      ++i;
      continue;
    }
    const auto cp = static_cast<wint_t>(decode(text, i, length));
    const wint_t mapped = kUpper ? towupper_l(cp, locale) : towlower_l(cp, locale);
    p = encode(static_cast<char32_t>(mapped), p);
    i += length;
  }
  return static_cast<std::size_t>(p - out);
}

}  // namespace

std::size_t round_decimal_max_size(std::string_view text, int places) {
  return text.size() + static_cast<std::size_t>(kMaxExponent + places) + 4;
}

std::size_t round_decimal(std::string_view text, int places, char* out) {
  std::size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) negative = text[pos++] == '-';
  // The digits without the point, and where the point falls among them.
  const std::size_t digits_begin = pos;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  std::int64_t point = static_cast<std::int64_t>(pos - digits_begin);
  std::size_t fraction_begin = pos, fraction_end = pos;
  if (pos < text.size() && text[pos] == '.') {
    fraction_begin = ++pos;
    while (pos < text.size() && is_digit(text[pos])) ++pos;
    fraction_end = pos;
  }
  const auto int_digits = static_cast<std::size_t>(point);
  const std::size_t fraction_digits = fraction_end - fraction_begin;
  if (int_digits + fraction_digits == 0) return std::string_view::npos;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    bool exponent_negative = false;
    if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) exponent_negative = text[pos++] == '-';
    if (pos == text.size()) return std::string_view::npos;
    std::int64_t exponent = 0;
    while (pos < text.size() && is_digit(text[pos])) {
      exponent = exponent * 10 + (text[pos++] - '0');
      if (exponent > kMaxExponent) return std::string_view::npos;
    }
    point += exponent_negative ? -exponent : exponent;
  }
  if (pos != text.size()) return std::string_view::npos;
  const auto length = static_cast<std::int64_t>(int_digits + fraction_digits);
  auto digit_at = [&](std::int64_t index) -> char {
    if (index < 0 || index >= length) return '0';
    const auto i = static_cast<std::size_t>(index);
    return i < int_digits ? text[digits_begin + i] : text[fraction_begin + (i - int_digits)];
  };
  // Fixed-point digits: max(point, 1) integer digits then `places` fraction digits, written
  // after one spare byte for a carry and one for the sign.
  const std::int64_t integer_width = point > 0 ? point : 1;
  const std::int64_t width = integer_width + places;
  const std::int64_t shift = point - integer_width;  // index of the first written digit
  char* digits = out + 2;
  for (std::int64_t i = 0; i < width; ++i) digits[i] = digit_at(i + shift);
  bool carry = digit_at(point + places) >= '5';
  for (std::int64_t i = width - 1; carry && i >= 0; --i) {
    if (digits[i] == '9') {
      digits[i] = '0';
    } else {
      ++digits[i];
      carry = false;
    }
  }
  char* first = digits;
  if (carry) *--first = '1';
  // Leading zeros of the integer part go, but one digit stays before the point.
  char* point_at = digits + integer_width;
  while (first + 1 < point_at && *first == '0') ++first;
  bool zero = true;
  for (char* d = first; d < digits + width; ++d) zero = zero && *d == '0';
  // Assemble in place: [sign] integer digits [. fraction].
  char* p = out;
  if (negative && !zero) *p++ = '-';
  const std::size_t integer_length = static_cast<std::size_t>(point_at - first);
  std::memmove(p, first, integer_length);
  p += integer_length;
  if (places > 0) {
    // The fraction digits sit at point_at, at most one byte left of where they go: move them
    // before the '.' is written over that byte.
    std::memmove(p + 1, point_at, static_cast<std::size_t>(places));
    *p = '.';
    p += 1 + places;
  }
  return static_cast<std::size_t>(p - out);
}

std::size_t count_code_points(std::string_view text) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < text.size(); ++count) {
    const std::size_t length = utf8_sequence_length(text, i);
    i += length == 0 ? 1 : length;
  }
  return count;
}

std::string_view first_code_points(std::string_view text, std::size_t count) {
  std::size_t i = 0;
  for (std::size_t n = 0; n < count && i < text.size(); ++n) {
    const std::size_t length = utf8_sequence_length(text, i);
    i += length == 0 ? 1 : length;
  }
  return text.substr(0, i);
}

std::size_t mask_email_max_size(std::string_view text) { return text.size() + 3; }

std::size_t mask_email(std::string_view text, char* out) {
  const void* found = text.empty() ? nullptr : memrchr(text.data(), '@', text.size());
  const std::size_t at = found == nullptr ? std::string_view::npos
                                          : static_cast<std::size_t>(static_cast<const char*>(found) - text.data());
  char* p = out;
  if (at == std::string_view::npos || at == 0) {
    std::memcpy(p, "***", 3);
    return 3;
  }
  std::string_view first = first_code_points(text.substr(0, at), 1);
  std::memcpy(p, first.data(), first.size());
  p += first.size();
  std::memcpy(p, "***", 3);
  p += 3;
  std::memcpy(p, text.data() + at, text.size() - at);
  p += text.size() - at;
  return static_cast<std::size_t>(p - out);
}

std::size_t mask_keep_last(std::string_view text, std::size_t keep, char* out) {
  const std::size_t total = count_code_points(text);
  if (total <= keep) {
    std::memset(out, '*', total);
    return total;
  }
  const std::size_t masked = total - keep;
  const std::size_t cut = first_code_points(text, masked).size();
  std::memset(out, '*', masked);
  std::memcpy(out + masked, text.data() + cut, text.size() - cut);
  return masked + (text.size() - cut);
}

std::size_t to_upper(std::string_view text, char* out) { return change_case<true>(text, out); }
std::size_t to_lower(std::string_view text, char* out) { return change_case<false>(text, out); }

}  // namespace sluice
