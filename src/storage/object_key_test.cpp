#include "storage/object_key.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

TEST(ObjectKeyTest, AcceptsPlainAndUnicodeKeys) {
  for (const char* key : {"a", "album/IMG_0001.jpg", "docs/notes v2.txt", "Überraschung/東京.png",
                          "a/b/c/d/e", "..hidden-not-dotdot", "a/.profile"}) {
    EXPECT_EQ(key_problem(key), std::nullopt) << key;
  }
}

TEST(ObjectKeyTest, RejectsHostileKeysNamingTheProblem) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "empty"},
      {"/etc/passwd", "starts with '/'"},
      {"../secret", "'..'"},
      {"a/../../b", "'..'"},
      {"a/./b", "'.'"},
      {"a//b", "empty path segment"},
      {"a/", "ends with '/'"},
      {std::string("a\0b", 3), "control character"},
      {"a\nb", "control character"},
      {"a\\b", "backslash"},
      {"\xff\xfe", "UTF-8"},
      {"\xc0\xaf", "UTF-8"},            // overlong '/'
      {"\xed\xa0\x80", "UTF-8"},        // a surrogate
      {std::string(1025, 'a'), "longer than 1024"},
      {std::string(256, 'a'), "segment longer than 255"},
  };
  for (const auto& [key, problem] : cases) {
    auto found = key_problem(key);
    ASSERT_TRUE(found.has_value()) << key;
    EXPECT_NE(found->find(problem), std::string::npos) << key << ": " << *found;
  }
}

TEST(ObjectKeyTest, PrefixesMayBeEmptyOrEndWithSlash) {
  EXPECT_EQ(prefix_problem(""), std::nullopt);
  EXPECT_EQ(prefix_problem("album/"), std::nullopt);
  EXPECT_EQ(prefix_problem("album/IMG_"), std::nullopt);
  EXPECT_NE(prefix_problem("../"), std::nullopt);
  EXPECT_NE(prefix_problem("/album/"), std::nullopt);
  EXPECT_NE(prefix_problem("a//b/"), std::nullopt);
}

TEST(ObjectKeyTest, ReservedPrefix) {
  EXPECT_TRUE(is_reserved_key(".sluice/archives/x.json"));
  EXPECT_TRUE(is_reserved_key(".sluice"));
  EXPECT_FALSE(is_reserved_key(".sluicey/x"));
  EXPECT_FALSE(is_reserved_key("album/.sluice/x"));
}

TEST(ObjectKeyTest, KeysAreUtf8) {
  EXPECT_FALSE(key_problem("plain"));
  EXPECT_FALSE(key_problem("\xf0\x9f\x93\xa6"));                         // U+1F4E6
  EXPECT_EQ(key_problem("a\xf4\x90\x80\x80"), "is not valid UTF-8");  // beyond U+10FFFF
  EXPECT_EQ(key_problem("\xe2\x82"), "is not valid UTF-8");               // truncated
}

}  // namespace
}  // namespace sluice
