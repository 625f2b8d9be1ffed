#include "cube/cube_format.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace sluice {
namespace {

CubeDictionary dictionary(std::string name, std::vector<std::string> values) {
  CubeDictionary out;
  out.name = std::move(name);
  out.values = std::move(values);
  out.index();
  return out;
}

CubeMetricLayout metric(std::string name, CubeMetricType type, std::uint32_t bits, std::int64_t base = 0,
                        int null_bit = -1) {
  CubeMetricLayout out;
  out.name = std::move(name);
  out.type = type;
  out.bits = bits;
  out.base = base;
  out.null_bit = null_bit;
  return out;
}

CubeValue integer(std::int64_t value) {
  CubeValue out;
  out.null = false;
  out.integer = value;
  return out;
}

TEST(CubeDecimal, ParsesExactlyAndRoundsHalfAwayFromZero) {
  EXPECT_EQ(parse_cube_decimal("123.45", 2), 12345);
  EXPECT_EQ(parse_cube_decimal("-0.05", 2), -5);
  EXPECT_EQ(parse_cube_decimal("0", 2), 0);
  EXPECT_EQ(parse_cube_decimal("1.005", 2), 101);
  EXPECT_EQ(parse_cube_decimal("-1.005", 2), -101);
  EXPECT_EQ(parse_cube_decimal("1.004", 2), 100);
  EXPECT_EQ(parse_cube_decimal("1e3", 2), 100000);
  EXPECT_EQ(parse_cube_decimal("2.5E-1", 2), 25);
  EXPECT_EQ(parse_cube_decimal("42", 0), 42);
  EXPECT_EQ(parse_cube_decimal("9999999999999999.99", 2), 999999999999999999);
  EXPECT_EQ(parse_cube_decimal("-9999999999999999.99", 2), -999999999999999999);
  EXPECT_EQ(parse_cube_decimal("12345678901234567.89", 2), std::nullopt);  // 19 digits
  EXPECT_EQ(parse_cube_decimal("9999999999999999.995", 2), std::nullopt);  // rounds to 19 digits
  EXPECT_EQ(parse_cube_decimal("abc", 2), std::nullopt);
  EXPECT_EQ(parse_cube_decimal("1.2.3", 2), std::nullopt);
  EXPECT_EQ(parse_cube_decimal("", 2), std::nullopt);
  EXPECT_EQ(parse_cube_decimal("-", 2), std::nullopt);
}

TEST(CubeDecimal, RendersWithItsScale) {
  auto render = [](std::int64_t scaled, int scale) {
    std::string out;
    append_decimal(out, scaled, scale);
    return out;
  };
  EXPECT_EQ(render(12345, 2), "123.45");
  EXPECT_EQ(render(-5, 2), "-0.05");
  EXPECT_EQ(render(0, 2), "0.00");
  EXPECT_EQ(render(7, 0), "7");
  EXPECT_EQ(render(std::numeric_limits<std::int64_t>::min(), 2), "-92233720368547758.08");
}

TEST(CubeInt, AcceptsIntegralFloatsOnly) {
  EXPECT_EQ(parse_cube_int("42"), 42);
  EXPECT_EQ(parse_cube_int("-7"), -7);
  EXPECT_EQ(parse_cube_int("3.0"), 3);
  EXPECT_EQ(parse_cube_int("3.001"), std::nullopt);
  EXPECT_EQ(parse_cube_int("3.5"), std::nullopt);
  EXPECT_EQ(parse_cube_int("x"), std::nullopt);
  EXPECT_EQ(parse_cube_int(""), std::nullopt);
  EXPECT_EQ(parse_cube_int("9223372036854775808"), std::nullopt);
  EXPECT_EQ(parse_cube_float("1.5"), 1.5);
  EXPECT_EQ(parse_cube_float("inf"), std::nullopt);
  EXPECT_EQ(parse_cube_float("nan"), std::nullopt);
}

TEST(CubeRecord, WithoutBodyDimensionsNoDataIsDistinctFromZero) {
  CubeSchema schema;
  schema.file.push_back(dictionary("day", {"1", "2"}));
  schema.metrics.push_back(metric("orders", CubeMetricType::kInt64, 0, 0));  // every value 0
  schema.metrics.push_back(metric("revenue", CubeMetricType::kDecimal, 20, -100, 0));
  schema.metrics.back().scale = 2;
  schema.finish_layout();
  EXPECT_EQ(schema.layout, CubeSchema::BodyLayout::kNone);
  EXPECT_EQ(schema.record_size, 1u + 3u);  // presence byte, 1 NULL bit + 20 bits
  std::string record(schema.record_size, '\0');
  std::string out;
  EXPECT_FALSE(schema.render_record(record, out));
  EXPECT_EQ(out, "");
  std::vector<std::uint64_t> slots{0};
  std::vector<CubeValue> values{integer(0), CubeValue{}};
  schema.write_record(record.data(), slots, values);
  ASSERT_TRUE(schema.render_record(record, out));
  EXPECT_EQ(out, R"({"orders":0,"revenue":null})");
  record.assign(schema.record_size, '\0');
  values = {integer(0), integer(-100)};
  schema.write_record(record.data(), slots, values);
  out.clear();
  ASSERT_TRUE(schema.render_record(record, out));
  EXPECT_EQ(out, R"({"orders":0,"revenue":-1.00})");
}

TEST(CubeRecord, ExtremeIntegersRoundTrip) {
  CubeSchema schema;
  const std::int64_t low = std::numeric_limits<std::int64_t>::min();
  const std::int64_t high = std::numeric_limits<std::int64_t>::max();
  schema.metrics.push_back(metric("n", CubeMetricType::kInt64, 64, low));
  schema.finish_layout();
  for (std::int64_t value : {low, std::int64_t{-1}, std::int64_t{0}, high}) {
    std::string record(schema.record_size, '\0');
    std::vector<std::uint64_t> slots{0};
    std::vector<CubeValue> values{integer(value)};
    schema.write_record(record.data(), slots, values);
    std::string out;
    ASSERT_TRUE(schema.render_record(record, out));
    EXPECT_EQ(out, "{\"n\":" + std::to_string(value) + "}");
  }
}

TEST(CubeRecord, BodyKeysAsBitmapNestMapsInOrder) {
  CubeSchema schema;
  schema.body.push_back(dictionary("product", {"A", "B", "C"}));
  schema.body.push_back(dictionary("size", {"s", "m"}));
  schema.metrics.push_back(metric("q", CubeMetricType::kInt64, 7, 1));
  schema.slots = 3;
  schema.finish_layout();
  EXPECT_EQ(schema.layout, CubeSchema::BodyLayout::kBitmap);
  std::string record(schema.record_size, '\0');
  std::vector<std::uint64_t> slots{0, 1, 5};  // A/s, A/m, C/m
  std::vector<CubeValue> values{integer(1), integer(2), integer(99)};
  schema.write_record(record.data(), slots, values);
  std::string out;
  ASSERT_TRUE(schema.render_record(record, out));
  EXPECT_EQ(out, R"({"A":{"s":{"q":1},"m":{"q":2}},"C":{"m":{"q":99}}})");
}

TEST(CubeRecord, ManyBodyKeysUseACountAndPositions) {
  CubeSchema schema;
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back("k" + std::to_string(i));
  schema.body.push_back(dictionary("key", keys));
  CubeMetricLayout text = metric("t", CubeMetricType::kText, 8 * (1 + 5));
  text.length_bytes = 1;
  schema.metrics.push_back(text);
  schema.slots = 2;
  schema.finish_layout();
  EXPECT_EQ(schema.layout, CubeSchema::BodyLayout::kCount);
  std::string record(schema.record_size, '\0');
  std::vector<std::uint64_t> slots{7, 999};
  CubeValue quote;
  quote.null = false;
  quote.text = "a\"b\n";
  CubeValue empty;
  empty.null = false;
  empty.text = "";
  std::vector<CubeValue> values{quote, empty};
  schema.write_record(record.data(), slots, values);
  std::string out;
  ASSERT_TRUE(schema.render_record(record, out));
  EXPECT_EQ(out, R"({"k7":{"t":"a\"b\n"},"k999":{"t":""}})");
}

