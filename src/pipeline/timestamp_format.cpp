#include "pipeline/timestamp_format.hpp"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <limits>

namespace sluice {
namespace {

constexpr std::int64_t kSecondsPerDay = 86'400;

constexpr std::array<std::string_view, 12> kMonthNames{
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};
constexpr std::array<std::string_view, 7> kDayNames{"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                    "Thursday", "Friday", "Saturday"};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads exactly `count` digits at text[pos].
bool read_digits(std::string_view text, std::size_t& pos, std::size_t count, int& value) {
  if (pos + count > text.size()) return false;
  int result = 0;
  for (std::size_t i = 0; i < count; ++i) {
    char c = text[pos + i];
    if (!is_digit(c)) return false;
    result = result * 10 + (c - '0');
  }
  pos += count;
  value = result;
  return true;
}

bool is_leap(std::int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int days_in_month(std::int64_t year, int month) {
  static constexpr std::array<int, 12> kDays{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : kDays[static_cast<std::size_t>(month - 1)];
}

// Floor division by a positive constant (inlined, so the division becomes a multiplication).
template <std::int64_t kDivisor>
inline std::int64_t floor_div(std::int64_t a) {
  static_assert(kDivisor > 0);
  const std::int64_t q = a / kDivisor;
  return a % kDivisor < 0 ? q - 1 : q;
}

// The date `delta` days (-1 or +1) from year-month-day.
inline void step_day(std::int64_t& year, int& month, int& day, int delta) {
  day += delta;
  if (day < 1) {
    if (--month < 1) month = 12, --year;
    day = days_in_month(year, month);
  } else if (day > days_in_month(year, month)) {
    day = 1;
    if (++month > 12) month = 1, ++year;
  }
}

// Offset suffix: Z, ±HH, ±HHMM, ±HH:MM, ±HH:MM:SS.
bool parse_offset(std::string_view text, std::size_t pos, ParsedTimestamp& out) {
  if (pos == text.size()) return true;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    out.has_offset = true;
    return pos + 1 == text.size();
  }
  if (text[pos] != '+' && text[pos] != '-') return false;
  const int sign = text[pos] == '-' ? -1 : 1;
  ++pos;
  int hours = 0, minutes = 0, seconds = 0;
  if (!read_digits(text, pos, 2, hours)) return false;
  if (pos < text.size()) {
    if (text[pos] == ':') ++pos;
    if (!read_digits(text, pos, 2, minutes)) return false;
    if (pos < text.size()) {
      if (text[pos] != ':') return false;
      ++pos;
      if (!read_digits(text, pos, 2, seconds)) return false;
    }
  }
  if (pos != text.size() || hours > 23 || minutes > 59 || seconds > 59) return false;
  out.has_offset = true;
  out.offset_seconds = sign * (hours * 3600 + minutes * 60 + seconds);
  return true;
}

char* write2(char* out, int value) {
  out[0] = static_cast<char>('0' + value / 10);
  out[1] = static_cast<char>('0' + value % 10);
  return out + 2;
}

char* write_int(char* out, std::int64_t value, int min_digits) {
  char digits[24];
  int n = 0;
  std::uint64_t magnitude = value < 0 ? 0 - static_cast<std::uint64_t>(value)
                                      : static_cast<std::uint64_t>(value);
  do {
    digits[n++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (n < min_digits) digits[n++] = '0';
  if (value < 0) *out++ = '-';
  while (n > 0) *out++ = digits[--n];
  return out;
}

char* write_text(char* out, std::string_view text) {
  std::memcpy(out, text.data(), text.size());
  return out + text.size();
}

char* write_offset(char* out, int offset, bool colon) {
  *out++ = offset < 0 ? '-' : '+';
  int magnitude = offset < 0 ? -offset : offset;
  out = write2(out, magnitude / 3600);
  if (colon) *out++ = ':';
  out = write2(out, magnitude / 60 % 60);
  return out;
}

std::int64_t unix_seconds(const cctz::civil_second& civil) {
  return cctz::convert(civil, cctz::utc_time_zone()).time_since_epoch().count();
}

cctz::time_point<cctz::seconds> time_point_of(std::int64_t seconds) {
  return cctz::time_point<cctz::seconds>(cctz::seconds(seconds));
}

}  // namespace

std::int64_t days_from_civil(std::int64_t year, int month, int day) {
  // H. Hinnant's algorithm: days of the 400-year era plus days within it.
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = floor_div<400>(year);
  const std::int64_t year_of_era = year - era * 400;
  const std::int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const std::int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146'097 + day_of_era - 719'468;
}

void civil_from_days(std::int64_t days, std::int64_t& year, int& month, int& day) {
  days += 719'468;
  const std::int64_t era = floor_div<146'097>(days);
  const std::int64_t day_of_era = days - era * 146'097;
  const std::int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  const std::int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::int64_t mp = (5 * day_of_year + 2) / 153;
  day = static_cast<int>(day_of_year - (153 * mp + 2) / 5 + 1);
  month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
}

bool parse_timestamp(std::string_view text, ParsedTimestamp& out) {
  out = ParsedTimestamp{};
  std::size_t pos = 0;
  while (pos < text.size() && is_digit(text[pos]) && pos < 8) ++pos;
  // 4 to 7 year digits (PostgreSQL's dates reach 5874897); BC and signed years are not read.
  if (pos < 4 || pos > 7) return false;
  std::int64_t year = 0;
  for (std::size_t i = 0; i < pos; ++i) year = year * 10 + (text[i] - '0');
  int month = 0, day = 0;
  if (pos >= text.size() || text[pos] != '-') return false;
  ++pos;
  if (!read_digits(text, pos, 2, month) || pos >= text.size() || text[pos] != '-') return false;
  ++pos;
  if (!read_digits(text, pos, 2, day)) return false;
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return false;
  out.year = year;
  out.month = month;
  out.day = day;
  if (pos == text.size()) {
    out.date_only = true;
    return true;
  }
  if (text[pos] != 'T' && text[pos] != ' ' && text[pos] != 't') return false;
  ++pos;
  if (!read_digits(text, pos, 2, out.hour) || pos >= text.size() || text[pos] != ':') return false;
  ++pos;
  if (!read_digits(text, pos, 2, out.minute)) return false;
  if (pos < text.size() && text[pos] == ':') {
    ++pos;
    if (!read_digits(text, pos, 2, out.second)) return false;
    if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
      ++pos;
      std::size_t digits = 0;
      int nanos = 0;
      while (pos < text.size() && is_digit(text[pos])) {
        if (digits < 9) nanos = nanos * 10 + (text[pos] - '0');
        ++digits;
        ++pos;
      }
      if (digits == 0) return false;
      for (std::size_t i = digits; i < 9; ++i) nanos *= 10;
      out.nanos = nanos;
    }
  }
  // 24:00:00 (ISO's end of day) and leap seconds are not accepted.
  if (out.hour > 23 || out.minute > 59 || out.second > 59) return false;
  return parse_offset(text, pos, out);
}

struct TimestampFormat::Op {
  enum Kind : std::uint8_t {
    kLiteral, kYear, kYear2, kMonth, kDay, kDaySpace, kDayOfYear, kHour, kHour12, kAmPm, kMinute,
    kSecond, kSecondFraction, kSecondFractionAuto, kMicros, kMonthAbbr, kMonthName, kDayAbbr,
    kDayName, kOffset, kOffsetColon, kZoneAbbr, kUnix,
  };
  Kind kind;
  int digits = 0;          // kSecondFraction; kLiteral: its length
  std::string literal;     // kLiteral
  char small[8] = {};      // kLiteral of at most 8 bytes: stored whole, one 8-byte copy
  char suffix[8] = {};     // a short literal that follows a conversion, folded into it
  std::uint8_t suffix_size = 0;
};

// A zone's UTC offsets as ranges of instants, from 1900 to 2200; outside that, cctz answers.
struct TimestampFormat::Zone {
  struct Range {
    std::int64_t start;  // first instant (Unix seconds) of this offset
    std::int64_t end;    // first instant after it
    int offset;
    std::uint16_t abbr;  // index into abbreviations
  };
  cctz::time_zone zone;
  std::vector<Range> ranges;
  std::vector<std::string> abbreviations;
  std::int64_t table_end = 0;
  std::size_t longest_abbr = 0;

  std::uint16_t abbreviation_index(const std::string& abbr) {
    auto found = std::ranges::find(abbreviations, abbr);
    if (found != abbreviations.end()) return static_cast<std::uint16_t>(found - abbreviations.begin());
    abbreviations.push_back(abbr);
    longest_abbr = std::max(longest_abbr, abbr.size());
    return static_cast<std::uint16_t>(abbreviations.size() - 1);
  }

  Zone(const std::string& name, TimestampFormatError::Part part) {
    if (!cctz::load_time_zone(name, &zone)) {
      throw TimestampFormatError(part, "unknown time zone '" + name +
                                           "' (expected an IANA name such as UTC or Europe/Berlin)");
    }
    const std::int64_t begin = unix_seconds(cctz::civil_second(1900, 1, 1, 0, 0, 0));
    table_end = unix_seconds(cctz::civil_second(2200, 1, 1, 0, 0, 0));
    auto first = zone.lookup(time_point_of(begin));
    ranges.push_back({begin, 0, first.offset, abbreviation_index(first.abbr)});
    std::int64_t at = begin;
    cctz::time_zone::civil_transition transition;
    while (zone.next_transition(time_point_of(at), &transition)) {
      const std::int64_t instant = zone.lookup(transition.to).trans.time_since_epoch().count();
      if (instant <= at || instant >= table_end) break;
      auto after = zone.lookup(time_point_of(instant));
      ranges.push_back({instant, 0, after.offset, abbreviation_index(after.abbr)});
      at = instant;
    }
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      ranges[i].end = i + 1 < ranges.size() ? ranges[i + 1].start : table_end;
    }
    // Beyond the table cctz answers; leave room for any abbreviation it may give.
    longest_abbr = std::max<std::size_t>(longest_abbr, 8);
  }

  // The offset and abbreviation in force at `instant`.
  void lookup(std::int64_t instant, std::size_t& hint, int& offset, std::string_view& abbr) const {
    if (instant < ranges.front().start || instant >= table_end) {
      auto found = zone.lookup(time_point_of(instant));
      offset = found.offset;
      abbr = std::string_view(found.abbr).substr(0, longest_abbr);
      return;
    }
    std::size_t index = hint < ranges.size() ? hint : 0;
    auto in_range = [&](std::size_t i) {
      return ranges[i].start <= instant && (i + 1 == ranges.size() || instant < ranges[i + 1].start);
    };
    if (!in_range(index) && index + 1 < ranges.size() && in_range(index + 1)) {
      hint = ++index;
    } else if (!in_range(index) && index > 0 && in_range(index - 1)) {
      hint = --index;
    } else if (!in_range(index)) {
      auto next = std::upper_bound(ranges.begin(), ranges.end(), instant,
                                   [](std::int64_t t, const Range& r) { return t < r.start; });
      index = static_cast<std::size_t>(next - ranges.begin()) - 1;
      hint = index;
    }
    offset = ranges[index].offset;
    abbr = abbreviations[ranges[index].abbr];
  }
};

TimestampFormat::TimestampFormat(std::string_view pattern, const std::string& zone,
                                 const std::string& input_zone)
{
  using Part = TimestampFormatError::Part;
  if (pattern.empty()) throw TimestampFormatError(Part::kPattern, "the pattern is empty");
  auto add = [this](Op::Kind kind, std::size_t size, int digits = 0) {
    ops_.push_back(Op{kind, digits, {}});
    max_size_ += size;
  };
  auto add_literal = [this](std::string_view text) {
    if (ops_.empty() || ops_.back().kind != Op::kLiteral) ops_.push_back(Op{Op::kLiteral, 0, {}});
    ops_.back().literal += text;
    max_size_ += text.size();
  };
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      add_literal(pattern.substr(i, 1));
      continue;
    }
    if (++i == pattern.size()) {
      throw TimestampFormatError(Part::kPattern, "the pattern ends in a lone '%'");
    }
    const char c = pattern[i];
    switch (c) {
      case 'Y': add(Op::kYear, 8); break;
      case 'y': add(Op::kYear2, 2); break;
      case 'm': add(Op::kMonth, 2); break;
      case 'd': add(Op::kDay, 2); break;
      case 'e': add(Op::kDaySpace, 2); break;
      case 'j': add(Op::kDayOfYear, 3); break;
      case 'H': add(Op::kHour, 2); break;
      case 'I': add(Op::kHour12, 2); break;
      case 'p': add(Op::kAmPm, 2); break;
      case 'M': add(Op::kMinute, 2); break;
      case 'S': add(Op::kSecond, 2); break;
      case 'f': add(Op::kMicros, 6); break;
      case 'b': add(Op::kMonthAbbr, 3); break;
      case 'B': add(Op::kMonthName, 9); break;
      case 'a': add(Op::kDayAbbr, 3); break;
      case 'A': add(Op::kDayName, 9); break;
      case 'z': add(Op::kOffset, 5); break;
      case 'Z': add(Op::kZoneAbbr, 0); break;  // sized below, once the zone is loaded
      case 's': add(Op::kUnix, 21); break;
      case '%': add_literal("%"); break;
      case 'F':
        add(Op::kYear, 8), add_literal("-"), add(Op::kMonth, 2), add_literal("-"), add(Op::kDay, 2);
        break;
      case 'T':
        add(Op::kHour, 2), add_literal(":"), add(Op::kMinute, 2), add_literal(":"),
            add(Op::kSecond, 2);
        break;
      case 'R': add(Op::kHour, 2), add_literal(":"), add(Op::kMinute, 2); break;
      case 'E': {
        std::string_view rest = pattern.substr(i + 1);
        if (rest.starts_with("z")) {
          add(Op::kOffsetColon, 6);
          i += 1;
        } else if (rest.starts_with("*S")) {
          add(Op::kSecondFractionAuto, 12);
          i += 2;
        } else if (rest.size() >= 2 && rest[0] >= '1' && rest[0] <= '9' && rest[1] == 'S') {
          add(Op::kSecondFraction, 3 + static_cast<std::size_t>(rest[0] - '0'), rest[0] - '0');
          i += 2;
        } else {
          throw TimestampFormatError(Part::kPattern, "unknown conversion '%E" +
                                                         std::string(rest.substr(0, 2)) +
                                                         "' (known: %Ez, %E*S, %E1S to %E9S)");
        }
        break;
      }
      default:
        throw TimestampFormatError(
            Part::kPattern, "unknown conversion '%" + std::string(1, c) +
            "' (known: %Y %y %m %d %e %j %H %I %p %M %S %f %b %B %a %A %F %T %R %z %Ez %Z %s "
            "%E*S %E3S %%)");
    }
  }
  zone_ = std::make_unique<Zone>(zone, Part::kZone);
  if (input_zone != "UTC") input_zone_ = std::make_unique<Zone>(input_zone, Part::kInputZone);
  for (const Op& op : ops_) {
    if (op.kind == Op::kZoneAbbr) max_size_ += zone_->longest_abbr;
  }
  finish_ops();
}

void TimestampFormat::finish_ops() {
  // A literal of up to 8 bytes after a conversion ("." in "%d.%m") becomes that conversion's
  // suffix: one 8-byte store instead of another trip round the loop.
  std::vector<Op> folded;
  for (Op& op : ops_) {
    const bool foldable = op.kind == Op::kLiteral && op.literal.size() <= 8 && !folded.empty() &&
                          folded.back().kind != Op::kLiteral && folded.back().suffix_size == 0;
    if (foldable) {
      std::memcpy(folded.back().suffix, op.literal.data(), op.literal.size());
      folded.back().suffix_size = static_cast<std::uint8_t>(op.literal.size());
      continue;
    }
    folded.push_back(std::move(op));
  }
  ops_ = std::move(folded);
  for (Op& op : ops_) {
    if (op.kind != Op::kLiteral) continue;
    op.digits = static_cast<int>(op.literal.size());
    if (op.literal.size() <= 8) std::memcpy(op.small, op.literal.data(), op.literal.size());
  }
  max_size_ += 8;  // an 8-byte literal store may write past the value's end
}

TimestampFormat::~TimestampFormat() = default;
TimestampFormat::TimestampFormat(TimestampFormat&&) noexcept = default;
TimestampFormat& TimestampFormat::operator=(TimestampFormat&&) noexcept = default;

namespace {

// Days from 1970-01-01 to the first of each month of 1900 to 2199, by table: no arithmetic on
// the hot path for the dates exports hold.
constexpr std::int64_t kTableFirstYear = 1900;
constexpr std::int64_t kTableYears = 300;

struct MonthStarts {
  std::array<std::int32_t, kTableYears * 12> days{};
  MonthStarts() {
    for (std::int64_t y = 0; y < kTableYears; ++y) {
      for (int m = 1; m <= 12; ++m) {
        days[static_cast<std::size_t>(y * 12 + m - 1)] =
            static_cast<std::int32_t>(days_from_civil(kTableFirstYear + y, m, 1));
      }
    }
  }
};

inline std::int64_t fast_days_from_civil(std::int64_t year, int month, int day) {
  static const MonthStarts kStarts;
  const std::int64_t index = (year - kTableFirstYear) * 12 + month - 1;
  if (index < 0 || index >= kTableYears * 12) return days_from_civil(year, month, day);
  return kStarts.days[static_cast<std::size_t>(index)] + day - 1;
}

}  // namespace

std::size_t TimestampFormat::format(std::string_view value, char* out, std::size_t& hint) const {
  ParsedTimestamp parsed;
  if (!parse_timestamp(value, parsed)) return std::string_view::npos;
  const std::int64_t days = fast_days_from_civil(parsed.year, parsed.month, parsed.day);
  const std::int64_t local_seconds =
      days * kSecondsPerDay + parsed.hour * 3600 + parsed.minute * 60 + parsed.second;
  std::int64_t instant = local_seconds - parsed.offset_seconds;
  if (!parsed.has_offset && !parsed.date_only && input_zone_) {
    cctz::civil_second civil(parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute,
                             parsed.second);
    instant = input_zone_->zone.lookup(civil).pre.time_since_epoch().count();
  }
  int offset = 0;
  std::string_view abbr;
  if (hint < zone_->ranges.size() && zone_->ranges[hint].start <= instant &&
      instant < zone_->ranges[hint].end) {
    offset = zone_->ranges[hint].offset;  // the common case: the range of the last value
    abbr = zone_->abbreviations[zone_->ranges[hint].abbr];
  } else {
    zone_->lookup(instant, hint, offset, abbr);
  }
  // A calendar date is written as it is; an instant is shifted into the output zone.
  std::int64_t year = parsed.year;
  int month = parsed.month, day = parsed.day, hour = 0, minute = 0, second = 0;
  std::int64_t local_days = days;
  if (!parsed.date_only) {
    const std::int64_t local = instant + offset;
    local_days = floor_div<kSecondsPerDay>(local);
    const std::int64_t of_day = local - local_days * kSecondsPerDay;
    // A zone shift moves the date by a day at most (offsets are under 26 hours): step it rather
    // than convert the day number back.
    const std::int64_t moved = local_days - days;
    if (moved == 1 || moved == -1) {
      step_day(year, month, day, static_cast<int>(moved));
    } else if (moved != 0) {
      civil_from_days(local_days, year, month, day);
    }
    hour = static_cast<int>(of_day / 3600);
    minute = static_cast<int>(of_day / 60 % 60);
    second = static_cast<int>(of_day % 60);
  }
  char* p = out;
  for (const Op& op : ops_) {
    switch (op.kind) {
      case Op::kLiteral:
        if (op.digits <= 8) {
          std::memcpy(p, op.small, 8);  // max_size_ keeps 8 bytes of slack for this
          p += op.digits;
        } else {
          p = write_text(p, op.literal);
        }
        break;
      case Op::kYear:
        if (year >= 0 && year <= 9999) {
          p = write2(p, static_cast<int>(year / 100));
          p = write2(p, static_cast<int>(year % 100));
        } else {
          p = write_int(p, year, 4);
        }
        break;
      case Op::kYear2: p = write2(p, static_cast<int>(((year % 100) + 100) % 100)); break;
      case Op::kMonth: p = write2(p, month); break;
      case Op::kDay: p = write2(p, day); break;
      case Op::kDaySpace:
        *p++ = day < 10 ? ' ' : static_cast<char>('0' + day / 10);
        *p++ = static_cast<char>('0' + day % 10);
        break;
      case Op::kDayOfYear:
        p = write_int(p, local_days - days_from_civil(year, 1, 1) + 1, 3);
        break;
      case Op::kHour: p = write2(p, hour); break;
      case Op::kHour12: p = write2(p, hour % 12 == 0 ? 12 : hour % 12); break;
      case Op::kAmPm: p = write_text(p, hour < 12 ? "AM" : "PM"); break;
      case Op::kMinute: p = write2(p, minute); break;
      case Op::kSecond: p = write2(p, second); break;
      case Op::kSecondFraction: {
        p = write2(p, second);
        *p++ = '.';
        int scaled = parsed.nanos;
        for (int i = op.digits; i < 9; ++i) scaled /= 10;
        p = write_int(p, scaled, op.digits);
        break;
      }
      case Op::kSecondFractionAuto: {
        p = write2(p, second);
        if (parsed.nanos != 0) {
          int nanos = parsed.nanos, digits = 9;
          while (nanos % 10 == 0) nanos /= 10, --digits;
          *p++ = '.';
          p = write_int(p, nanos, digits);
        }
        break;
      }
      case Op::kMicros: p = write_int(p, parsed.nanos / 1000, 6); break;
      case Op::kMonthAbbr: p = write_text(p, kMonthNames[month - 1].substr(0, 3)); break;
      case Op::kMonthName: p = write_text(p, kMonthNames[month - 1]); break;
      case Op::kDayAbbr:
      case Op::kDayName: {
        const std::int64_t weekday = ((local_days % 7) + 11) % 7;  // 1970-01-01 was a Thursday
        std::string_view name = kDayNames[static_cast<std::size_t>(weekday)];
        p = write_text(p, op.kind == Op::kDayAbbr ? name.substr(0, 3) : name);
        break;
      }
      case Op::kOffset: p = write_offset(p, offset, false); break;
      case Op::kOffsetColon: p = write_offset(p, offset, true); break;
      case Op::kZoneAbbr: p = write_text(p, abbr); break;
      case Op::kUnix: p = write_int(p, instant, 1); break;
    }
    std::memcpy(p, op.suffix, 8);  // the slack covers it; only suffix_size bytes count
    p += op.suffix_size;
  }
  return static_cast<std::size_t>(p - out);
}

}  // namespace sluice
