#pragma once

// Timestamp formatting for column transforms: reads the timestamps sources produce, converts
// them to a configured IANA time zone (DST-correct, cctz's rules from the system tzdata) and
// writes them with a precompiled strftime-like pattern. No allocation per value; the zone's
// UTC offsets are precomputed as a table of ranges, so a value costs one range check.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// A pattern or time zone that cannot be used; what() says why.
class TimestampFormatError : public std::runtime_error {
 public:
  // Which argument of the constructor is at fault.
  enum class Part : std::uint8_t { kPattern, kZone, kInputZone };
  TimestampFormatError(Part part, const std::string& problem)
      : std::runtime_error(problem), part_(part) {}
  Part part() const { return part_; }

 private:
  Part part_;
};

// A timestamp as sources render it: `YYYY-MM-DD` (4 to 7 year digits), optionally followed by `T` or a space and
// `HH:MM[:SS[.fraction]]`, optionally followed by an offset `Z`, `±HH`, `±HHMM`, `±HH:MM` or
// `±HH:MM:SS` (PostgreSQL, ISO 8601, SQLite's date functions all produce this).
struct ParsedTimestamp {
  std::int64_t year = 0;
  int month = 1, day = 1, hour = 0, minute = 0, second = 0;
  int nanos = 0;            // fraction of a second beyond 9 digits is dropped
  bool date_only = false;   // no time part: a calendar date, never shifted between zones
  bool has_offset = false;
  int offset_seconds = 0;   // east of UTC
};

// False when `text` is not such a timestamp (or names an impossible date or time).
bool parse_timestamp(std::string_view text, ParsedTimestamp& out);

// Days since 1970-01-01 of a proleptic Gregorian date, and back.
std::int64_t days_from_civil(std::int64_t year, int month, int day);
void civil_from_days(std::int64_t days, std::int64_t& year, int& month, int& day);

class TimestampFormat {
 public:
  // Pattern conversions: %Y %m %d %H %M %S %y %e %j %I %p %b %B %a %A %F (%Y-%m-%d)
  // %T (%H:%M:%S) %R (%H:%M) %z (+hhmm) %Ez (+hh:mm) %Z (zone abbreviation) %s (Unix
  // seconds) %f (microseconds, 6 digits) %E3S / %E6S / %E9S (seconds with that many
  // fraction digits) %E*S (seconds with the fraction digits needed, none when whole) %%.
  // `zone`: the IANA zone written ("UTC", "Europe/Berlin"); `input_zone`: the zone of values
  // that carry no offset. Throws TimestampFormatError naming the problem and its part, the
  // pattern checked first, then the zone, then the input zone.
  TimestampFormat(std::string_view pattern, const std::string& zone, const std::string& input_zone);
  ~TimestampFormat();
  TimestampFormat(TimestampFormat&&) noexcept;
  TimestampFormat& operator=(TimestampFormat&&) noexcept;

  // The most bytes format() writes for any value.
  std::size_t max_size() const { return max_size_; }

  // Writes `value` in the pattern at `out` (room for max_size() bytes) and returns the bytes
  // written, or std::string_view::npos when `value` is not a timestamp (infinity, BC dates,
  // free text): the caller passes such values on unchanged. `hint` is per-stream state that
  // remembers the last offset range used (start it at 0); not shared between threads.
  std::size_t format(std::string_view value, char* out, std::size_t& hint) const;

 private:
  struct Op;
  struct Zone;
  void finish_ops();
  std::vector<Op> ops_;
  std::unique_ptr<Zone> zone_;
  std::unique_ptr<Zone> input_zone_;  // null when UTC
  std::size_t max_size_ = 0;
};

}  // namespace sluice
