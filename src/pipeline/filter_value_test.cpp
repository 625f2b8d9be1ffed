#include "pipeline/filter_value.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <variant>

namespace sluice {
namespace {

using namespace std::string_literals;

std::optional<BoundValue> parse(FilterType type, std::string_view text) {
  return parse_filter_value(type, text);
}

// The accepted value as the variant alternative T; fails the test when it is not one.
template <typename T>
T value_as(FilterType type, std::string_view text) {
  std::optional<BoundValue> value = parse(type, text);
  if (!value.has_value()) {
    ADD_FAILURE() << "'" << text << "' was rejected";
    return T{};
  }
  if (!std::holds_alternative<T>(*value)) {
    ADD_FAILURE() << "'" << text << "' parsed as variant index " << value->index();
    return T{};
  }
  return std::get<T>(*value);
}

void expect_rejected(FilterType type, std::string_view text) {
  EXPECT_EQ(parse(type, text), std::nullopt)
      << "'" << text << "' should be rejected as " << to_string(type);
}

// ---- int ----------------------------------------------------------------------------------

TEST(FilterValueTest, IntAcceptsDecimalInt64) {
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kInt, "0"), 0);
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kInt, "42"), 42);
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kInt, "-17"), -17);
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kInt, "007"), 7);
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kInt, "9223372036854775807"),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kInt, "-9223372036854775808"),
            std::numeric_limits<std::int64_t>::min());
}

TEST(FilterValueTest, IntRejectsOverflowSignsSpacesAndOtherBases) {
  expect_rejected(FilterType::kInt, "9223372036854775808");
  expect_rejected(FilterType::kInt, "-9223372036854775809");
  expect_rejected(FilterType::kInt, "99999999999999999999999");
  expect_rejected(FilterType::kInt, "+1");
  expect_rejected(FilterType::kInt, " 1");
  expect_rejected(FilterType::kInt, "1 ");
  expect_rejected(FilterType::kInt, "");
  expect_rejected(FilterType::kInt, "-");
  expect_rejected(FilterType::kInt, "0x10");
  expect_rejected(FilterType::kInt, "1.0");
  expect_rejected(FilterType::kInt, "1e3");
  expect_rejected(FilterType::kInt, "1,2");
  expect_rejected(FilterType::kInt, "12a");
  expect_rejected(FilterType::kInt, "1\0"s);
}

// ---- float --------------------------------------------------------------------------------

TEST(FilterValueTest, FloatAcceptsFiniteNumbers) {
  EXPECT_EQ(value_as<double>(FilterType::kFloat, "1e3"), 1000.0);
  EXPECT_EQ(value_as<double>(FilterType::kFloat, "-2.5"), -2.5);
  EXPECT_EQ(value_as<double>(FilterType::kFloat, "0"), 0.0);
  EXPECT_EQ(value_as<double>(FilterType::kFloat, "12"), 12.0);
  EXPECT_EQ(value_as<double>(FilterType::kFloat, "1.5E-3"), 0.0015);
  EXPECT_EQ(value_as<double>(FilterType::kFloat, "1.7976931348623157e308"),
            std::numeric_limits<double>::max());
}

TEST(FilterValueTest, FloatRejectsNonFiniteAndMalformed) {
  for (const char* text : {"nan", "NaN", "-nan", "inf", "-inf", "Infinity", "INF", "1e999",
                           "-1e999", "+1", " 1", "1 ", "", "-", "0x10", "1e", "1.2.3", "1,5"}) {
    expect_rejected(FilterType::kFloat, text);
  }
}

// ---- decimal ------------------------------------------------------------------------------

TEST(FilterValueTest, DecimalAcceptsSignedDigitsWithOptionalFraction) {
  EXPECT_EQ(value_as<std::string>(FilterType::kDecimal, "-12.50"), "-12.50");
  EXPECT_EQ(value_as<std::string>(FilterType::kDecimal, "0"), "0");
  EXPECT_EQ(value_as<std::string>(FilterType::kDecimal, "100"), "100");
  EXPECT_EQ(value_as<std::string>(FilterType::kDecimal, "0.25"), "0.25");
  // Digits a double would lose survive.
  EXPECT_EQ(value_as<std::string>(FilterType::kDecimal, "12345678901234567890.123456789"),
            "12345678901234567890.123456789");
  // 38 integer digits is the limit (NUMERIC(38) in most databases).
  EXPECT_TRUE(parse(FilterType::kDecimal, std::string(38, '9')).has_value());
  expect_rejected(FilterType::kDecimal, std::string(39, '9'));
}

