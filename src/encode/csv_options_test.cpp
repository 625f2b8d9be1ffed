#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "encode/encoder.hpp"

namespace sluice {
namespace {

using Row = std::vector<std::optional<std::string>>;

RowBatch make_batch(std::size_t columns, const std::vector<Row>& rows, bool as_text = false) {
  RowBatch batch;
  batch.reset(columns);
  for (const Row& row : rows) {
    for (const auto& value : row) {
      if (value) {
        batch.add_value(*value, as_text);
      } else {
        batch.add_null();
      }
    }
  }
  return batch;
}

std::string encode(std::unique_ptr<Encoder> encoder, const std::vector<Column>& columns,
                   const RowBatch& batch) {
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(batch, out);
  encoder->finish(out);
  return std::string(out.view());
}

const std::vector<Column> kTextAndInt{{"t", LogicalType::kText}, {"n", LogicalType::kInt}};

TEST(CsvOptionsTest, FormulaGuardIsOnByDefault) {
  const RowBatch batch = make_batch(
      2, {{"=1+2", "-5"}, {"+x", "7"}, {"-y", "-1.5"}, {"@SUM(A1)", "0"}, {"\tz", "1"},
          {"\rw", "2"}, {"a=b", "3"}, {"", "4"}, {std::nullopt, std::nullopt}});
  EXPECT_EQ(encode(make_csv_encoder(), kTextAndInt, batch),
            "t,n\r\n'=1+2,-5\r\n'+x,7\r\n'-y,-1.5\r\n'@SUM(A1),0\r\n'\tz,1\r\n\"'\rw\",2\r\n"
            "a=b,3\r\n\"\",4\r\n,\r\n");
}

TEST(CsvOptionsTest, GuardedFieldsAreQuotedWhenTheyNeedIt) {
  const RowBatch batch = make_batch(2, {{"=HYPERLINK(\"x\",\"y\")", "1"}, {"=a\nb", "2"}});
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.header = false}), kTextAndInt, batch),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\",1\r\n\"'=a\nb\",2\r\n");
}

TEST(CsvOptionsTest, NumericColumnsAreExemptUnlessTheCellIsText) {
  const std::vector<Column> columns{{"i", LogicalType::kInt},
                                    {"d", LogicalType::kDecimal},
                                    {"f", LogicalType::kFloat}};
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.header = false}), columns,
                   make_batch(3, {{"-1", "-2.5", "-1e-3"}})),
            "-1,-2.5,-1e-3\r\n");
  // SQLite may hand a text value in an int column: that one is guarded.
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.header = false}), columns,
                   make_batch(3, {{"=cmd", "-2", "+3"}}, true)),
            "'=cmd,'-2,'+3\r\n");
}

TEST(CsvOptionsTest, GuardAppliesToHeaderNamesAndCanBeTurnedOff) {
  const std::vector<Column> columns{{"=evil", LogicalType::kText}};
  EXPECT_EQ(encode(make_csv_encoder(), columns, make_batch(1, {{"=1"}})), "'=evil\r\n'=1\r\n");
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.formula_guard = false}), columns,
                   make_batch(1, {{"=1"}})),
            "=evil\r\n=1\r\n");
}

TEST(CsvOptionsTest, DelimiterLineEndingBomAndHeader) {
  const RowBatch batch = make_batch(2, {{"a;b", "1"}, {"c,d", "2"}});
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.delimiter = ';'}), kTextAndInt, batch),
            "t;n\r\n\"a;b\";1\r\nc,d;2\r\n");
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.delimiter = '\t', .crlf = false}), kTextAndInt,
                   make_batch(2, {{"x\ty", "1"}})),
            "t\tn\n\"x\ty\"\t1\n");
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.header = false, .bom = true}), kTextAndInt,
                   make_batch(2, {{"x", "1"}})),
            "\xef\xbb\xbfx,1\r\n");
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.bom = true}), kTextAndInt, RowBatch{}),
            "\xef\xbb\xbft,n\r\n");
}

TEST(CsvOptionsTest, DelimiterInsideAGuardedField) {
  EXPECT_EQ(encode(make_csv_encoder(OutputOptions{.delimiter = '|', .header = false}), kTextAndInt,
                   make_batch(2, {{"-a|b", "1"}})),
            "\"'-a|b\"|1\r\n");
}

