#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "encode/encoder.hpp"

namespace sluice {
namespace {

using namespace std::string_literals;
using Row = std::vector<std::optional<std::string>>;

RowBatch make_batch(std::size_t columns, const std::vector<Row>& rows) {
  RowBatch batch;
  batch.reset(columns);
  for (const Row& row : rows) {
    for (const auto& value : row) {
      if (value) {
        batch.add_value(*value);
      } else {
        batch.add_null();
      }
    }
  }
  return batch;
}

std::vector<Column> text_columns(std::vector<std::string> names) {
  std::vector<Column> columns;
  columns.reserve(names.size());
  for (auto& name : names) columns.push_back(Column{std::move(name), LogicalType::kText});
  return columns;
}

std::string encode_csv(const std::vector<Column>& columns, const std::vector<Row>& rows,
                       bool header = true) {
  // The formula guard has its own tests (csv_options_test.cpp); these check RFC 4180 quoting.
  auto encoder = make_csv_encoder(OutputOptions{.header = header, .formula_guard = false});
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(make_batch(columns.size(), rows), out);
  encoder->finish(out);
  return std::string(out.view());
}

// The straightforward RFC 4180 rendering the fast paths must agree with.
std::string reference_field(const std::optional<std::string>& value) {
  if (!value) return "";
  if (value->empty()) return "\"\"";
  if (value->find_first_of(",\"\r\n") == std::string::npos) return *value;
  std::string quoted = "\"";
  std::size_t from = 0;
  for (std::size_t at; (at = value->find('"', from)) != std::string::npos; from = at + 1) {
    quoted.append(*value, from, at + 1 - from).push_back('"');
  }
  quoted.append(*value, from).push_back('"');
  return quoted;
}

std::string reference_rows(const std::vector<Row>& rows) {
  std::string out;
  for (const Row& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i != 0) out += ',';
      out += reference_field(row[i]);
    }
    out += "\r\n";
  }
  return out;
}

TEST(CsvEncoderTest, HeaderAndPlainRowsUseCrlf) {
  EXPECT_EQ(encode_csv(text_columns({"id", "name"}), {{"1", "ann"}, {"2", "bob"}}),
            "id,name\r\n1,ann\r\n2,bob\r\n");
}

TEST(CsvEncoderTest, HeaderOffWritesOnlyRecords) {
  EXPECT_EQ(encode_csv(text_columns({"id", "name"}), {{"1", "ann"}}, false), "1,ann\r\n");
}

TEST(CsvEncoderTest, HeaderWithoutRowsStillWritten) {
  EXPECT_EQ(encode_csv(text_columns({"a", "b"}), {}), "a,b\r\n");
}

TEST(CsvEncoderTest, HeaderNamesAreQuotedWhenNeeded) {
  EXPECT_EQ(encode_csv(text_columns({"a,b", "say \"hi\"", "", "plain", "two\nlines"}), {}),
            "\"a,b\",\"say \"\"hi\"\"\",\"\",plain,\"two\nlines\"\r\n");
}

TEST(CsvEncoderTest, SpecialCharactersForceQuoting) {
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{"a,b"}}, false), "\"a,b\"\r\n");
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{"he said \"x\""}}, false),
            "\"he said \"\"x\"\"\"\r\n");
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{"line1\nline2"}}, false), "\"line1\nline2\"\r\n");
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{"cr\ronly"}}, false), "\"cr\ronly\"\r\n");
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{"crlf\r\n"}}, false), "\"crlf\r\n\"\r\n");
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{"\""}}, false), "\"\"\"\"\r\n");
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{"\"\""}}, false), "\"\"\"\"\"\"\r\n");
  EXPECT_EQ(encode_csv(text_columns({"v"}), {{","}}, false), "\",\"\r\n");
}

TEST(CsvEncoderTest, EmptyStringAndNullStayDistinct) {
  EXPECT_EQ(encode_csv(text_columns({"a", "b", "c"}), {{"", std::nullopt, "x"}}, false),
            "\"\",,x\r\n");
  EXPECT_EQ(encode_csv(text_columns({"a", "b"}), {{std::nullopt, std::nullopt}}, false), ",\r\n");
  EXPECT_EQ(encode_csv(text_columns({"a", "b"}), {{"", ""}}, false), "\"\",\"\"\r\n");
}

TEST(CsvEncoderTest, SpacesAndOtherBytesNeedNoQuotes) {
  EXPECT_EQ(
      encode_csv(text_columns({"a", "b", "c"}), {{" lead", "trail ", "tab\there;semi"}}, false),
      " lead,trail ,tab\there;semi\r\n");
  // A NUL byte and DEL are data, not syntax.
  EXPECT_EQ(encode_csv(text_columns({"a"}), {{"x\0y\x7f"s}}, false), "x\0y\x7f\r\n"s);
}

