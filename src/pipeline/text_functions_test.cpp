#include "pipeline/text_functions.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

std::string rounded(std::string_view text, int places) {
  std::string out(round_decimal_max_size(text, places), '\0');
  std::size_t size = round_decimal(text, places, out.data());
  if (size == std::string_view::npos) return "<unchanged>";
  out.resize(size);
  return out;
}

TEST(RoundDecimal, HalfAwayFromZeroOnTheDigits) {
  EXPECT_EQ(rounded("9.995", 2), "10.00");
  EXPECT_EQ(rounded("-9.995", 2), "-10.00");
  EXPECT_EQ(rounded("1.005", 2), "1.01");  // as a double this is 1.00499999...
  EXPECT_EQ(rounded("2.5", 0), "3");
  EXPECT_EQ(rounded("-2.5", 0), "-3");
  EXPECT_EQ(rounded("-0.005", 2), "-0.01");
  EXPECT_EQ(rounded("-0.004", 2), "0.00");  // no negative zero
  EXPECT_EQ(rounded("0", 2), "0.00");
  EXPECT_EQ(rounded("12", 3), "12.000");
  EXPECT_EQ(rounded("999.9999", 3), "1000.000");
  EXPECT_EQ(rounded("007.50", 1), "7.5");
  EXPECT_EQ(rounded(".5", 0), "1");
  EXPECT_EQ(rounded("5.", 1), "5.0");
  EXPECT_EQ(rounded("+1.25", 1), "1.3");
  EXPECT_EQ(rounded("123456789012345678901234567890.555", 2), "123456789012345678901234567890.56");
}

TEST(RoundDecimal, Exponents) {
  EXPECT_EQ(rounded("1e3", 2), "1000.00");
  EXPECT_EQ(rounded("1.5E-3", 3), "0.002");
  EXPECT_EQ(rounded("-4.9e-1", 0), "0");
  EXPECT_EQ(rounded("1.7976931348623157e308", 0).size(), 309u);
  EXPECT_EQ(rounded("5e-324", 2), "0.00");
}

TEST(RoundDecimal, LeavesNonNumbersAlone) {
  for (std::string_view bad : {"", "-", ".", "NaN", "Infinity", "-Infinity", "1e", "1e+", "1.2.3",
                               "12a", " 12", "1e999", "0x10", "--1"}) {
    EXPECT_EQ(rounded(bad, 2), "<unchanged>") << bad;
  }
}

TEST(CodePoints, CountAndCutOnBoundaries) {
  EXPECT_EQ(count_code_points("héllo 😀"), 7u);
  EXPECT_EQ(first_code_points("héllo", 2), "hé");
  EXPECT_EQ(first_code_points("😀😀😀", 2), "😀😀");
  EXPECT_EQ(first_code_points("ab", 5), "ab");
  // An invalid byte counts as one character and is never split from nothing.
  EXPECT_EQ(count_code_points("a\xff" "b"), 3u);
  EXPECT_EQ(first_code_points("\xe2\x82", 1), "\xe2");
  // The project's UTF-8 rules (encode/utf8): an overlong form or a surrogate is no character.
  EXPECT_EQ(count_code_points("\xe0\x80\x80"), 3u);
  EXPECT_EQ(count_code_points("\xed\xa0\x80"), 3u);
  EXPECT_EQ(count_code_points("\xf4\x90\x80\x80"), 4u);  // above U+10FFFF
}

std::string masked_email(std::string_view text) {
  std::string out(mask_email_max_size(text), '\0');
  out.resize(mask_email(text, out.data()));
  return out;
}

std::string masked_last(std::string_view text, std::size_t keep) {
  std::string out(text.size(), '\0');
  out.resize(mask_keep_last(text, keep, out.data()));
  return out;
}

TEST(Masks, Email) {
  EXPECT_EQ(masked_email("john.doe@example.com"), "j***@example.com");
  EXPECT_EQ(masked_email("élodie@exemple.fr"), "é***@exemple.fr");
  EXPECT_EQ(masked_email("\"a@b\"@example.com"), "\"***@example.com");  // the last '@' splits
  EXPECT_EQ(masked_email("@example.com"), "***");
  EXPECT_EQ(masked_email("no address"), "***");
  EXPECT_EQ(masked_email(""), "***");
}

TEST(Masks, KeepLast) {
  EXPECT_EQ(masked_last("4111111111111111", 4), "************1111");
  EXPECT_EQ(masked_last("Zürich", 2), "****ch");
  EXPECT_EQ(masked_last("1234", 4), "****");  // short values never come out in clear
  EXPECT_EQ(masked_last("12", 4), "**");
  EXPECT_EQ(masked_last("", 4), "");
  EXPECT_EQ(masked_last("ab😀", 1), "**😀");
}

std::string upper(std::string_view text) {
  std::string out(change_case_max_size(text), '\0');
  out.resize(to_upper(text, out.data()));
  return out;
}
std::string lower(std::string_view text) {
  std::string out(change_case_max_size(text), '\0');
  out.resize(to_lower(text, out.data()));
  return out;
}

TEST(Case, UnicodeSimpleMappings) {
  EXPECT_EQ(upper("straße münchen"), "STRAßE MÜNCHEN");  // ß has no one-letter capital
  EXPECT_EQ(lower("ÀÉÎÕÜ ΑΒΓ ДЖ"), "àéîõü αβγ дж");
  EXPECT_EQ(upper("abc 123 😀"), "ABC 123 😀");
  EXPECT_EQ(upper("a\xff" "b"), "A\xff" "B");  // invalid bytes pass as they are
  EXPECT_EQ(upper("\xc9\x90"), "\xe2\xb1\xaf");  // ɐ → Ɐ grows from 2 to 3 bytes
}

}  // namespace
}  // namespace sluice