TEST(CsvRecordsEncoderOptionsTest, GuardsFieldsInsideDatabaseRecords) {
  const std::vector<Column> columns{{"n", LogicalType::kInt},
                                    {"t", LogicalType::kText},
                                    {"u", LogicalType::kText}};
  RowBatch batch;
  batch.reset(1);
  batch.add_value("-1,=a,\"@b,c\"\n");
  batch.add_value("2,\"\"\"=x\",\"-\"\"\"\n");
  batch.add_value(",,\n");
  batch.add_value("3,\"\r=\",+\n");
  EXPECT_EQ(encode(make_csv_records_encoder(), columns, batch),
            "n,t,u\r\n-1,'=a,\"'@b,c\"\r\n2,\"\"\"=x\",\"'-\"\"\"\r\n,,\r\n3,\"'\r=\",'+\r\n");
}

TEST(CsvRecordsEncoderOptionsTest, LfHeaderOffAndBom) {
  const std::vector<Column> columns{{"t", LogicalType::kText}};
  RowBatch batch;
  batch.reset(1);
  batch.add_value("=a\n");
  EXPECT_EQ(encode(make_csv_records_encoder(
                       OutputOptions{.header = false, .crlf = false, .bom = true}),
                   columns, batch),
            "\xef\xbb\xbf'=a\n");
  EXPECT_EQ(encode(make_csv_records_encoder(OutputOptions{.formula_guard = false}), columns, batch),
            "t\r\n=a\r\n");
}

TEST(CsvRecordsEncoderOptionsTest, UsableOnlyWithACommaDelimitedCsv) {
  EXPECT_TRUE(csv_records_usable(Format::kCsv, OutputOptions{}));
  EXPECT_TRUE(csv_records_usable(Format::kCsv, OutputOptions{.header = false, .crlf = false}));
  EXPECT_FALSE(csv_records_usable(Format::kCsv, OutputOptions{.delimiter = ';'}));
  EXPECT_FALSE(csv_records_usable(Format::kTsv, OutputOptions{}));
  EXPECT_FALSE(csv_records_usable(Format::kJson, OutputOptions{}));
}

TEST(TsvEncoderTest, EscapesLikePostgresTextFormat) {
  const std::vector<Column> columns{{"a\tb", LogicalType::kText}, {"n", LogicalType::kInt}};
  const RowBatch batch =
      make_batch(2, {{"x\ty\nz\r\\", "1"}, {"", std::nullopt}, {"=1", "-2"}, {"\\N", "3"}});
  EXPECT_EQ(encode(make_tsv_encoder(), columns, batch),
            "a\\tb\tn\nx\\ty\\nz\\r\\\\\t1\n\t\\N\n=1\t-2\n\\\\N\t3\n");
  EXPECT_EQ(encode(make_tsv_encoder(OutputOptions{.header = false}), columns,
                   make_batch(2, {{"p", "1"}})),
            "p\t1\n");
}

TEST(TsvEncoderTest, LongValuesWithEscapes) {
  std::string value(200000, 'v');
  value[5] = '\t';
  value[150000] = '\\';
  std::string expected = value.substr(0, 5) + "\\t" + value.substr(6, 150000 - 6) + "\\\\" +
                         value.substr(150001) + "\tok\n";
  const std::vector<Column> columns{{"a", LogicalType::kText}, {"b", LogicalType::kText}};
  EXPECT_EQ(encode(make_tsv_encoder(OutputOptions{.header = false}), columns,
                   make_batch(2, {{value, "ok"}})),
            expected);
}

TEST(JsonArrayEncoderTest, RowsSeparatedByCommaAndNewline) {
  const std::vector<Column> columns{{"n", LogicalType::kInt}, {"s", LogicalType::kText}};
  auto encoder = make_json_array_encoder();
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(make_batch(2, {{"1", "a"}, {"2", std::nullopt}}), out);
  encoder->encode(make_batch(2, {}), out);
  encoder->encode(make_batch(2, {{"3", "\"q\""}}), out);
  encoder->finish(out);
  EXPECT_EQ(out.view(),
            "[\n{\"n\":1,\"s\":\"a\"},\n{\"n\":2,\"s\":null},\n{\"n\":3,\"s\":\"\\\"q\\\"\"}\n]\n");
}

TEST(JsonArrayEncoderTest, EmptyResultIsAnEmptyArray) {
  EXPECT_EQ(encode(make_json_array_encoder(), kTextAndInt, RowBatch{}), "[]\n");
  EXPECT_EQ(encode(make_encoder(Format::kJson), kTextAndInt, make_batch(2, {})), "[]\n");
}

}  // namespace
}  // namespace sluice
