#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "encode/encoder.hpp"

namespace sluice {
namespace {

TEST(CsvRecordsEncoderTest, WritesTheHeaderThenRecordsWithCrlf) {
  std::vector<Column> columns{{"id", LogicalType::kInt}, {"note, quoted", LogicalType::kText}};
  auto encoder = make_csv_records_encoder();
  ByteBuffer out;
  encoder->begin(columns, out);
  RowBatch batch;
  batch.reset(1);
  batch.add_value("1,\"a\nb\"\n");  // LF inside quotes is data; only the last one ends the record
  batch.add_value("2,\n");
  batch.add_value("3,\"\"");         // no LF at the end: still one record
  encoder->encode(batch, out);
  encoder->finish(out);
  EXPECT_EQ(out.view(), "id,\"note, quoted\"\r\n1,\"a\nb\"\r\n2,\r\n3,\"\"\r\n");
}

std::string records_output(const std::vector<Column>& columns, const std::vector<std::string>& records,
                           const OutputOptions& options = {}) {
  auto encoder = make_csv_records_encoder(options);
  ByteBuffer out;
  encoder->begin(columns, out);
  RowBatch batch;
  batch.reset(1);
  for (const std::string& record : records) batch.add_value(record);
  encoder->encode(batch, out);
  encoder->finish(out);
  return std::string(out.view());
}

TEST(CsvRecordsEncoderTest, GuardsTheFirstByteOfTextFieldsOnly) {
  const std::vector<Column> columns{{"n", LogicalType::kDecimal}, {"a", LogicalType::kText},
                                    {"b", LogicalType::kText}};
  const OutputOptions no_header{.header = false};
  auto one = [&](const std::string& record) { return records_output(columns, {record}, no_header); };
  EXPECT_EQ(one("-1,=A1,@b\n"), "-1,'=A1,'@b\r\n");  // numeric '-' kept
  EXPECT_EQ(one("1,+x,\"-a,b\"\n"), "1,'+x,\"'-a,b\"\r\n");
  EXPECT_EQ(one("1,\"\tt\",\"\rr\"\n"), "1,\"'\tt\",\"'\rr\"\r\n");
  EXPECT_EQ(one("1,a-b,c=d\n"), "1,a-b,c=d\r\n");        // not at the start: no guard
  EXPECT_EQ(one("1,\"a,=b\",\"x\"\"-y\"\n"), "1,\"a,=b\",\"x\"\"-y\"\r\n");  // inside quotes
  EXPECT_EQ(one("1,,\"\"\n"), "1,,\"\"\r\n");            // NULL and ''
  EXPECT_EQ(one("1,\"\",=\n"), "1,\"\",'=\r\n");          // the last field
  EXPECT_EQ(one("1,caf\xc3\xa9,\xc3\xa9-\n"), "1,caf\xc3\xa9,\xc3\xa9-\r\n");
  const std::string long_tail = std::string(40, 'x') + ",-" + std::string(30, 'y');
  EXPECT_EQ(one("1," + long_tail + "\n"), "1," + std::string(40, 'x') + ",'-" +
                                             std::string(30, 'y') + "\r\n");
  // With the guard off, records pass through unchanged.
  EXPECT_EQ(records_output(columns, {"-1,=A1,@b\n"}, OutputOptions{.header = false,
                                                                     .formula_guard = false}),
            "-1,=A1,@b\r\n");
}

// The records path promises the bytes the CSV encoder writes for the same rows: random cells
// full of delimiters, quotes, line breaks and formula bytes at every position, as PostgreSQL's
// COPY CSV would write them (our encoder without guard, LF, no header), through both paths.
TEST(CsvRecordsEncoderTest, RandomRecordsMatchTheCsvEncoder) {
  const std::vector<Column> columns{{"id", LogicalType::kInt},   {"t", LogicalType::kTimestamp},
                                    {"a", LogicalType::kText},   {"n", LogicalType::kDecimal},
                                    {"b", LogicalType::kText},   {"c", LogicalType::kText}};
  const std::string alphabet[] = {"a", "b", "1", ",", "\"", "\n", "\r", "\t", "=",
                                  "+", "-", "@", " ", "\xc3\xa9", "x", "y"};
  std::mt19937 rng(11);
  RowBatch rows;
  rows.reset(columns.size());
  for (int row = 0; row < 3000; ++row) {
    for (std::size_t col = 0; col < columns.size(); ++col) {
      const unsigned kind = rng() % 10;
      if (kind == 0) {
        rows.add_null();
        continue;
      }
      std::string value;
      const unsigned length = kind == 1 ? 0 : rng() % (kind < 8 ? 6 : 40);
      for (unsigned i = 0; i < length; ++i) value += alphabet[rng() % std::size(alphabet)];
      rows.add_value(value);
    }
  }
  auto postgres = make_csv_encoder(OutputOptions{.header = false, .crlf = false,
                                                 .formula_guard = false});
  ByteBuffer pg_out;
  postgres->begin(columns, pg_out);
  RowBatch records;
  records.reset(1);
  for (std::size_t row = 0; row < rows.rows(); ++row) {
    RowBatch one;
    one.reset(columns.size());
    one.add_row_from(rows, row);
    pg_out.clear();
    postgres->encode(one, pg_out);
    records.add_value(pg_out.view());
  }
  for (const bool crlf : {true, false}) {
    const OutputOptions options{.crlf = crlf};
    auto direct = make_encoder(Format::kCsv, options);
    ByteBuffer expected;
    direct->begin(columns, expected);
    direct->encode(rows, expected);
    auto passed = make_csv_records_encoder(options);
    ByteBuffer actual;
    passed->begin(columns, actual);
    passed->encode(records, actual);
    ASSERT_EQ(actual.view(), expected.view()) << crlf;
  }
}

}  // namespace
}  // namespace sluice
