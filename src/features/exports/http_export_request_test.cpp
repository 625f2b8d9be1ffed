#include "features/exports/http_export_request.hpp"

#include <gtest/gtest.h>

#include "core/api_error.hpp"

namespace sluice {
namespace {

// ---- split_export_name ------------------------------------------------

ApiError split_error(std::string_view segment) {
  try {
    split_export_name(segment);
  } catch (const ApiError& error) {
    return error;
  }
  ADD_FAILURE() << "no ApiError for '" << segment << "'";
  return ApiError(0, "", "");
}

TEST(SplitExportNameTest, NameAndFormat) {
  EXPECT_EQ(split_export_name("orders.csv"), std::make_pair(std::string("orders"), Format::kCsv));
  EXPECT_EQ(split_export_name("orders.jsonl"),
            std::make_pair(std::string("orders"), Format::kJsonLines));
  EXPECT_EQ(split_export_name("Or_d-3rs.csv"),
            std::make_pair(std::string("Or_d-3rs"), Format::kCsv));
  std::string longest(64, 'a');
  EXPECT_EQ(split_export_name(longest + ".csv").first, longest);
}

TEST(SplitExportNameTest, UnknownFormatIs404) {
  for (const char* segment :
       {"orders", "orders.", "orders.xlsx", "orders.CSV", "orders.csv.gz", "orders.xml"}) {
    ApiError error = split_error(segment);
    EXPECT_EQ(error.status(), 404) << segment;
    EXPECT_EQ(error.code(), "unknown_format") << segment;
  }
  EXPECT_STREQ(split_error("orders.xlsx").what(), "unknown format 'xlsx'; available: csv, tsv, jsonl, json (each optionally + .gz or .zst)");
}

TEST(SplitExportNameTest, BadNamesAre400) {
  for (const std::string& segment :
       {std::string(".."), std::string("..csv"), std::string(".csv"), std::string(""),
        std::string("a/b.csv"), std::string("a b.csv"), std::string("a%2e.csv"),
        std::string("\xC3\xA4.csv"), std::string(65, 'a') + ".csv", std::string(65, 'a')}) {
    ApiError error = split_error(segment);
    EXPECT_EQ(error.status(), 400) << segment;
    EXPECT_EQ(error.code(), "invalid_dataset_name") << segment;
  }
}

// Found by fuzz/fuzz_request_target: the segment is percent-decoded, so the extension shown in
// the message can hold any bytes; invalid UTF-8 made the JSON error body invalid and a NUL cut
// the message short (what() is a C string).
TEST(SplitExportNameTest, TheUnknownFormatIsShownAsText) {
  EXPECT_STREQ(split_error("orders.\xFF" "csv").what(),
               "unknown format '\xEF\xBF\xBD" "csv'; available: csv, tsv, jsonl, json (each optionally + .gz or .zst)");
  EXPECT_STREQ(split_error(std::string("orders.\0csv\n", 12)).what(),
               "unknown format '\\x00csv\\x0A'; available: csv, tsv, jsonl, json (each optionally + .gz or .zst)");
  // At most 16 bytes, never half a character: 15 ASCII bytes and then a two-byte character.
  EXPECT_STREQ(split_error("orders.xxxxxxxxxxxxxxx\u00FC\u00FC").what(),
               "unknown format 'xxxxxxxxxxxxxxx\u00FC'; available: csv, tsv, jsonl, json (each optionally + .gz or .zst)");
}

// ---- parse_http_export_request ----------------------------------------

HttpRequest get(std::string segment, Headers headers = {}) {
  HttpRequest request;
  request.method = "GET";
  request.segments = {"v1", "exports", std::move(segment)};
  request.params = {{"country", "DE"}, {"limit", "10"}};
  request.headers = std::move(headers);
  request.request_id = "r-1";
  return request;
}

TEST(ParseHttpExportRequestTest, OneValueFromPathParametersAndHeaders) {
  HttpExportRequest parsed = parse_http_export_request(get("orders.jsonl"));
  EXPECT_EQ(parsed.request.dataset, "orders");
  EXPECT_EQ(parsed.request.format, Format::kJsonLines);
  EXPECT_EQ(parsed.request.compression, Compression::kNone);
  EXPECT_FALSE(parsed.compressed_file);
  EXPECT_EQ(parsed.request.params, (QueryParams{{"country", "DE"}, {"limit", "10"}}));
  EXPECT_EQ(parsed.request.request_id, "r-1");
}

TEST(ParseHttpExportRequestTest, TheSuffixMakesACompressedFileAndWinsOverAcceptEncoding) {
  HttpExportRequest parsed =
      parse_http_export_request(get("orders.csv.zst", {{"Accept-Encoding", "gzip"}}));
  EXPECT_EQ(parsed.request.dataset, "orders");
  EXPECT_EQ(parsed.request.format, Format::kCsv);
  EXPECT_EQ(parsed.request.compression, Compression::kZstd);
  EXPECT_TRUE(parsed.compressed_file);
}

TEST(ParseHttpExportRequestTest, AcceptEncodingChoosesAContentCodingOr406) {
  HttpExportRequest parsed = parse_http_export_request(get("orders.csv", {{"Accept-Encoding", "gzip"}}));
  EXPECT_EQ(parsed.request.compression, Compression::kGzip);
  EXPECT_FALSE(parsed.compressed_file);
  try {
    parse_http_export_request(get("orders.csv", {{"Accept-Encoding", "identity;q=0, br"}}));
    ADD_FAILURE() << "no 406";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.status(), 406);
    EXPECT_EQ(error.code(), "not_acceptable");
  }
}

}  // namespace
}  // namespace sluice