TEST(FilterValueTest, DecimalRejectsPartialForms) {
  for (const char* text : {"1.", ".5", "-.5", "1e3", "+1", "-", "", " 1", "1 ", "1,5", "nan", "inf",
                           "0x10", "1..2", "--1", "1-"}) {
    expect_rejected(FilterType::kDecimal, text);
  }
}

// ---- bool ---------------------------------------------------------------------------------

TEST(FilterValueTest, BoolAcceptsTrueFalseOneZero) {
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kBool, "true"), 1);
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kBool, "1"), 1);
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kBool, "false"), 0);
  EXPECT_EQ(value_as<std::int64_t>(FilterType::kBool, "0"), 0);
}

TEST(FilterValueTest, BoolRejectsEverythingElse) {
  for (const char* text : {"TRUE", "True", "FALSE", "yes", "no", "t", "f", "2", "-1", "", " true",
                           "true ", "01", "on"}) {
    expect_rejected(FilterType::kBool, text);
  }
}

// ---- date ---------------------------------------------------------------------------------

TEST(FilterValueTest, DateAcceptsValidCalendarDaysIncludingLeapDays) {
  EXPECT_EQ(value_as<std::string>(FilterType::kDate, "2024-02-29"), "2024-02-29");
  EXPECT_EQ(value_as<std::string>(FilterType::kDate, "2000-02-29"), "2000-02-29");
  EXPECT_EQ(value_as<std::string>(FilterType::kDate, "2025-03-04"), "2025-03-04");
  EXPECT_EQ(value_as<std::string>(FilterType::kDate, "1999-12-31"), "1999-12-31");
  EXPECT_EQ(value_as<std::string>(FilterType::kDate, "2023-01-31"), "2023-01-31");
  EXPECT_EQ(value_as<std::string>(FilterType::kDate, "2023-02-28"), "2023-02-28");
}

TEST(FilterValueTest, DateRejectsImpossibleDaysAndOtherShapes) {
  for (const char* text : {"2023-02-29", "2100-02-29", "1900-02-29", "2024-02-30", "2024-04-31",
                           "2024-13-01", "2024-00-10", "2024-01-00", "2024-01-32", "2024-1-01",
                           "2024-01-1", "24-01-01", "2024/01/01", "2024-01-01 ", " 2024-01-01",
                           "2024-01-01T00:00", "", "abcd-ef-gh", "+024-01-01"}) {
    expect_rejected(FilterType::kDate, text);
  }
}

// ---- timestamp ----------------------------------------------------------------------------

TEST(FilterValueTest, TimestampAcceptsEveryDocumentedForm) {
  for (const char* text :
       {"2025-03-04", "2025-03-04T12:00", "2025-03-04 12:00", "2025-03-04T12:00:59",
        "2025-03-04 23:59:59", "2025-03-04T00:00:00.1", "2025-03-04T00:00:00.123",
        "2025-03-04T00:00:00.123456789", "2025-03-04T12:00Z", "2025-03-04T12:00:00Z",
        "2025-03-04T12:00:00.5Z", "2025-03-04T12:00+05:30", "2025-03-04T12:00:00-08:00",
        "2025-03-04T12:00:00.000001+14:00", "2024-02-29T10:00"}) {
    EXPECT_EQ(value_as<std::string>(FilterType::kTimestamp, text), text);
  }
}

TEST(FilterValueTest, TimestampRejectsBadTimesZonesAndFractions) {
  for (const char* text : {
           "2025-03-04T24:00",                // hour 24
           "2025-03-04T23:60",                // minute 60
           "2025-03-04T12:00:61",             // second 61
           "2025-03-04T12",                   // minutes missing
           "2025-03-04T1:00",                 // one-digit hour
           "2025-03-04T12:0",                 // one-digit minute
           "2025-03-04T",                     // nothing after T
           "2025-03-04t12:00",                // lower-case t
           "2025-03-04X12:00",                // wrong separator
           "2025-03-04T12:00:00.",            // empty fraction
           "2025-03-04T12:00:00.1234567890",  // 10 fraction digits
           "2025-03-04T12:00.5",              // fraction without seconds
           "2025-03-04T12:00:00z",            // lower-case zone
           "2025-03-04T12:00:00+0530",        // zone without colon
           "2025-03-04T12:00:00+5:30",        // one-digit zone hour
           "2025-03-04T12:00:00+05:3",        // one-digit zone minute
           "2025-03-04T12:00:00+15:00",       // beyond +14:00
           "2025-03-04T12:00:00+05:60",       // zone minute 60
           "2025-03-04T12:00:00 Z",           // space before zone
           "2025-03-04T12:00:00Z ",           // trailing space
           "2025-03-04T12:00:00CET",          // named zone
           "2025-03-04Z",                     // zone without a time
           "2023-02-29T00:00",                // not a leap year
           "2025-13-04T12:00",                // month 13
           "",
       }) {
    expect_rejected(FilterType::kTimestamp, text);
  }
}

