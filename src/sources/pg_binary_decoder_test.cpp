#include "sources/pg_binary_decoder.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <charconv>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "encode/encoder.hpp"
#include "sources/source_error.hpp"
#include "sources/pg_wire_bytes.hpp"

namespace sluice {
namespace {

std::string float8(double value) {
  char buffer[40];
  return std::string(buffer, format_pg_float8(value, buffer));
}

std::string float4(float value) {
  char buffer[40];
  return std::string(buffer, format_pg_float4(value, buffer));
}

// Expected strings are what PostgreSQL 15 prints with extra_float_digits = 1.
TEST(PgFloatFormatTest, MatchesPostgresOutput) {
  EXPECT_EQ(float8(1e15), "1e+15");
  EXPECT_EQ(float8(1e14), "100000000000000");
  EXPECT_EQ(float8(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(float8(0.0001), "0.0001");
  EXPECT_EQ(float8(0.00001234), "1.234e-05");
  EXPECT_EQ(float8(-0.0), "-0");
  EXPECT_EQ(float8(0.0), "0");
  EXPECT_EQ(float8(1.5e300), "1.5e+300");
  EXPECT_EQ(float8(1e-320), "1e-320");
  EXPECT_EQ(float8(0.1), "0.1");
  EXPECT_EQ(float8(-2.5), "-2.5");
  EXPECT_EQ(float8(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(float8(std::numeric_limits<double>::infinity()), "Infinity");
  EXPECT_EQ(float8(-std::numeric_limits<double>::infinity()), "-Infinity");
  EXPECT_EQ(float4(123456.0f), "123456");
  EXPECT_EQ(float4(1234567.0f), "1.234567e+06");
  EXPECT_EQ(float4(0.0001f), "0.0001");
  EXPECT_EQ(float4(0.00001f), "1e-05");
  EXPECT_EQ(float4(3.4028235e38f), "3.4028235e+38");
}

std::string header() { return std::string("PGCOPY\n\377\r\n\0", 11) + std::string(8, '\0'); }

std::string decode_one(PgWire type, const std::string& field) {
  PgBinaryDecoder decoder({type});
  RowBatch batch;
  batch.reset(1);
  EXPECT_EQ(decoder.decode(header(), batch), 0u);
  std::string row;
  put_be16(row, 1);
  put_be32(row, static_cast<std::int64_t>(field.size()));
  row += field;
  EXPECT_EQ(decoder.decode(row, batch), 1u);
  return std::string(batch.cell(0, 0).value);
}

std::string numeric(int weight, int sign, int dscale, std::initializer_list<int> groups) {
  std::string out;
  put_be16(out, static_cast<int>(groups.size()));
  put_be16(out, weight);
  put_be16(out, sign);
  put_be16(out, dscale);
  for (int group : groups) put_be16(out, group);
  return out;
}

TEST(PgBinaryDecoderTest, Numeric) {
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(4, 0, 9, {1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000})),
            "12345678901234567890.123456789");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(-1, 0x4000, 6, {1, 2300})), "-0.000123");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0, 0, {})), "0");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0, 2, {})), "0.00");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0, 0, {100})), "100");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(-5, 0, 20, {1})), "0.00000000000000000001");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(1, 0, 2, {12, 3, 4000})), "120003.40");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0xC000, 0, {})), "NaN");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0xF000, 0, {})), "-Infinity");
}

std::string int64_field(std::int64_t value) {
  std::string out;
  put_be64(out, value);
  return out;
}

