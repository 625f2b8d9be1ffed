// Fuzzes the column transforms' value functions against their documented rules:
// - parse_timestamp accepts only what it documents; every accepted value formats within
//   max_size() in UTC and in a DST zone, and in UTC the %F %T output equals the input's own
//   civil fields shifted by its offset (computed here independently with days arithmetic).
// - round_decimal's output is [-]digits[.digits] with exactly `places` fraction digits, no
//   leading zeros, no negative zero, and rounding it again changes nothing.
// - masks, case mapping and truncation stay within their size bounds and never split or
//   invent UTF-8 sequences (valid input stays valid).
//
// Input: byte 0 = places (mod 31), byte 1 = truncate count; the rest is the value.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/utf8.hpp"
#include "pipeline/text_functions.hpp"
#include "pipeline/timestamp_format.hpp"

namespace {

using namespace sluice;

void check_at(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_transforms.cpp:%d: check failed\n", line);
  std::abort();
}
#define check(condition) check_at((condition), __LINE__)

const TimestampFormat& utc_format() {
  static const TimestampFormat format("%F %T", "UTC", "UTC");
  return format;
}
const TimestampFormat& zoned_format() {
  static const TimestampFormat format("%Y|%y|%m|%d|%e|%j|%H|%I|%p|%M|%S|%E*S|%E3S|%f|%b|%B|%a|%A|%z|%Ez|%Z|%s",
                                      "America/Santiago", "Europe/Dublin");
  return format;
}

void check_timestamp(std::string_view value) {
  ParsedTimestamp parsed;
  const bool accepted = parse_timestamp(value, parsed);
  std::size_t hint = 0;
  std::string out(zoned_format().max_size(), '\0');
  std::size_t size = zoned_format().format(value, out.data(), hint);
  check((size == std::string_view::npos) == !accepted);
  if (!accepted) return;
  check(size <= zoned_format().max_size());
  out.assign(utc_format().max_size(), '\0');
  size = utc_format().format(value, out.data(), hint);
  check(size != std::string_view::npos && size <= utc_format().max_size());
  // Independently: the instant in UTC.
  std::int64_t seconds = days_from_civil(parsed.year, parsed.month, parsed.day) * 86'400;
  if (!parsed.date_only) {
    seconds += parsed.hour * 3600 + parsed.minute * 60 + parsed.second - parsed.offset_seconds;
  }
  std::int64_t days = seconds >= 0 ? seconds / 86'400 : -((-seconds + 86'399) / 86'400);
  std::int64_t of_day = seconds - days * 86'400;
  std::int64_t year = 0;
  int month = 0, day = 0;
  civil_from_days(days, year, month, day);
  char expected[64];
  if (year >= 0 && year <= 9999) {
    std::snprintf(expected, sizeof expected, "%04lld-%02d-%02d %02lld:%02lld:%02lld",
                  static_cast<long long>(year), month, day, static_cast<long long>(of_day / 3600),
                  static_cast<long long>(of_day / 60 % 60), static_cast<long long>(of_day % 60));
    check(out.substr(0, size) == expected);
  }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

void check_decimal(std::string_view value, int places) {
  std::string out(round_decimal_max_size(value, places), '\0');
  const std::size_t size = round_decimal(value, places, out.data());
  if (size == std::string_view::npos) return;
  check(size <= out.size());
  std::string_view result(out.data(), size);
  // [-]digits[.places digits], no leading zeros, no "-0".
  std::size_t i = 0;
  if (result[0] == '-') ++i;
  const std::size_t int_begin = i;
  while (i < result.size() && is_digit(result[i])) ++i;
  check(i > int_begin);
  check(result[int_begin] != '0' || i == int_begin + 1);
  if (places > 0) {
    check(i < result.size() && result[i] == '.');
    check(result.size() - i - 1 == static_cast<std::size_t>(places));
    for (std::size_t k = i + 1; k < result.size(); ++k) check(is_digit(result[k]));
  } else {
    check(i == result.size());
  }
  if (result[0] == '-') check(result.find_first_not_of("-0.") != std::string_view::npos);
  // Rounding it again changes nothing.
  std::string again(round_decimal_max_size(result, places), '\0');
  const std::size_t again_size = round_decimal(result, places, again.data());
  check(again_size == size && again.compare(0, size, result) == 0);
}

void check_text(std::string_view value, std::size_t truncate) {
  const bool valid = valid_utf8(value);
  std::string out(mask_email_max_size(value), '\0');
  std::size_t size = mask_email(value, out.data());
  check(size <= mask_email_max_size(value));
  if (valid) check(valid_utf8(std::string_view(out.data(), size)));
  out.assign(value.size() + 1, '\0');
  size = mask_keep_last(value, 4, out.data());
  check(size <= value.size());
  if (valid) check(valid_utf8(std::string_view(out.data(), size)));
  check(std::string_view(out.data(), size).find_first_not_of('*') == std::string_view::npos ||
        value.ends_with(std::string_view(out.data(), size).substr(
            std::string_view(out.data(), size).find_first_not_of('*'))));
  out.assign(change_case_max_size(value), '\0');
  size = to_upper(value, out.data());
  check(size <= change_case_max_size(value));
  if (valid) check(valid_utf8(std::string_view(out.data(), size)));
  size = to_lower(value, out.data());
  check(size <= change_case_max_size(value));
  if (valid) check(valid_utf8(std::string_view(out.data(), size)));
  std::string_view cut = first_code_points(value, truncate);
  check(value.starts_with(cut));
  check(count_code_points(cut) == std::min(truncate, count_code_points(value)));
  if (valid) check(valid_utf8(cut));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int places = data[0] % 31;
  const std::size_t truncate = data[1];
  std::string_view value(reinterpret_cast<const char*>(data) + 2, size - 2);
  check_timestamp(value);
  check_decimal(value, places);
  check_text(value, truncate);
  return 0;
}
