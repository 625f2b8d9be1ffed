#include "features/archives/archive_request.hpp"

#include <gtest/gtest.h>

#include "core/api_error.hpp"

namespace sluice {
namespace {

std::string error_of(std::string_view body) {
  try {
    parse_archive_request(body);
  } catch (const ApiError& error) {
    EXPECT_EQ(error.status(), 400);
    return error.what();
  }
  return "no error";
}

TEST(ArchiveRequestTest, EntriesAndPrefixForms) {
  ArchiveRequest request = parse_archive_request(
      R"({"name": "album.zip", "entries": [{"key": "a/b.jpg", "path": "x.jpg"}, {"key": "c"}],
          "method": "store"})");
  EXPECT_EQ(request.name, "album");
  ASSERT_EQ(request.entries.size(), 2u);
  EXPECT_EQ(request.entries[0].path, "x.jpg");
  EXPECT_EQ(request.entries[1].path, "c");
  EXPECT_EQ(request.method, MethodChoice::kStore);
  EXPECT_FALSE(request.prefix.has_value());
  ArchiveRequest by_prefix = parse_archive_request(R"({"prefix": "album/"})");
  EXPECT_EQ(by_prefix.prefix, "album/");
  EXPECT_EQ(by_prefix.name, "archive");
  EXPECT_EQ(by_prefix.method, MethodChoice::kAuto);
}

TEST(ArchiveRequestTest, ErrorsNameTheField) {
  EXPECT_NE(error_of("{").find("body"), std::string::npos);
  EXPECT_NE(error_of("[]").find("body"), std::string::npos);
  EXPECT_NE(error_of(R"({"prefix": "a/", "colour": 1})").find("colour: unknown field"), std::string::npos);
  EXPECT_NE(error_of(R"({"name": "x"})").find("entries"), std::string::npos);
  EXPECT_NE(error_of(R"({"prefix": "a/", "entries": []})").find("not both"), std::string::npos);
  EXPECT_NE(error_of(R"({"entries": [{"key": "../x"}]})").find("entries[0].key"), std::string::npos);
  EXPECT_NE(error_of(R"({"entries": [{"key": "ok"}, {"path": "p"}]})").find("entries[1].key: is required"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"entries": [{"key": ".sluice/archives/x.json"}]})").find("reserved"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"prefix": ".sluice/"})").find("reserved"), std::string::npos);
  EXPECT_NE(error_of(R"({"entries": [{"key": "a", "size": 1}]})").find("entries[0].size"), std::string::npos);
  EXPECT_NE(error_of(R"({"prefix": "", "method": "zstd"})").find("method"), std::string::npos);
  EXPECT_NE(error_of(R"({"prefix": "", "name": ""})").find("name"), std::string::npos);
}

ApiError api_error_of(std::string_view body, std::size_t max_entries = kMaxArchiveEntries) {
  try {
    parse_archive_request(body, max_entries);
  } catch (const ApiError& error) {
    return error;
  }
  return ApiError(0, "none", "no error");
}