TEST(CubeRecord, MalformedRecordsThrow) {
  CubeSchema schema;
  schema.body.push_back(dictionary("key", {"a", "b", "c"}));
  schema.metrics.push_back(metric("q", CubeMetricType::kInt64, 8));
  schema.slots = 1;
  schema.finish_layout();
  std::string record(schema.record_size, '\0');
  record[0] = 0x03;  // two keys set, one slot
  std::string out;
  EXPECT_THROW(schema.render_record(record, out), CubeFormatError);
  record[0] = 0x08;  // a key beyond the dictionary
  EXPECT_THROW(schema.render_record(record, out), CubeFormatError);
  EXPECT_THROW(schema.render_record(record.substr(1), out), CubeFormatError);
}

TEST(CubeHeader, RoundTripsAndRejectsDamage) {
  const std::string header = write_cube_file_header(R"({"x":1})", 38, 125, 0xdeadbeef);
  CubeFileHeader parsed = parse_cube_file_header(header + "records");
  EXPECT_EQ(parsed.data_offset, header.size());
  EXPECT_EQ(parsed.record_size, 38u);
  EXPECT_EQ(parsed.records, 125u);
  EXPECT_EQ(parsed.records_crc, 0xdeadbeefu);
  EXPECT_EQ(parsed.schema_json, R"({"x":1})");
  std::string damaged = header;
  damaged[kCubeFixedHeader] = 'y';
  EXPECT_THROW(parse_cube_file_header(damaged), CubeFormatError);
  EXPECT_THROW(parse_cube_file_header(header.substr(0, header.size() - 1)), CubeFormatError);
  EXPECT_THROW(parse_cube_file_header("SLUICUBX" + header.substr(8)), CubeFormatError);
}

