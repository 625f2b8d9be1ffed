#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "encode/encoder.hpp"

namespace sluice {
namespace {

using namespace std::string_literals;

// One cell to put in a test batch.
struct In {
  In(const char* v) : value(v) {}             // NOLINT: implicit for terse tables
  In(std::string v) : value(std::move(v)) {}  // NOLINT
  In(std::nullopt_t) {}                       // NOLINT
  std::optional<std::string> value;
  bool as_text = false;
};

In text_cell(std::string v) {
  In in(std::move(v));
  in.as_text = true;
  return in;
}

std::string encode_jsonl(const std::vector<Column>& columns,
                         const std::vector<std::vector<In>>& rows) {
  RowBatch batch;
  batch.reset(columns.size());
  for (const auto& row : rows) {
    for (const In& in : row) {
      if (in.value) {
        batch.add_value(*in.value, in.as_text);
      } else {
        batch.add_null();
      }
    }
  }
  auto encoder = make_jsonl_encoder();
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(batch, out);
  encoder->finish(out);
  return std::string(out.view());
}

// Encodes one value in a one-column table named "v" and returns what follows `{"v":`.
std::string one(LogicalType type, In in) {
  const std::string line = encode_jsonl({Column{"v", type}}, {{std::move(in)}});
  const std::string prefix = "{\"v\":";
  if (line.compare(0, prefix.size(), prefix) != 0 || line.size() < prefix.size() + 2 ||
      line.compare(line.size() - 2, 2, "}\n") != 0) {
    return "MALFORMED: " + line;
  }
  return line.substr(prefix.size(), line.size() - prefix.size() - 2);
}

std::string reference_string(const std::string& value) {
  std::string out = "\"";
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\b') {
      out += "\\b";
    } else if (c == '\f') {
      out += "\\f";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

TEST(JsonlEncoderTest, OneObjectPerRowInColumnOrder) {
  std::vector<Column> columns{
      {"id", LogicalType::kInt}, {"name", LogicalType::kText}, {"note", LogicalType::kText}};
  EXPECT_EQ(encode_jsonl(columns, {{"1", "ann", std::nullopt}, {"2", "", "x"}}),
            "{\"id\":1,\"name\":\"ann\",\"note\":null}\n{\"id\":2,\"name\":\"\",\"note\":\"x\"}\n");
}

TEST(JsonlEncoderTest, KeysAreEscaped) {
  std::vector<Column> columns{{"a\"b\\", LogicalType::kInt},
                              {"line\nbreak", LogicalType::kInt},
                              {"", LogicalType::kInt},
                              {"ü😀", LogicalType::kInt}};
  EXPECT_EQ(encode_jsonl(columns, {{"1", "2", "3", "4"}}),
            "{\"a\\\"b\\\\\":1,\"line\\nbreak\":2,\"\":3,\"ü😀\":4}\n");
}

// Keys are copied in 16-byte chunks: lengths around the chunk size must come out exact.
TEST(JsonlEncoderTest, KeysOfEveryLength) {
  std::vector<Column> columns;
  std::vector<In> row;
  std::string expected = "{";
  for (std::size_t len = 0; len <= 40; ++len) {
    std::string name(len, static_cast<char>('a' + len % 26));
    columns.push_back(Column{name, LogicalType::kInt});
    row.push_back(std::to_string(len));
    if (len != 0) expected += ",";
    expected += "\"" + name + "\":" + std::to_string(len);
  }
  EXPECT_EQ(encode_jsonl(columns, {row}), expected + "}\n");
}

TEST(JsonlEncoderTest, StringEscaping) {
  EXPECT_EQ(one(LogicalType::kText, "say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(one(LogicalType::kText, "back\\slash"), R"("back\\slash")");
  EXPECT_EQ(one(LogicalType::kText, "a\nb\rc\td\be\ff"), R"("a\nb\rc\td\be\ff")");
  EXPECT_EQ(one(LogicalType::kText, "\x01\x1f\x00"s), R"("\u0001\u001f\u0000")");
  EXPECT_EQ(one(LogicalType::kText, "del\x7f/slash"), "\"del\x7f/slash\"");
  EXPECT_EQ(one(LogicalType::kText, "\r\n"), R"("\r\n")");
}

TEST(JsonlEncoderTest, NonAsciiPassesThrough) {
  EXPECT_EQ(one(LogicalType::kText, "café 😀 日本"), "\"café 😀 日本\"");
  EXPECT_EQ(one(LogicalType::kText, "\u2028"), "\"\u2028\"");
  // Invalid UTF-8 is copied as it came (validation is a separate concern); no crash.
  EXPECT_EQ(one(LogicalType::kText, "\xff\xfe\xc3"), "\"\xff\xfe\xc3\"");
}

TEST(JsonlEncoderTest, TimestampsAndDatesAreStrings) {
  EXPECT_EQ(one(LogicalType::kTimestamp, "2025-03-04T12:34:56Z"), "\"2025-03-04T12:34:56Z\"");
  EXPECT_EQ(one(LogicalType::kDate, "2025-03-04"), "\"2025-03-04\"");
  EXPECT_EQ(one(LogicalType::kDate, "20250304"), "\"20250304\"");
}

TEST(JsonlEncoderTest, ValidNumbersAreBare) {
  for (const char* number :
       {"0", "-0", "7", "123", "-45", "1.5", "-0.25", "1234.56", "1e10", "1E+5", "2.5e-3", "0.0",
        "9223372036854775807", "-9223372036854775808", "1e400"}) {
    for (LogicalType type : {LogicalType::kInt, LogicalType::kDecimal, LogicalType::kFloat}) {
      EXPECT_EQ(one(type, number), number) << to_string(type);
    }
  }
}

TEST(JsonlEncoderTest, InvalidNumbersBecomeStrings) {
  for (const char* text :
       {"+1", "01",   "-01", ".5",  "5.",       "-",         "",    "1e",  "1e+", "1.e5", " 1",
        "1 ", "0x10", "NaN", "nan", "Infinity", "-Infinity", "inf", "1,5", "--1", "1..2", "１"}) {
    for (LogicalType type : {LogicalType::kInt, LogicalType::kDecimal, LogicalType::kFloat}) {
      EXPECT_EQ(one(type, text), "\"" + std::string(text) + "\"") << to_string(type);
    }
  }
}

TEST(JsonlEncoderTest, BoolWords) {
  for (const char* word : {"1", "t", "true", "TRUE", "True"}) {
    EXPECT_EQ(one(LogicalType::kBool, word), "true") << word;
  }
  for (const char* word : {"0", "f", "false", "FALSE", "False"}) {
    EXPECT_EQ(one(LogicalType::kBool, word), "false") << word;
  }
  for (const char* word : {"yes", "T", "2", "", "tRUE", "true "}) {
    EXPECT_EQ(one(LogicalType::kBool, word), "\"" + std::string(word) + "\"") << word;
  }
}

TEST(JsonlEncoderTest, AsTextCellsAreAlwaysStrings) {
  EXPECT_EQ(one(LogicalType::kInt, text_cell("12")), "\"12\"");
  EXPECT_EQ(one(LogicalType::kFloat, text_cell("1.5")), "\"1.5\"");
  EXPECT_EQ(one(LogicalType::kBool, text_cell("1")), "\"1\"");
  EXPECT_EQ(one(LogicalType::kJson, text_cell("{}")), "\"{}\"");
  EXPECT_EQ(one(LogicalType::kBytes, text_cell("abc")), "\"abc\"");
  EXPECT_EQ(one(LogicalType::kInt, text_cell("a\"b")), R"("a\"b")");
}

TEST(JsonlEncoderTest, NullForEveryType) {
  for (LogicalType type : {LogicalType::kInt, LogicalType::kDecimal, LogicalType::kFloat,
                           LogicalType::kBool, LogicalType::kText, LogicalType::kTimestamp,
                           LogicalType::kDate, LogicalType::kJson, LogicalType::kBytes}) {
    EXPECT_EQ(one(type, std::nullopt), "null") << to_string(type);
  }
}

TEST(JsonlEncoderTest, ValidJsonIsEmbeddedAsIs) {
  EXPECT_EQ(one(LogicalType::kJson, R"({"a": [1, 2, {"b": null}], "c": "x y"})"),
            R"({"a": [1, 2, {"b": null}], "c": "x y"})");
  EXPECT_EQ(one(LogicalType::kJson, "{}"), "{}");
  EXPECT_EQ(one(LogicalType::kJson, "true"), "true");
  EXPECT_EQ(one(LogicalType::kJson, "null"), "null");
  EXPECT_EQ(one(LogicalType::kJson, "42"), "42");
  EXPECT_EQ(one(LogicalType::kJson, "1e400"), "1e400");  // the text is kept, never re-rendered
  EXPECT_EQ(one(LogicalType::kJson, R"("s \"q\" \u00e9 \/")"), R"("s \"q\" \u00e9 \/")");
  EXPECT_EQ(one(LogicalType::kJson, R"(["é", "😀"])"), R"(["é", "😀"])");
}

// A raw newline would end the JSON Lines record early: outside strings it is only whitespace.
TEST(JsonlEncoderTest, PrettyJsonStaysOnOneLine) {
  EXPECT_EQ(one(LogicalType::kJson, "{\n  \"k\": \"v\",\r\n\t\"n\": -1.5e3\n}\n"),
            "{   \"k\": \"v\",  \t\"n\": -1.5e3 }");
  EXPECT_EQ(one(LogicalType::kJson, " \r\n [ ] \n"), "[ ]");
  EXPECT_EQ(one(LogicalType::kJson, "[\"a\\nb\"]"), "[\"a\\nb\"]");
}

TEST(JsonlEncoderTest, InvalidJsonBecomesAString) {
  for (const std::string& text :
       {"{a:1}"s,    "[1,]"s,        "{\"a\":1} x"s, ""s,          "   "s,
        "tru"s,      "nul"s,         "[1 2]"s,       "{\"a\" 1}"s, "\"raw\x01\""s,
        "\"\\x\""s,  "\"\\u12g4\""s, "\"open"s,      "[1"s,        "01"s,
        "NaN"s,      "{,}"s,         "{\"a\":1,}"s,  "'single'"s,  "[1] // comment"s,
        "\"\xff\""s, "\"\\ud800\""s}) {
    EXPECT_EQ(one(LogicalType::kJson, text), reference_string(text)) << text;
  }
}

TEST(JsonlEncoderTest, DeepJsonNestingIsBounded) {
  const std::string ok = std::string(100, '[') + std::string(100, ']');
  EXPECT_EQ(one(LogicalType::kJson, ok), ok);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(one(LogicalType::kJson, deep), "\"" + deep + "\"");
}

TEST(JsonlEncoderTest, BytesAreBase64Strings) {
  EXPECT_EQ(one(LogicalType::kBytes, ""), "\"\"");
  EXPECT_EQ(one(LogicalType::kBytes, "f"), "\"Zg==\"");
  EXPECT_EQ(one(LogicalType::kBytes, "fo"), "\"Zm8=\"");
  EXPECT_EQ(one(LogicalType::kBytes, "foo"), "\"Zm9v\"");
  EXPECT_EQ(one(LogicalType::kBytes, "foobar"), "\"Zm9vYmFy\"");
  EXPECT_EQ(one(LogicalType::kBytes, "\x00\xff\xfe\x3e\x3f"s), "\"AP/+Pj8=\"");
}

TEST(JsonlEncoderTest, LargeBytesValue) {
  std::string bytes(3 * 100000 + 1, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  const std::string encoded = one(LogicalType::kBytes, bytes);
  ASSERT_EQ(encoded.size(), 2 + 4 * 100001u);
  // 0x00 0x07 0x0e -> "AAcO"; the final lone byte (300000 * 7) & 0xff = 0x20 -> "IA==".
  EXPECT_EQ(encoded.substr(0, 5), "\"AAcO");
  EXPECT_EQ(encoded.substr(encoded.size() - 5), "IA==\"");
}

// Every length around the vector widths, with a byte to escape at every position.
TEST(JsonlEncoderTest, EveryLengthAndEscapePositionMatchesReference) {
  std::vector<Column> columns{{"s", LogicalType::kText}, {"n", LogicalType::kInt}};
  std::vector<std::vector<In>> rows;
  std::string expected;
  for (std::size_t len = 1; len <= 70; ++len) {
    std::vector<std::string> values{std::string(len, 'a'), std::string(len, '\xc3')};
    for (std::size_t at = 0; at < len; ++at) {
      for (char special : {'"', '\\', '\n', '\x01', '\x1f', '\0'}) {
        std::string value(len, 'x');
        value[at] = special;
        values.push_back(value);
      }
    }
    for (const std::string& value : values) {
      rows.push_back({value, "1"});
      expected += "{\"s\":" + reference_string(value) + ",\"n\":1}\n";
    }
  }
  EXPECT_EQ(encode_jsonl(columns, rows), expected);
}

// Whatever the cells hold, each line parses as JSON and gives the values back.
TEST(JsonlEncoderTest, RandomRowsParseBack) {
  std::mt19937 rng(777);
  const std::vector<std::string> alphabet{"a",  "Z",  " ",    ",",   "\"", "\\", "\n",
                                          "\r", "\t", "\x01", "\0"s, "é",  "😀",  "/"};
  std::vector<Column> columns{{"t", LogicalType::kText},
                              {"i", LogicalType::kInt},
                              {"b", LogicalType::kBool},
                              {"j", LogicalType::kJson}};
  std::vector<std::vector<In>> rows;
  for (int r = 0; r < 2000; ++r) {
    std::string text;
    const std::size_t len = rng() % 50;
    for (std::size_t i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    const std::string number = rng() % 2 ? std::to_string(static_cast<int>(rng())) : text;
    In json = rng() % 2 ? In("{\"k\": [1, \"v\"]}") : In(text);
    rows.push_back({text, number, rng() % 2 ? "t" : text, json});
  }
  const std::string out = encode_jsonl(columns, rows);
  std::size_t at = 0;
  for (const auto& row : rows) {
    const std::size_t newline = out.find('\n', at);
    ASSERT_NE(newline, std::string::npos);
    boost::system::error_code ec;
    const boost::json::value parsed = boost::json::parse(out.substr(at, newline - at), ec);
    ASSERT_FALSE(ec) << out.substr(at, newline - at);
    const boost::json::object& object = parsed.as_object();
    EXPECT_EQ(object.at("t").as_string(), *row[0].value);
    if (object.at("i").is_string()) {
      EXPECT_EQ(object.at("i").as_string(), *row[1].value);
    } else {
      EXPECT_EQ(std::to_string(object.at("i").as_int64()), *row[1].value);
    }
    at = newline + 1;
  }
  EXPECT_EQ(at, out.size());
}

TEST(JsonlEncoderTest, SixteenMebibyteString) {
  const std::size_t size = 16u << 20;
  std::string value(size, 'v');
  value[size - 1] = '\n';  // found only in the last vector chunk
  value[size / 2] = '"';
  std::string plain(size, 'p');
  std::vector<Column> columns{{"big", LogicalType::kText}, {"n", LogicalType::kInt}};
  const std::string out = encode_jsonl(columns, {{value, "1"}, {plain, "2"}});
  const std::string expected = "{\"big\":" + reference_string(value) + ",\"n\":1}\n" +
                               "{\"big\":\"" + plain + "\",\"n\":2}\n";
  EXPECT_EQ(out.size(), expected.size());
  EXPECT_TRUE(out == expected);  // not EXPECT_EQ: a failure would print 32 MiB
}

// Every byte as \u00XX is six times the input: far beyond the first reservation for the batch.
TEST(JsonlEncoderTest, WorstCaseEscapingGrowsTheBufferMidBatch) {
  std::vector<Column> columns{{"s", LogicalType::kText}, {"b", LogicalType::kBytes}};
  std::vector<std::vector<In>> rows;
  std::string expected;
  for (int r = 0; r < 2000; ++r) {
    const std::string value(1 + r % 40, '\x01');
    rows.push_back({value, "abc"});
    expected += "{\"s\":" + reference_string(value) + ",\"b\":\"YWJj\"}\n";
  }
  EXPECT_EQ(encode_jsonl(columns, rows), expected);
}

TEST(JsonlEncoderTest, ManyBatchesAppendInOrder) {
  auto encoder = make_jsonl_encoder();
  std::vector<Column> columns{{"id", LogicalType::kInt}, {"ok", LogicalType::kBool}};
  ByteBuffer out;
  encoder->begin(columns, out);
  std::string expected;
  RowBatch batch;
  for (int b = 0; b < 500; ++b) {
    batch.reset(2);
    for (int r = 0; r < b % 5; ++r) {
      batch.add_value(std::to_string(b * 10 + r));
      batch.add_value(r % 2 ? "t" : "f");
      expected +=
          "{\"id\":" + std::to_string(b * 10 + r) + ",\"ok\":" + (r % 2 ? "true" : "false") + "}\n";
    }
    encoder->encode(batch, out);
  }
  encoder->finish(out);
  EXPECT_EQ(out.view(), expected);
}

TEST(JsonlEncoderTest, BeginAndFinishWriteNothing) {
  auto encoder = make_jsonl_encoder();
  std::vector<Column> columns{{"id", LogicalType::kInt}};
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->finish(out);
  EXPECT_TRUE(out.empty());
}

TEST(JsonlEncoderTest, MismatchedBatchIsRejected) {
  auto encoder = make_jsonl_encoder();
  std::vector<Column> columns{{"id", LogicalType::kInt}};
  ByteBuffer out;
  encoder->begin(columns, out);
  RowBatch batch;
  batch.reset(2);
  batch.add_value("1");
  batch.add_value("2");
  EXPECT_THROW(encoder->encode(batch, out), std::logic_error);
}

}  // namespace
}  // namespace sluice