TEST(PgBinaryDecoderTest, DatesAndTimestampsInUtcIso) {
  std::string days;
  put_be32(days, 8825);  // 2024-02-29
  EXPECT_EQ(decode_one(PgWire::kDate, days), "2024-02-29");
  std::string bc;
  put_be32(bc, -746'117);  // 0044-03-15 BC (PostgreSQL: date '0044-03-15 BC' - date '2000-01-01')
  EXPECT_EQ(decode_one(PgWire::kDate, bc), "0044-03-15 BC");
  std::string infinite;
  put_be32(infinite, std::numeric_limits<std::int32_t>::max());
  EXPECT_EQ(decode_one(PgWire::kDate, infinite), "infinity");
  // 2024-02-29 12:34:56.789
  std::int64_t micros = 8825LL * 86'400'000'000LL + ((12 * 60 + 34) * 60 + 56) * 1'000'000LL + 789'000;
  EXPECT_EQ(decode_one(PgWire::kTimestamp, int64_field(micros)), "2024-02-29 12:34:56.789");
  EXPECT_EQ(decode_one(PgWire::kTimestampTz, int64_field(micros + 211)), "2024-02-29 12:34:56.789211+00");
  EXPECT_EQ(decode_one(PgWire::kTimestamp, int64_field(-1)), "1999-12-31 23:59:59.999999");
  EXPECT_EQ(decode_one(PgWire::kTimestampTz, int64_field(std::numeric_limits<std::int64_t>::min())),
            "-infinity");
}

TEST(PgBinaryDecoderTest, UuidByteaBoolJsonb) {
  std::string uuid("\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11", 16);
  EXPECT_EQ(decode_one(PgWire::kUuid, uuid), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(decode_one(PgWire::kBytea, std::string("\x00\xff\x10", 3)), "\\x00ff10");
  EXPECT_EQ(decode_one(PgWire::kBool, std::string(1, '\1')), "t");
  EXPECT_EQ(decode_one(PgWire::kJsonb, "\x01{\"a\": 1}"), "{\"a\": 1}");
}

std::string to_chars_text(std::int64_t value) {
  char buffer[24];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

// Integers as std::to_chars writes them: every power of ten and its neighbours, both ends of
// each width, random values of every length.
TEST(PgBinaryDecoderTest, IntegersMatchToChars) {
  std::vector<std::int64_t> values{0, -1, std::numeric_limits<std::int64_t>::min(),
                                   std::numeric_limits<std::int64_t>::max()};
  for (std::int64_t power = 1;; power *= 10) {  // up to 10^18
    for (std::int64_t near : {power - 1, power, power + 1}) {
      values.push_back(near);
      values.push_back(-near);
    }
    if (power > std::numeric_limits<std::int64_t>::max() / 10) break;
  }
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) values.push_back(static_cast<std::int64_t>(rng() >> (rng() % 64)));
  for (std::int64_t value : values) {
    ASSERT_EQ(decode_one(PgWire::kInt8, int64_field(value)), to_chars_text(value)) << value;
    const auto narrow = static_cast<std::int32_t>(value);
    std::string four;
    put_be32(four, narrow);
    ASSERT_EQ(decode_one(PgWire::kInt4, four), to_chars_text(narrow)) << narrow;
    ASSERT_EQ(decode_one(PgWire::kOid, four), to_chars_text(static_cast<std::uint32_t>(narrow)));
    std::string two;
    put_be16(two, static_cast<std::int16_t>(value));
    ASSERT_EQ(decode_one(PgWire::kInt2, two), to_chars_text(static_cast<std::int16_t>(value)));
  }
}

// Short text is copied as a 16-byte block that runs into the rest of the message; the last
// field (fewer than 16 bytes left) is copied exactly.
TEST(PgBinaryDecoderTest, TextFieldsOfEverySizeKeepTheirBytes) {
  const std::vector<std::string> values{"a", "", std::string(16, 'p'), std::string(17, 'q'),
                                        "caf\xc3\xa9,\"x\"", "zz"};
  PgBinaryDecoder decoder(std::vector<PgWire>(values.size() + 1, PgWire::kText));
  RowBatch batch;
  batch.reset(values.size() + 1);
  decoder.decode(header(), batch);
  std::string row;
  put_be16(row, static_cast<int>(values.size() + 1));
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i == 2) put_be32(row, -1);  // a NULL among them
    put_be32(row, static_cast<std::int64_t>(values[i].size()));
    row += values[i];
  }
  ASSERT_EQ(decoder.decode(row, batch), 1u);
  std::vector<std::string> decoded;
  for (std::size_t col = 0; col < batch.columns(); ++col) {
    const Cell cell = batch.cell(0, col);
    decoded.push_back(cell.null ? "NULL" : std::string(cell.value));
  }
  EXPECT_EQ(decoded, (std::vector<std::string>{"a", "", "NULL", values[2], values[3], values[4],
                                               "zz"}));
  EXPECT_EQ(batch.arena(), "a" + values[2] + values[3] + values[4] + "zz");
}