TEST(CubeManifest, RoundTripsThroughJson) {
  CubeManifest manifest;
  manifest.cube = "sales";
  manifest.version = new_cube_version(1'800'000'000'000);
  manifest.built_at_ms = 1'800'000'000'000;
  manifest.rows = 3;
  manifest.schema.path = {"country"};
  manifest.schema.file.push_back(dictionary("day", {"2026-01-01", "2026-01-02"}));
  manifest.schema.metrics.push_back(metric("orders", CubeMetricType::kInt64, 3, 1));
  manifest.schema.finish_layout();
  CubeFileEntry file;
  file.path = {"DE"};
  file.key = cube_version_prefix("sales", manifest.version) + "000000.cube";
  file.data_offset = 100;
  file.size = 100 + 2 * manifest.schema.record_size;
  file.cells = 2;
  file.sha256 = "ab";
  manifest.files.push_back(file);
  const CubeManifest parsed = parse_cube_manifest(cube_manifest_json(manifest));
  EXPECT_EQ(parsed.version, manifest.version);
  EXPECT_EQ(parsed.schema.record_size, manifest.schema.record_size);
  EXPECT_EQ(parsed.schema.file[0].find("2026-01-02"), 1u);
  ASSERT_EQ(parsed.files.size(), 1u);
  EXPECT_EQ(parsed.files[0].key, file.key);
  // A manifest whose file sizes disagree with the layout is refused, not served.
  file.size += 1;
  manifest.files[0] = file;
  EXPECT_THROW(parse_cube_manifest(cube_manifest_json(manifest)), CubeFormatError);
  EXPECT_THROW(parse_cube_manifest("{"), CubeFormatError);
  EXPECT_THROW(parse_cube_manifest("[]"), CubeFormatError);
}

TEST(CubePointer, RoundTripsAndVersionsSortByTime) {
  CubePointer pointer;
  pointer.version = new_cube_version(2000);
  pointer.manifest_key = "m";
  pointer.retired.push_back(CubeRetired{new_cube_version(1000), "old", 1500});
  const CubePointer parsed = parse_cube_pointer(cube_pointer_json(pointer));
  EXPECT_EQ(parsed.version, pointer.version);
  ASSERT_EQ(parsed.retired.size(), 1u);
  EXPECT_EQ(parsed.retired[0].retired_at_ms, 1500);
  EXPECT_LT(parsed.retired[0].version, parsed.version);
  EXPECT_EQ(cube_pointer_key("sales"), ".sluice/cubes/sales/current.json");
}

}  // namespace
}  // namespace sluice