TEST(CsvEncoderTest, NonAsciiBytesAreCopiedVerbatim) {
  EXPECT_EQ(encode_csv(text_columns({"名前", "e"}), {{"café", "😀 ok"}, {"\xff\xfe", "Ünï,"}}),
            "名前,e\r\ncafé,😀 ok\r\n\xff\xfe,\"Ünï,\"\r\n");
}

TEST(CsvEncoderTest, BoolAndNumbersKeepSourceText) {
  std::vector<Column> columns{
      {"b", LogicalType::kBool}, {"n", LogicalType::kDecimal}, {"f", LogicalType::kFloat}};
  EXPECT_EQ(encode_csv(columns, {{"t", "001.50", "NaN"}, {"1", "-0", "1e5"}}, false),
            "t,001.50,NaN\r\n1,-0,1e5\r\n");
}

TEST(CsvEncoderTest, AsTextCellsAreOrdinaryFields) {
  RowBatch batch;
  batch.reset(2);
  batch.add_value("12", true);
  batch.add_value("a,b", true);
  auto encoder = make_csv_encoder(OutputOptions{.header = false});
  ByteBuffer out;
  std::vector<Column> columns{{"n", LogicalType::kInt}, {"t", LogicalType::kInt}};
  encoder->begin(columns, out);
  encoder->encode(batch, out);
  EXPECT_EQ(out.view(), "12,\"a,b\"\r\n");
}

// Every length around the vector widths, with a special byte at every position, against the
// reference: the short-field paths (1-3, 4-7, 8-15, 16+) each load and store differently.
TEST(CsvEncoderTest, EveryLengthAndSpecialPositionMatchesReference) {
  std::vector<Row> rows;
  for (std::size_t len = 1; len <= 70; ++len) {
    rows.push_back({std::string(len, 'a'), std::string(len, 'b')});
    for (std::size_t at = 0; at < len; ++at) {
      for (char special : {',', '"', '\r', '\n'}) {
        std::string value(len, 'x');
        value[at] = special;
        rows.push_back({value, "z"});
      }
    }
  }
  EXPECT_EQ(encode_csv(text_columns({"a", "b"}), rows, false), reference_rows(rows));
}

// A short value is copied and scanned as one 16-byte block that runs into the next cells'
// bytes: their delimiters, quotes and line breaks must not make it quoted, and the last cells of
// the arena (fewer than 16 bytes left) take the other path.
TEST(CsvEncoderTest, ShortFieldsIgnoreTheBytesAfterThem) {
  const std::vector<Row> rows{{"a", ",\"\r\n,\"\r\n"},
                              {"abcdefghijklmnop", "\""},
                              {"x", std::nullopt},
                              {"", "q,"},
                              {"k", "l"}};
  EXPECT_EQ(encode_csv(text_columns({"a", "b"}), rows, false), reference_rows(rows));
}

TEST(CsvEncoderTest, RandomFieldsMatchReference) {
  std::mt19937 rng(20250304);
  const std::vector<std::string> alphabet{"a",  "b",  " ",   ",", "\"", "\r",
                                          "\n", "\t", "\0"s, "é", "😀",  "\xff"};
  std::vector<Row> rows;
  for (int r = 0; r < 3000; ++r) {
    Row row;
    for (int c = 0; c < 3; ++c) {
      if (rng() % 10 == 0) {
        row.push_back(std::nullopt);
        continue;
      }
      std::string value;
      const std::size_t len = rng() % 60;
      // Mostly plain text so the fast path is exercised as much as the quoting path.
      const bool plain = rng() % 2 == 0;
      for (std::size_t i = 0; i < len; ++i) {
        value += plain ? alphabet[rng() % 2] : alphabet[rng() % alphabet.size()];
      }
      row.push_back(value);
    }
    rows.push_back(row);
  }
  EXPECT_EQ(encode_csv(text_columns({"a", "b", "c"}), rows, false), reference_rows(rows));
}

TEST(CsvEncoderTest, SixteenMebibyteFields) {
  const std::size_t size = 16u << 20;
  std::string plain(size, 'p');
  std::string quoted(size, 'q');
  quoted.back() = '"';  // found only in the last vector chunk
  std::string many(size, 'm');
  for (std::size_t i = 7; i < size; i += 1000) many[i] = '"';
  const std::vector<Row> rows{{plain, "1"}, {quoted, "2"}, {many, "3"}};
  const std::string csv = encode_csv(text_columns({"big", "n"}), rows, false);
  const std::string expected = reference_rows(rows);
  EXPECT_EQ(csv.size(), expected.size());
  EXPECT_TRUE(csv == expected);  // not EXPECT_EQ: a failure would print 48 MiB
  EXPECT_EQ(csv.substr(0, 3), "ppp");
  EXPECT_EQ(csv.substr(size, 3), ",1\r");
  EXPECT_EQ(csv.substr(size + 4 + size - 1, 9), "q\"\"\",2\r\n\"");
}