TEST(PgBinaryDecoderTest, RejectsMalformedRows) {
  PgBinaryDecoder decoder({PgWire::kInt4});
  RowBatch batch;
  batch.reset(1);
  EXPECT_THROW(decoder.decode("NOTPGCOPY\n\0\0\0\0\0\0\0\0\0\0", batch), SourceError);
  PgBinaryDecoder sized({PgWire::kInt4});
  sized.decode(header(), batch);
  std::string wrong_size;
  put_be16(wrong_size, 1);
  put_be32(wrong_size, 8);
  wrong_size += std::string(8, '\0');
  EXPECT_THROW(sized.decode(wrong_size, batch), SourceError);  // an int4 field of 8 bytes
  std::string two_fields;
  put_be16(two_fields, 2);
  EXPECT_THROW(sized.decode(two_fields, batch), SourceError);
  std::string trailer;
  put_be16(trailer, -1);
  EXPECT_EQ(sized.decode(trailer, batch), 0u);
}

TEST(PgBinaryDecoderTest, NumericSignsScalesAndSpecials) {
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0x4000, 2, {1234, 5600})), "-1234.56");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0x4000, 0, {7})), "-7");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(2, 0, 0, {1, 0, 5})), "100000005");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(1, 0, 0, {9999, 9999})), "99999999");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0, 3, {5, 1230})), "5.123");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0, 5, {5, 1230})), "5.12300");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(-2, 0x4000, 8, {12})), "-0.00000012");
  EXPECT_EQ(decode_one(PgWire::kNumeric, numeric(0, 0xD000, 0, {})), "Infinity");
  // numeric_recv refuses a base-10000 digit of 10000 or more; so do we.
  EXPECT_THROW(decode_one(PgWire::kNumeric, numeric(0, 0, 0, {10000})), SourceError);
}

std::string days_field(std::int32_t days) {
  std::string out;
  put_be32(out, days);
  return out;
}