// ---- text ---------------------------------------------------------------------------------

TEST(FilterValueTest, TextAcceptsUtf8UpTo4096Bytes) {
  EXPECT_EQ(value_as<std::string>(FilterType::kText, ""), "");
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "DE"), "DE");
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "DE' OR 1=1 --"), "DE' OR 1=1 --");
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "Łódź"), "Łódź");
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "\xE2\x82\xAC"), "\xE2\x82\xAC");  // €
  // NUL cannot be stored in PostgreSQL text and would cut the bound C string short.
  expect_rejected(FilterType::kText, "plain\0zzz"s);
  expect_rejected(FilterType::kText, "\0"s);
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "\xF0\x9F\x98\x80"),
            "\xF0\x9F\x98\x80");  // U+1F600
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "\xF4\x8F\xBF\xBF"),
            "\xF4\x8F\xBF\xBF");  // U+10FFFF, the largest code point
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "\xEF\xBF\xBF"), "\xEF\xBF\xBF");  // U+FFFF
  EXPECT_EQ(value_as<std::string>(FilterType::kText, "\xED\x9F\xBF"),
            "\xED\x9F\xBF");  // U+D7FF, just below the surrogates

  std::string max(4096, 'a');
  EXPECT_EQ(value_as<std::string>(FilterType::kText, max), max);
  expect_rejected(FilterType::kText, std::string(4097, 'a'));
  // The limit counts bytes, not characters: 4094 + a 2-byte 'é' = 4096 fits, 4095 + 2 does not.
  EXPECT_TRUE(parse(FilterType::kText, std::string(4094, 'a') + "\xC3\xA9").has_value());
  expect_rejected(FilterType::kText, std::string(4095, 'a') + "\xC3\xA9");
}

TEST(FilterValueTest, TextRejectsInvalidUtf8) {
  for (const std::string& text : {
           "\xC0\xAF"s,              // overlong '/'
           "\xC1\xBF"s,              // overlong 2-byte
           "\xE0\x80\xAF"s,          // overlong 3-byte
           "\xF0\x80\x80\xAF"s,      // overlong 4-byte
           "\xED\xA0\x80"s,          // U+D800, a surrogate
           "\xED\xBF\xBF"s,          // U+DFFF, a surrogate
           "\xF4\x90\x80\x80"s,      // U+110000
           "\xF5\x80\x80\x80"s,      // lead byte beyond U+10FFFF
           "\xF8\x88\x80\x80\x80"s,  // 5-byte form
           "\xE2\x82"s,              // truncated at the end
           "a\xC3"s,                 // truncated 2-byte sequence
           "\xE2\x82z"s,             // truncated by an ASCII byte
           "\x80"s,                  // lone continuation byte
           "abc\xBF"s,               // continuation byte after ASCII
           "\xFE"s,
           "\xFF"s,
       }) {
    EXPECT_EQ(parse(FilterType::kText, text), std::nullopt)
        << "invalid UTF-8 accepted, " << text.size() << " bytes";
  }
}

TEST(FilterValueTest, EverySyntaxDescriptionIsDistinct) {
  const FilterType types[] = {FilterType::kInt,      FilterType::kDecimal, FilterType::kFloat,
                              FilterType::kText,     FilterType::kBool,    FilterType::kDate,
                              FilterType::kTimestamp};
  EXPECT_EQ(filter_value_syntax(FilterType::kInt), "an integer");
  EXPECT_EQ(filter_value_syntax(FilterType::kBool), "true, false, 1 or 0");
  for (FilterType a : types) {
    EXPECT_FALSE(filter_value_syntax(a).empty());
    for (FilterType b : types) {
      if (a != b) {
        EXPECT_NE(filter_value_syntax(a), filter_value_syntax(b));
      }
    }
  }
}

}  // namespace
}  // namespace sluice