TEST(ArchiveRequestTest, TooManyEntriesIs413NamingTheLimit) {
  std::string many = R"({"entries": [)";
  for (int i = 0; i <= 100'000; ++i) many += std::string(i ? "," : "") + R"({"key":"k"})";
  const ApiError error = api_error_of(many + "]}");
  EXPECT_EQ(error.status(), 413);
  EXPECT_EQ(error.code(), "too_many_entries");
  EXPECT_NE(std::string(error.what()).find("more than 100000"), std::string::npos);
  ASSERT_FALSE(error.fields().empty());
  EXPECT_EQ(error.fields()[0], std::make_pair(std::string("limit"), std::string("max_entries")));
  EXPECT_EQ(api_error_of(R"({"entries": [{"key": "a"}, {"key": "b"}, {"key": "c"}]})", 2).status(),
            413);
  EXPECT_EQ(parse_archive_request(R"({"entries": [{"key": "a"}, {"key": "b"}]})", 2).entries.size(),
            2u);
}

TEST(ArchiveRequestTest, ExpiresInAsSecondsOrText) {
  EXPECT_FALSE(parse_archive_request(R"({"prefix": "a/"})").expires_in.has_value());
  EXPECT_EQ(parse_archive_request(R"({"prefix": "a/", "expires_in": 3600})").expires_in, 3600);
  EXPECT_EQ(parse_archive_request(R"({"prefix": "a/", "expires_in": "24h"})").expires_in, 86'400);
  EXPECT_EQ(parse_archive_request(R"({"prefix": "a/", "expires_in": "7d"})").expires_in,
            7 * 86'400);
  for (const char* bad : {"0", "-5", "1.5", "\"1w\"", "\"\"", "true", "31622401",
                          "18446744073709551615", "\"367d\""}) {
    const std::string body = std::string(R"({"prefix": "a/", "expires_in": )") + bad + "}";
    EXPECT_NE(error_of(body).find("expires_in: expected"), std::string::npos) << bad;
  }
}

ApiError selection_error_of(std::string_view body) {
  try {
    check_archive_selection(parse_archive_request(body));
  } catch (const ApiError& error) {
    return error;
  }
  return ApiError(0, "none", "no error");
}

TEST(ArchiveRequestTest, TheWholeStoreOnlyWithItsFlag) {
  const ApiError whole = selection_error_of(R"({"prefix": ""})");
  EXPECT_EQ(whole.status(), 422);
  EXPECT_EQ(whole.code(), "whole_store_required");
  EXPECT_NE(std::string(whole.what()).find("\"whole_store\": true"), std::string::npos);
  EXPECT_EQ(selection_error_of(R"({"prefix": "", "whole_store": true})").status(), 0);
  EXPECT_EQ(selection_error_of(R"({"prefix": "", "whole_store": false})").status(), 422);
  EXPECT_EQ(selection_error_of(R"({"prefix": "a/", "whole_store": true})").status(), 400);
  EXPECT_EQ(selection_error_of(R"({"entries": [{"key": "a"}], "whole_store": true})").status(),
            400);
  EXPECT_EQ(selection_error_of(R"({"prefix": "a/"})").status(), 0);
  EXPECT_NE(error_of(R"({"prefix": "a/", "whole_store": 1})").find("whole_store"),
            std::string::npos);
  const ApiError empty = selection_error_of(R"({"entries": []})");
  EXPECT_EQ(empty.status(), 422);
  EXPECT_EQ(empty.code(), "empty_selection");
}

// Found by fuzz/fuzz_archive_request.
TEST(ArchiveRequestTest, ErrorsNameEvenOddFields) {
  // A member with an empty name was ": unknown field", naming nothing.
  EXPECT_EQ(
      error_of(R"({"": "album/"})"),
      R"("": unknown field; allowed: name, entries, prefix, method, expires_in, whole_store)");
  EXPECT_EQ(error_of(R"({"entries": [{"key": "a", "": 1}]})"),
            R"(entries[0]."": unknown field; allowed: key, path)");
  // A NUL ended the message (what() is a C string): "na" and nothing after it.
  EXPECT_EQ(
      error_of(R"({"na\u0000me": "x", "prefix": ""})"),
      R"(na\x00me: unknown field; allowed: name, entries, prefix, method, expires_in, whole_store)");
  EXPECT_EQ(error_of(R"({"entries": [{"key": "a\u0000b\nc"}]})"),
            R"(entries[0].key: the key 'a\x00b\x0Ac' contains a control character)");
}

// Found by fuzz/fuzz_archive_request: a 200-byte device name became 201 bytes ("_CON...").
TEST(ArchiveRequestTest, TheDownloadNameStaysWithin200Bytes) {
  const std::string given = "CON." + std::string(196, 'x');
  ArchiveRequest request = parse_archive_request(R"({"prefix": "", "name": ")" + given + R"("})");
  EXPECT_EQ(request.name, "_CON." + std::string(195, 'x'));
  EXPECT_EQ(request.name.size(), 200u);
  ArchiveRequest dotted = parse_archive_request(
      R"({"prefix": "", "name": "nul)" + std::string(195, ' ') + R"(.x"})");  // cut before ".x"
  EXPECT_EQ(dotted.name, "_nul" + std::string(196, '_'));
}

TEST(ArchiveRequestTest, AutoStoresWhatIsAlreadyCompressed) {
  EXPECT_EQ(method_for(MethodChoice::kAuto, "a/IMG_1.JPG"), ZipMethod::kStore);
  EXPECT_EQ(method_for(MethodChoice::kAuto, "movie.mp4"), ZipMethod::kStore);
  EXPECT_EQ(method_for(MethodChoice::kAuto, "notes.txt"), ZipMethod::kDeflate);
  EXPECT_EQ(method_for(MethodChoice::kAuto, "jpg.d/README"), ZipMethod::kDeflate);
  EXPECT_EQ(method_for(MethodChoice::kStore, "notes.txt"), ZipMethod::kStore);
  EXPECT_EQ(method_for(MethodChoice::kDeflate, "a.jpg"), ZipMethod::kDeflate);
}

}  // namespace
}  // namespace sluice