TEST(PgBinaryDecoderTest, DatesAndTimestampsAcrossEras) {
  EXPECT_EQ(decode_one(PgWire::kTimestampTz, int64_field(1'200'798'848'000'000)),
            "2038-01-19 03:14:08+00");  // 2^31 seconds after the Unix epoch
  EXPECT_EQ(decode_one(PgWire::kTimestamp, int64_field(-3'150'575'999'999'999)),
            "1900-03-01 00:00:00.000001");
  EXPECT_EQ(decode_one(PgWire::kTimestamp, int64_field(-946'684'800'500'000)),
            "1969-12-31 23:59:59.5");
  EXPECT_EQ(decode_one(PgWire::kTimestampTz, int64_field(252'455'615'999'999'999)),
            "9999-12-31 23:59:59.999999+00");
  EXPECT_EQ(decode_one(PgWire::kTimestamp, int64_field(-63'082'281'600'000'000)),
            "0001-01-01 00:00:00");
  // 0044-03-15 12:00 BC: the zone comes before " BC", as PostgreSQL writes it.
  const std::int64_t ides = -746'117LL * 86'400'000'000LL + 12LL * 3'600'000'000LL;
  EXPECT_EQ(decode_one(PgWire::kTimestampTz, int64_field(ides)), "0044-03-15 12:00:00+00 BC");
  EXPECT_EQ(decode_one(PgWire::kTimestamp, int64_field(std::numeric_limits<std::int64_t>::max())),
            "infinity");
  EXPECT_EQ(decode_one(PgWire::kDate, days_field(-730'120)), "0001-12-31 BC");  // year 0
  EXPECT_EQ(decode_one(PgWire::kDate, days_field(2'921'940)), "10000-01-01");
  EXPECT_EQ(decode_one(PgWire::kDate, days_field(std::numeric_limits<std::int32_t>::min())),
            "-infinity");
}

// The layout before the digit-pair tables, kept as the reference the fast one must equal.
namespace reference {

void put_padded(std::string& out, std::int64_t value, int width) {
  char digits[24];
  char* end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  for (int pad = width - static_cast<int>(end - digits); pad > 0; --pad) out += '0';
  out.append(digits, end);
}

std::string date(std::int64_t days_since_2000, bool& bc) {
  std::int64_t days = days_since_2000 + 10'957 + 719'468;
  std::int64_t era = (days >= 0 ? days : days - 146'096) / 146'097;
  std::int64_t doe = days - era * 146'097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  std::int64_t year = yoe + era * 400 + (month <= 2);
  bc = year <= 0;
  std::string out;
  put_padded(out, bc ? 1 - year : year, 4);
  out += '-';
  put_padded(out, month, 2);
  out += '-';
  put_padded(out, day, 2);
  return out;
}

std::string timestamp(std::int64_t micros, bool with_zone) {
  constexpr std::int64_t kDay = 86'400'000'000LL;
  std::int64_t days = micros / kDay;
  std::int64_t time = micros % kDay;
  if (time < 0) {
    time += kDay;
    --days;
  }
  bool bc = false;
  std::string out = date(days, bc) + ' ';
  put_padded(out, time / 3'600'000'000LL, 2);
  out += ':';
  put_padded(out, time / 60'000'000 % 60, 2);
  out += ':';
  put_padded(out, time / 1'000'000 % 60, 2);
  if (std::int64_t fraction = time % 1'000'000) {
    out += '.';
    int width = 6;
    while (fraction % 10 == 0) {
      fraction /= 10;
      --width;
    }
    put_padded(out, fraction, width);
  }
  if (with_zone) out += "+00";
  if (bc) out += " BC";
  return out;
}

}  // namespace reference

TEST(PgBinaryDecoderTest, RandomTimestampsAndDatesMatchTheReference) {
  std::mt19937_64 rng(7);
  // PostgreSQL's range: 4713 BC to 294276 AD (timestamps), 5874897 AD (dates).
  constexpr std::int64_t kMinMicros = -211'813'488'000'000'000LL;
  constexpr std::int64_t kMaxMicros = 9'223'371'331'199'999'999LL;
  std::uniform_int_distribution<std::int64_t> any_micros(kMinMicros, kMaxMicros);
  std::uniform_int_distribution<std::int64_t> near_2000(-4'000'000'000'000'000LL,
                                                        4'000'000'000'000'000LL);
  for (int i = 0; i < 20'000; ++i) {
    std::int64_t micros = i % 2 == 0 ? any_micros(rng) : near_2000(rng);
    if (i % 3 == 0) micros -= micros % 1'000'000;  // whole seconds: no fraction
    if (i % 5 == 0) micros -= micros % 1'000;      // trailing zeros to drop
    ASSERT_EQ(decode_one(PgWire::kTimestampTz, int64_field(micros)),
              reference::timestamp(micros, true))
        << micros;
    ASSERT_EQ(decode_one(PgWire::kTimestamp, int64_field(micros)),
              reference::timestamp(micros, false))
        << micros;
  }
  // Both ends of the fast civil-date range (days since 1970 in [-12'699'422, 2^30 - 12'699'422)),
  // as days since 2000.
  for (const std::int32_t edge : {-12'699'422 - 10'957, (1 << 30) - 12'699'422 - 10'957}) {
    for (std::int32_t days = edge - 400; days <= edge + 400; ++days) {
      bool bc = false;
      std::string expected = reference::date(days, bc);
      if (bc) expected += " BC";
      ASSERT_EQ(decode_one(PgWire::kDate, days_field(days)), expected) << days;
    }
  }
  std::uniform_int_distribution<std::int32_t> any_days(-2'451'545, 2'145'031'948);
  for (int i = 0; i < 20'000; ++i) {
    const std::int32_t days = i % 2 == 0 ? any_days(rng) : static_cast<std::int32_t>(i * 37 - 400'000);
    bool bc = false;
    std::string expected = reference::date(days, bc);
    if (bc) expected += " BC";
    ASSERT_EQ(decode_one(PgWire::kDate, days_field(days)), expected) << days;
  }
}


// A random wire field of `type` (never NULL), with the values that matter to CSV: empty text,
// text that needs quoting or starts like a formula, exactly 16 bytes, long; "-infinity" dates
// and timestamps; negative numbers; a numeric whose text is far longer than its wire form.
std::string random_field(PgWire type, std::mt19937_64& random) {
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(random() % n); };
  std::string out;
  switch (type) {
    case PgWire::kBool: return std::string(1, static_cast<char>(pick(2)));
    case PgWire::kInt2: put_be16(out, static_cast<std::int16_t>(random())); return out;
    case PgWire::kInt4: put_be32(out, static_cast<std::int32_t>(random())); return out;
    case PgWire::kInt8: return int64_field(static_cast<std::int64_t>(random() >> pick(64)));
    case PgWire::kFloat8: {
      const double value = (static_cast<double>(random() % 2'000'001) - 1e6) / 997.0;
      std::uint64_t bits = 0;
      std::memcpy(&bits, &value, sizeof bits);
      return int64_field(static_cast<std::int64_t>(bits));
    }
    case PgWire::kNumeric:
      if (pick(20) == 0) return numeric(3000, 0, 0, {7});  // 7 and 12,000 zeros
      return numeric(static_cast<int>(pick(3)) - 1, pick(2) ? 0x4000 : 0,
                     static_cast<int>(pick(6)), {static_cast<int>(pick(10000)),
                                                 static_cast<int>(pick(10000))});
    case PgWire::kDate:
      return days_field(pick(15) == 0 ? std::numeric_limits<std::int32_t>::min()
                                      : static_cast<std::int32_t>(pick(200'000)) - 100'000);
    case PgWire::kTimestamp:
    case PgWire::kTimestampTz:
      return int64_field(pick(15) == 0 ? std::numeric_limits<std::int64_t>::min()
                                       : static_cast<std::int64_t>(random() >> 8) -
                                             (std::int64_t{1} << 54));
    case PgWire::kUuid:
    case PgWire::kBytea:
      for (std::size_t i = 0, n = type == PgWire::kUuid ? 16 : pick(40); i < n; ++i) {
        out += static_cast<char>(random());
      }
      return out;
    case PgWire::kJsonb:
    case PgWire::kText: {
      static const char kPieces[][8] = {"a", "bc", ",", "\"", "\r", "\n", "=", "-", "+", "@",
                                        "\t", "x y", "\xc3\xa9", "0123456"};
      const std::size_t length = pick(8) == 0 ? 0 : pick(6) == 0 ? 16 + pick(60) : pick(16);
      while (out.size() < length) out += kPieces[pick(std::size(kPieces))];
      if (pick(10) == 0) out = std::string(16, 'z');
      return type == PgWire::kJsonb ? "\x01" + out : out;
    }
    default: return out;
  }
}

LogicalType logical_type(PgWire type) {
  switch (type) {
    case PgWire::kInt2: case PgWire::kInt4: case PgWire::kInt8: return LogicalType::kInt;
    case PgWire::kFloat8: return LogicalType::kFloat;
    case PgWire::kNumeric: return LogicalType::kDecimal;
    case PgWire::kDate: return LogicalType::kDate;
    case PgWire::kTimestamp: case PgWire::kTimestampTz: return LogicalType::kTimestamp;
    case PgWire::kBool: return LogicalType::kBool;
    case PgWire::kJsonb: return LogicalType::kJson;
    default: return LogicalType::kText;
  }
}

// Each row's decode_csv_record() against what the CSV encoder writes for the cells decode()
// makes of it, with and without CRLF and the formula guard.
void expect_records_match(const std::vector<PgWire>& wires, const std::vector<std::string>& rows) {
  std::vector<Column> columns;
  for (PgWire wire : wires) columns.push_back(Column{"c", logical_type(wire)});
  for (const bool crlf : {false, true}) {
    for (const bool guard : {false, true}) {
      OutputOptions options;
      options.header = false;
      options.crlf = crlf;
      options.formula_guard = guard;
      CsvRecordStyle style{crlf, {}};
      for (const Column& column : columns) {
        style.guarded.push_back(guard && !is_numeric(column.type));
      }
      PgBinaryDecoder cells(wires);
      PgBinaryDecoder records(wires, style);
      RowBatch cell_batch;
      RowBatch record_batch;
      cell_batch.reset(wires.size());
      record_batch.reset(1);
      EXPECT_EQ(cells.decode(header(), cell_batch), 0u);
      EXPECT_EQ(records.decode_csv_record(header(), record_batch), 0u);
      for (const std::string& row : rows) {
        ASSERT_EQ(cells.decode(row, cell_batch), 1u);
        ASSERT_EQ(records.decode_csv_record(row, record_batch), 1u);
      }
      ASSERT_EQ(record_batch.rows(), rows.size());
      auto encoder = make_csv_encoder(options);
      ByteBuffer expected;
      encoder->begin(columns, expected);
      for (std::size_t row = 0; row < rows.size(); ++row) {
        RowBatch one;
        one.reset(wires.size());
        one.add_row_from(cell_batch, row);
        const std::size_t before = expected.size();
        encoder->encode(one, expected);
        ASSERT_EQ(record_batch.cell(row, 0).value, expected.view().substr(before))
            << "row " << row << " crlf " << crlf << " guard " << guard;
      }
    }
  }
}

std::string row_of(const std::vector<std::string>& fields) {
  std::string row;
  put_be16(row, static_cast<int>(fields.size()));
  for (const std::string& field : fields) {
    put_be32(row, static_cast<std::int64_t>(field.size()));
    row += field;
  }
  return row;
}

// decode_csv_record() writes each row as the CSV encoder writes the cells decode() makes:
// random rows of every type, NULLs among them.
TEST(PgBinaryDecoderTest, CsvRecordsAreWhatTheCsvEncoderWrites) {
  const std::vector<PgWire> wires{PgWire::kText, PgWire::kInt4, PgWire::kTimestampTz,
                                  PgWire::kNumeric, PgWire::kText, PgWire::kDate,
                                  PgWire::kBool, PgWire::kJsonb, PgWire::kInt8,
                                  PgWire::kFloat8, PgWire::kUuid, PgWire::kBytea,
                                  PgWire::kTimestamp, PgWire::kInt2, PgWire::kText};
  std::mt19937_64 random(15);
  std::vector<std::string> rows;
  for (int i = 0; i < 3000; ++i) {
    std::string row;
    put_be16(row, static_cast<int>(wires.size()));
    for (PgWire wire : wires) {
      if (random() % 7 == 0) {
        put_be32(row, -1);
        continue;
      }
      const std::string field = random_field(wire, random);
      put_be32(row, static_cast<std::int64_t>(field.size()));
      row += field;
    }
    rows.push_back(std::move(row));
  }
  expect_records_match(wires, rows);
}

// Fields far larger than the room a row starts with: quoted text longer than one quoting
// piece (64 KiB) with quotes across the pieces' edges, hex bytea (twice its size), a numeric of
// 40,000 digits; between small fields, so the record grows mid-row and keeps what came before.
TEST(PgBinaryDecoderTest, CsvRecordsOfHugeFields) {
  std::string quoted;
  for (int i = 0; quoted.size() < 200'000; ++i) quoted += i % 97 == 0 ? "\"," : "abcdefgh";
  std::string plain(150'000, 'p');
  plain[0] = '=';
  std::string bytes;
  for (int i = 0; i < 70'000; ++i) bytes += static_cast<char>(i * 7);
  const std::vector<PgWire> wires{PgWire::kInt4, PgWire::kText, PgWire::kBytea,
                                  PgWire::kNumeric, PgWire::kText, PgWire::kDate};
  std::string four;
  put_be32(four, 42);
  const std::vector<std::string> rows{
      row_of({four, quoted, bytes, numeric(10'000, 0x4000, 0, {3}), plain, days_field(0)}),
      row_of({four, "-x", "", numeric(0, 0, 0, {1}), "\"",
              days_field(std::numeric_limits<std::int32_t>::min())}),
  };
  expect_records_match(wires, rows);
}

TEST(PgBinaryDecoderTest, CsvRecordsRefuseWhatDecodeRefuses) {
  PgBinaryDecoder decoder({PgWire::kInt4, PgWire::kText});
  RowBatch batch;
  batch.reset(1);
  decoder.decode_csv_record(header(), batch);
  std::string wrong_size;
  put_be16(wrong_size, 2);
  put_be32(wrong_size, 8);
  wrong_size += std::string(8, '\0');
  put_be32(wrong_size, 1);
  wrong_size += "a";
  EXPECT_THROW(decoder.decode_csv_record(wrong_size, batch), SourceError);
  std::string truncated;
  put_be16(truncated, 2);
  put_be32(truncated, 4);
  truncated += std::string(4, '\0');
  put_be32(truncated, 10);
  truncated += "short";
  EXPECT_THROW(decoder.decode_csv_record(truncated, batch), SourceError);
  std::string one_field;
  put_be16(one_field, 1);
  EXPECT_THROW(decoder.decode_csv_record(one_field, batch), SourceError);
}

}  // namespace
}  // namespace sluice
