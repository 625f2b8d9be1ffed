#include "http/content_disposition.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

TEST(ContentDispositionTest, PlainNameIsQuotedAsIs) {
  EXPECT_EQ(content_disposition("orders.csv"), R"(attachment; filename="orders.csv")");
  EXPECT_EQ(content_disposition("my orders-2024_01.jsonl"),
            R"(attachment; filename="my orders-2024_01.jsonl")");
}

TEST(ContentDispositionTest, NonAsciiGetsAnAsciiFallbackAndRfc5987Name) {
  EXPECT_EQ(content_disposition("Bestellungen-M\xC3\xA4rz.csv"),
            "attachment; filename=\"Bestellungen-M__rz.csv\"; "
            "filename*=UTF-8''Bestellungen-M%C3%A4rz.csv");
  // In filename* a space is not an attr-char and must be percent-encoded.
  EXPECT_EQ(content_disposition("M\xC3\xA4rz orders.csv"),
            "attachment; filename=\"M__rz orders.csv\"; filename*=UTF-8''M%C3%A4rz%20orders.csv");
}

TEST(ContentDispositionTest, QuotesAndLineBreaksCannotInjectHeaders) {
  EXPECT_EQ(content_disposition("a\"b.csv"),
            "attachment; filename=\"a_b.csv\"; filename*=UTF-8''a%22b.csv");
  EXPECT_EQ(content_disposition("a\r\nX-Evil: 1.csv"),
            "attachment; filename=\"a__X-Evil_ 1.csv\"; filename*=UTF-8''a%0D%0AX-Evil%3A%201.csv");
  EXPECT_EQ(content_disposition("a\\b;c.csv"),
            "attachment; filename=\"a_b_c.csv\"; filename*=UTF-8''a%5Cb%3Bc.csv");

  for (const std::string& name :
       {std::string("x\"\r\n\"y.csv"), std::string("\"; filename=evil.exe"),
        std::string("\xE2\x80\xA8\x7F\x01.csv"), std::string("a\0b.csv", 7)}) {
    std::string header = content_disposition(name);
    EXPECT_EQ(header.find('\r'), std::string::npos) << header;
    EXPECT_EQ(header.find('\n'), std::string::npos) << header;
    EXPECT_EQ(header.find('\0'), std::string::npos) << header;
    // Exactly the two quotes around the fallback.
    EXPECT_EQ(std::count(header.begin(), header.end(), '"'), 2) << header;
    for (char c : header) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7F) << "byte " << static_cast<int>(c) << " in " << header;
    }
  }
}

}  // namespace
}  // namespace sluice
