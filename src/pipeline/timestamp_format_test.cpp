#include "pipeline/timestamp_format.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

std::string format(const TimestampFormat& pattern, std::string_view value) {
  std::string out(pattern.max_size(), '\0');
  std::size_t hint = 0;
  std::size_t size = pattern.format(value, out.data(), hint);
  if (size == std::string_view::npos) return "<unchanged>";
  EXPECT_LE(size, pattern.max_size());
  out.resize(size);
  return out;
}

TEST(ParseTimestamp, AcceptsWhatSourcesWrite) {
  ParsedTimestamp t;
  ASSERT_TRUE(parse_timestamp("2026-03-29 01:30:00", t));
  EXPECT_EQ(t.year, 2026);
  EXPECT_EQ(t.hour, 1);
  EXPECT_FALSE(t.has_offset);
  ASSERT_TRUE(parse_timestamp("2026-03-29T01:30:00.123456+05:30", t));
  EXPECT_EQ(t.nanos, 123'456'000);
  EXPECT_EQ(t.offset_seconds, 5 * 3600 + 1800);
  ASSERT_TRUE(parse_timestamp("2026-03-29 01:30:00-08", t));  // PostgreSQL's short offset
  EXPECT_EQ(t.offset_seconds, -8 * 3600);
  ASSERT_TRUE(parse_timestamp("2026-03-29T01:30Z", t));
  EXPECT_TRUE(t.has_offset);
  ASSERT_TRUE(parse_timestamp("2024-02-29", t));
  EXPECT_TRUE(t.date_only);
  ASSERT_TRUE(parse_timestamp("12026-01-01 00:00:00", t));
  EXPECT_EQ(t.year, 12026);
  ASSERT_TRUE(parse_timestamp("5874897-12-31", t));  // PostgreSQL's largest date
  EXPECT_EQ(t.year, 5'874'897);
  EXPECT_FALSE(parse_timestamp("12345678-01-01", t));
}

TEST(ParseTimestamp, RefusesWhatIsNotATimestamp) {
  ParsedTimestamp t;
  for (std::string_view bad :
       {"", "infinity", "-infinity", "2026-02-29", "2026-13-01", "2026-00-10", "2026-01-01 24:00:00",
        "2026-01-01 12:60:00", "0044-03-15 BC", "26-01-01", "2026-1-1", "2026-01-01 12:00:00+",
        "2026-01-01 12:00:00.", "2026-01-01 12:00:00 UTC", "2026-01-01x", "hello"}) {
    EXPECT_FALSE(parse_timestamp(bad, t)) << bad;
  }
}

TEST(CivilDays, RoundTripsAcrossEras) {
  EXPECT_EQ(days_from_civil(1970, 1, 1), 0);
  EXPECT_EQ(days_from_civil(2000, 3, 1), 11'017);
  EXPECT_EQ(days_from_civil(1969, 12, 31), -1);
  for (std::int64_t days : {-800'000LL, -1LL, 0LL, 59LL, 10'956LL, 2'932'896LL}) {
    std::int64_t year = 0;
    int month = 0, day = 0;
    civil_from_days(days, year, month, day);
    EXPECT_EQ(days_from_civil(year, month, day), days);
  }
}

TEST(TimestampFormat, ConvertsAcrossDaylightSavingTransitions) {
  TimestampFormat berlin("%Y-%m-%d %H:%M %Z %z", "Europe/Berlin", "UTC");
  // Spring forward, 2026-03-29 01:00 UTC: 01:59 CET is followed by 03:00 CEST.
  EXPECT_EQ(format(berlin, "2026-03-29 00:59:59Z"), "2026-03-29 01:59 CET +0100");
  EXPECT_EQ(format(berlin, "2026-03-29 01:00:00Z"), "2026-03-29 03:00 CEST +0200");
  // Fall back, 2026-10-25 01:00 UTC: 02:30 comes twice.
  EXPECT_EQ(format(berlin, "2026-10-25 00:30:00Z"), "2026-10-25 02:30 CEST +0200");
  EXPECT_EQ(format(berlin, "2026-10-25 01:30:00Z"), "2026-10-25 02:30 CET +0100");
  // Values without an offset are read as UTC by default; offsets are honoured.
  EXPECT_EQ(format(berlin, "2026-07-01 12:00:00"), "2026-07-01 14:00 CEST +0200");
  EXPECT_EQ(format(berlin, "2026-07-01 12:00:00+02"), "2026-07-01 12:00 CEST +0200");
  // Southern hemisphere and half-hour zones.
  TimestampFormat kolkata("%F %T%Ez", "Asia/Kolkata", "UTC");
  EXPECT_EQ(format(kolkata, "2026-01-01T23:45:00Z"), "2026-01-02 05:15:00+05:30");
  TimestampFormat sydney("%d/%m/%Y %H:%M", "Australia/Sydney", "UTC");
  EXPECT_EQ(format(sydney, "2026-01-15 00:00:00Z"), "15/01/2026 11:00");  // AEDT
  EXPECT_EQ(format(sydney, "2026-07-15 00:00:00Z"), "15/07/2026 10:00");  // AEST
}

TEST(TimestampFormat, SameHintAcrossRandomOrderGivesSameAnswers) {
  TimestampFormat ny("%F %T %Z", "America/New_York", "UTC");
  std::string out(ny.max_size(), '\0');
  std::size_t hint = 0;
  const char* values[] = {"2026-07-01 12:00:00Z", "1950-01-01 12:00:00Z", "2026-01-01 12:00:00Z",
                          "2250-07-01 12:00:00Z", "1850-07-01 12:00:00Z"};
  const char* expected[] = {"2026-07-01 08:00:00 EDT", "1950-01-01 07:00:00 EST",
                            "2026-01-01 07:00:00 EST", "2250-07-01 08:00:00 EDT",
                            "1850-07-01 07:03:58 LMT"};
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < 5; ++i) {
      std::size_t size = ny.format(values[i], out.data(), hint);
      ASSERT_NE(size, std::string_view::npos);
      EXPECT_EQ(out.substr(0, size), expected[i]) << values[i];
    }
  }
}