// Output twice the input: far beyond the encoder's first reservation for the batch.
TEST(CsvEncoderTest, WorstCaseQuotingGrowsTheBufferMidBatch) {
  std::vector<Row> rows;
  rows.reserve(2000);
  for (int r = 0; r < 2000; ++r) rows.push_back({std::string(1 + r % 40, '"'), "\"\""});
  EXPECT_EQ(encode_csv(text_columns({"a", "b"}), rows, false), reference_rows(rows));
}

TEST(CsvEncoderTest, ManyBatchesAppendInOrder) {
  auto encoder = make_csv_encoder();
  ByteBuffer out;
  const auto columns = text_columns({"id", "note"});
  encoder->begin(columns, out);
  std::string expected = "id,note\r\n";
  RowBatch batch;  // reused like a source would
  for (int b = 0; b < 500; ++b) {
    batch.reset(2);
    std::vector<Row> rows;
    for (int r = 0; r < b % 7; ++r) {
      const std::string id = std::to_string(b * 10 + r);
      const std::string note = r % 3 == 0 ? "has, comma" : "plain";
      batch.add_value(id);
      batch.add_value(note);
      rows.push_back({id, note});
    }
    encoder->encode(batch, out);
    expected += reference_rows(rows);
  }
  encoder->finish(out);
  EXPECT_EQ(out.view(), expected);
}

TEST(CsvEncoderTest, AppendsAfterExistingBytes) {
  auto encoder = make_csv_encoder(OutputOptions{.header = false});
  ByteBuffer out;
  out.append("kept|");
  const auto columns = text_columns({"a"});
  encoder->begin(columns, out);
  encoder->encode(make_batch(1, {{"x,y"}}), out);
  EXPECT_EQ(out.view(), "kept|\"x,y\"\r\n");
}

TEST(CsvEncoderTest, EmptyBatchWritesNothing) {
  auto encoder = make_csv_encoder(OutputOptions{.header = false});
  ByteBuffer out;
  const auto columns = text_columns({"a"});
  encoder->begin(columns, out);
  RowBatch batch;
  batch.reset(1);
  encoder->encode(batch, out);
  encoder->finish(out);
  EXPECT_TRUE(out.empty());
}

TEST(EncoderFormatTest, NamesAndContentTypes) {
  EXPECT_EQ(file_extension(Format::kCsv), "csv");
  EXPECT_EQ(file_extension(Format::kJsonLines), "jsonl");
  EXPECT_EQ(content_type(Format::kCsv), "text/csv; charset=utf-8");
  EXPECT_EQ(content_type(Format::kJsonLines), "application/x-ndjson; charset=utf-8");
}

TEST(EncoderFormatTest, ParseFormat) {
  EXPECT_EQ(parse_format("csv"), Format::kCsv);
  EXPECT_EQ(parse_format("jsonl"), Format::kJsonLines);
  EXPECT_EQ(parse_format("tsv"), Format::kTsv);
  EXPECT_EQ(parse_format("json"), Format::kJson);
  EXPECT_EQ(parse_format("xml"), std::nullopt);
  EXPECT_EQ(parse_format("JSON"), std::nullopt);
  EXPECT_EQ(parse_format("CSV"), std::nullopt);
  EXPECT_EQ(parse_format(""), std::nullopt);
  EXPECT_EQ(parse_format("csv "), std::nullopt);
}

TEST(EncoderFormatTest, MakeEncoderPicksTheFormat) {
  std::vector<Column> columns{{"n", LogicalType::kInt}};
  const RowBatch batch = make_batch(1, {{"7"}});
  ByteBuffer csv;
  auto csv_encoder = make_encoder(Format::kCsv);
  csv_encoder->begin(columns, csv);
  csv_encoder->encode(batch, csv);
  EXPECT_EQ(csv.view(), "n\r\n7\r\n");
  ByteBuffer jsonl;
  auto jsonl_encoder = make_encoder(Format::kJsonLines);
  jsonl_encoder->begin(columns, jsonl);
  jsonl_encoder->encode(batch, jsonl);
  EXPECT_EQ(jsonl.view(), "{\"n\":7}\n");
}

}  // namespace
}  // namespace sluice
