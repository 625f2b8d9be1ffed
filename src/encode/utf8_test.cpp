#include "encode/utf8.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "encode/encoder.hpp"

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

TEST(Utf8Test, RepairReplacesMaximalSubparts) {
  const std::string kFffd = "\xef\xbf\xbd";
  EXPECT_EQ(repaired("ok"), "ok");
  EXPECT_EQ(repaired("a\xff" "b"), "a" + kFffd + "b");
  EXPECT_EQ(repaired("\xe2\x82" "x"), kFffd + "x");  // one truncated sequence, one U+FFFD
  EXPECT_EQ(repaired("\xc0\xaf"), kFffd + kFffd);
  EXPECT_EQ(repaired("\xf0\x9f\x98\x80\xf0\x9f"), "\xf0\x9f\x98\x80" + kFffd);
  EXPECT_EQ(repaired("\xed\xa0\x80"), kFffd + kFffd + kFffd);
}

RowBatch one_column(std::vector<std::string> values) {
  RowBatch batch;
  batch.reset(1);
  for (const auto& v : values) batch.add_value(v);
  return batch;
}

TEST(Utf8Test, EveryFormatReplacesByDefault) {
  const std::vector<Column> columns{{"c", LogicalType::kText}};
  const RowBatch batch = one_column({"a\xff", "ok"});
  for (Format format : {Format::kCsv, Format::kTsv, Format::kJsonLines, Format::kJson}) {
    auto encoder = make_encoder(format, OutputOptions{.header = false});
    ByteBuffer out;
    encoder->begin(columns, out);
    encoder->encode(batch, out);
    encoder->finish(out);
    EXPECT_TRUE(valid_utf8(out.view())) << file_extension(format);
    EXPECT_NE(out.view().find("a\xef\xbf\xbd"), std::string_view::npos) << file_extension(format);
  }
}

TEST(Utf8Test, ASequenceSplitBetweenCellsIsInvalidInBoth) {
  // The arena "a\xc3" "\xa9b" is valid UTF-8 as a whole; each cell is not.
  const std::vector<Column> columns{{"c", LogicalType::kText}};
  auto encoder = make_encoder(Format::kCsv, OutputOptions{.header = false});
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(one_column({"a\xc3", "\xa9" "b"}), out);
  EXPECT_EQ(out.view(), "a\xef\xbf\xbd\r\n\xef\xbf\xbd" "b\r\n");
}

TEST(Utf8Test, FailModeThrows) {
  const std::vector<Column> columns{{"c", LogicalType::kText}};
  auto encoder = make_encoder(Format::kCsv, OutputOptions{.invalid_utf8 = InvalidUtf8::kFail});
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(one_column({"fine é"}), out);
  EXPECT_THROW(encoder->encode(one_column({"x", "\xc3"}), out), Utf8Error);
  EXPECT_EQ(find_invalid_utf8(one_column({"x", "\xc3"}), columns, false), "column 'c', row 2");
  EXPECT_EQ(find_invalid_utf8(one_column({"x", "é"}), columns, false), std::nullopt);
}

TEST(Utf8Test, JsonKeepsBytesColumnsForBase64) {
  const std::vector<Column> columns{{"b", LogicalType::kBytes}};
  auto encoder = make_encoder(Format::kJsonLines, OutputOptions{.invalid_utf8 = InvalidUtf8::kFail});
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(one_column({"\xff\xfe"}), out);
  EXPECT_EQ(out.view(), "{\"b\":\"//4=\"}\n");
  // Text in a bytes column (SQLite) is a JSON string: checked like text (found by fuzz_encoders).
  RowBatch text;
  text.reset(1);
  text.add_value("\xffS", true);
  EXPECT_THROW(encoder->encode(text, out), Utf8Error);
}

TEST(JsonNumbersTest, HugeExponentsBecomeStrings) {
  // Found by fuzz_encoders: Boost.JSON (and other double-based parsers) reject 1e2222222222.
  const std::vector<Column> columns{{"f", LogicalType::kFloat}};
  auto encoder = make_encoder(Format::kJsonLines);
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(one_column({"1e2222222222", "1e999999999", "2E-0000000000005"}), out);
  EXPECT_EQ(out.view(),
            "{\"f\":\"1e2222222222\"}\n{\"f\":1e999999999}\n{\"f\":2E-0000000000005}\n");
}

}  // namespace
}  // namespace sluice