TEST(TimestampFormat, InputZoneReadsLocalTimes) {
  // Values without an offset written in New York local time, shown in UTC.
  TimestampFormat utc("%F %T", "UTC", "America/New_York");
  EXPECT_EQ(format(utc, "2026-01-10 09:00:00"), "2026-01-10 14:00:00");
  EXPECT_EQ(format(utc, "2026-07-10 09:00:00"), "2026-07-10 13:00:00");
  // A time in the spring gap is read with the offset before the change.
  EXPECT_EQ(format(utc, "2026-03-08 02:30:00"), "2026-03-08 07:30:00");
  // An explicit offset wins over the input zone.
  EXPECT_EQ(format(utc, "2026-07-10 09:00:00Z"), "2026-07-10 09:00:00");
}

TEST(TimestampFormat, DatesAreNotShifted) {
  TimestampFormat la("%d.%m.%Y", "America/Los_Angeles", "UTC");
  EXPECT_EQ(format(la, "2026-01-01"), "01.01.2026");
  EXPECT_EQ(format(la, "2026-01-01 03:00:00Z"), "31.12.2025");
}

TEST(TimestampFormat, EveryConversion) {
  TimestampFormat all("%Y|%y|%m|%d|%e|%j|%H|%I|%p|%M|%S|%f|%b|%B|%a|%A|%s|%E3S|%E*S|%%|%R", "UTC",
                      "UTC");
  EXPECT_EQ(format(all, "2026-02-05T13:04:09.120000Z"),
            "2026|26|02|05| 5|036|13|01|PM|04|09|120000|Feb|February|Thu|Thursday|1770296649|"
            "09.120|09.12|%|13:04");
  EXPECT_EQ(format(all, "2026-12-31T00:00:00Z").substr(0, 36), "2026|26|12|31|31|365|00|12|AM|00|00|");
  TimestampFormat whole("%E*S", "UTC", "UTC");
  EXPECT_EQ(format(whole, "2026-02-05T13:04:09Z"), "09");
  TimestampFormat nanos("%E9S", "UTC", "UTC");
  EXPECT_EQ(format(nanos, "2026-02-05T13:04:09.123456789123Z"), "09.123456789");
}

TEST(TimestampFormat, PassesOnWhatIsNotATimestamp) {
  TimestampFormat f("%F", "UTC", "UTC");
  EXPECT_EQ(format(f, "infinity"), "<unchanged>");
  EXPECT_EQ(format(f, "0044-03-15 BC"), "<unchanged>");
  EXPECT_EQ(format(f, "not a date"), "<unchanged>");
}

TEST(TimestampFormat, RejectsBadPatternsAndZones) {
  EXPECT_THROW(TimestampFormat("%Q", "UTC", "UTC"), TimestampFormatError);
  EXPECT_THROW(TimestampFormat("%", "UTC", "UTC"), TimestampFormatError);
  EXPECT_THROW(TimestampFormat("%Ex", "UTC", "UTC"), TimestampFormatError);
  EXPECT_THROW(TimestampFormat("", "UTC", "UTC"), TimestampFormatError);
  EXPECT_THROW(TimestampFormat("%F", "Mars/Olympus", "UTC"), TimestampFormatError);
  EXPECT_THROW(TimestampFormat("%F", "UTC", "Europe/Nowhere"), TimestampFormatError);
  try {
    TimestampFormat("%F", "Mars/Olympus", "UTC");
  } catch (const TimestampFormatError& error) {
    EXPECT_NE(std::string(error.what()).find("Mars/Olympus"), std::string::npos);
  }
}

TEST(TimestampFormat, ErrorsSayWhichPartIsWrong) {
  using Part = TimestampFormatError::Part;
  auto part_of = [](std::string_view pattern, const std::string& zone, const std::string& input) {
    try {
      TimestampFormat format(pattern, zone, input);
    } catch (const TimestampFormatError& error) {
      return static_cast<int>(error.part());
    }
    return -1;
  };
  // The pattern is checked first, then the zone, then the input zone.
  EXPECT_EQ(part_of("%Q", "Mars/Olympus", "Nowhere/At_All"), static_cast<int>(Part::kPattern));
  EXPECT_EQ(part_of("%F", "Mars/Olympus", "Nowhere/At_All"), static_cast<int>(Part::kZone));
  EXPECT_EQ(part_of("%F", "UTC", "Nowhere/At_All"), static_cast<int>(Part::kInputZone));
  EXPECT_EQ(part_of("%F %Z", "Europe/Berlin", "UTC"), -1);
}

}  // namespace
}  // namespace sluice
