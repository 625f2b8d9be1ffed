#include "encode/utf8_check.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/utf8.hpp"
#include "encode/encoder.hpp"

namespace sluice {
namespace {

using namespace std::string_literals;

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

TEST(Utf8Test, ACsvRecordNamesTheFieldThatIsNotUtf8) {
  // PostgreSQL's COPY CSV passed through: one cell per row holding the whole record.
  const std::vector<Column> columns{{"id", LogicalType::kInt}, {"t", LogicalType::kText},
                                    {"u", LogicalType::kText}};
  EXPECT_EQ(find_invalid_utf8(one_column({"1,a,b", "2,\"x,\xff\",c"}), columns, false, true),
            "column 't', row 2");
  EXPECT_EQ(find_invalid_utf8(one_column({"1,\"a\"\"\",\xfe"}), columns, false, true),
            "column 'u', row 1");
  EXPECT_EQ(find_invalid_utf8(one_column({"1,é,\"\""}), columns, false, true), std::nullopt);
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
