#include "core/utf8.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

using namespace std::string_literals;

std::string repaired(std::string_view text) {
  std::string out(3 * text.size(), '\0');
  out.resize(static_cast<std::size_t>(write_repaired_utf8(text, out.data()) - out.data()));
  return out;
}

TEST(Utf8Test, AsciiScan) {
  EXPECT_TRUE(is_ascii(""));
  EXPECT_TRUE(is_ascii(std::string(1000, 'a')));
  std::string late(1000, 'a');
  late[999] = '\x80';
  EXPECT_FALSE(is_ascii(late));
  late[999] = 'a';
  late[70] = '\xff';
  EXPECT_FALSE(is_ascii(late));
}

TEST(Utf8Test, Validation) {
  EXPECT_TRUE(valid_utf8("plain é 😀 \0"s));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(valid_utf8("abc\xe2\x82"));       // truncated
  EXPECT_FALSE(valid_utf8(std::string(40, 'a') + "\xff"));
}

// valid_utf8 against a byte-by-byte walk with the same rules, for sequences (valid, truncated,
// overlong, stray continuation bytes) at every offset of a 16- and a 64-byte block and at the end.
TEST(Utf8Test, ValidationAtEveryOffsetMatchesTheScalarRules) {
  auto scalar = [](std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t length = utf8_sequence_length(text, i);
      if (length == 0) return false;
      i += length;
    }
    return true;
  };
  const std::string pieces[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc3",
                                "\xe2\x82",  "\x80",         "\xc0\xaf",         "\xff"};
  for (const std::string& piece : pieces) {
    for (std::size_t before = 0; before < 140; ++before) {
      for (std::size_t after : {0, 1, 15, 16, 17, 63, 64, 65}) {
        const std::string text = std::string(before, 'a') + piece + std::string(after, 'b');
        ASSERT_EQ(valid_utf8(text), scalar(text)) << before << " " << after;
        const std::string twice = text + piece + "c";
        ASSERT_EQ(valid_utf8(twice), scalar(twice)) << before << " " << after;
      }
    }
  }
}

TEST(Utf8Test, ShownTextIsValidUtf8WithoutControlsAndCutAtACharacter) {
  EXPECT_EQ(shown_text("plain"), "plain");
  EXPECT_EQ(shown_text(std::string_view("a\0b\n", 4)), "a\\x00b\\x0A");
  EXPECT_EQ(shown_text("\xff\xc3"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(shown_text("ab\xC3\xA9" "cd", 3), "ab\xC3\xA9");  // never half a character
  EXPECT_EQ(shown_text(std::string(100, 'x')).size(), 64u);
}

TEST(Utf8Test, RepairReplacesMaximalSubparts) {
  const std::string kFffd = "\xef\xbf\xbd";
  EXPECT_EQ(repaired("ok"), "ok");
  EXPECT_EQ(repaired("a\xff" "b"), "a" + kFffd + "b");
  EXPECT_EQ(repaired("\xe2\x82" "x"), kFffd + "x");  // one truncated sequence, one U+FFFD
  EXPECT_EQ(repaired("\xc0\xaf"), kFffd + kFffd);
  EXPECT_EQ(repaired("\xf0\x9f\x98\x80\xf0\x9f"), "\xf0\x9f\x98\x80" + kFffd);
  EXPECT_EQ(repaired("\xed\xa0\x80"), kFffd + kFffd + kFffd);
}

}  // namespace
}  // namespace sluice
