#include "features/files/presigned_link.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>

#include "features/files/file_headers.hpp"

namespace sluice {
namespace {

// Expected values from Python: hmac.new(secret, b"GET\n" + key + b"\n" + expires, sha256).
TEST(PresignedLinkTest, SignatureIsHmacSha256OfMethodKeyAndExpiry) {
  EXPECT_EQ(link_signature("key", "album/2024/photo one.jpg", 1700000000),
            "8c5ce5dea4655afef7fb835733b6ffdae8fa1009fb8b0bddefde01131321ef3d");
  EXPECT_EQ(link_signature("k2", "\xC3\xA9t\xC3\xA9/\xC3\xBC.txt", 0),
            "d41a36fb4a8d187fcb0dda87f42a50480a2686b45e48121fd360bf68e572cf35");
}

TEST(PresignedLinkTest, ConstantTimeComparison) {
  EXPECT_TRUE(equal_in_constant_time("", ""));
  EXPECT_TRUE(equal_in_constant_time("abc", "abc"));
  EXPECT_FALSE(equal_in_constant_time("abc", "abd"));
  EXPECT_FALSE(equal_in_constant_time("abc", "abcd"));
  EXPECT_FALSE(equal_in_constant_time("abc", ""));
}

TEST(PresignedLinkTest, ExpiresIsDigitsOnly) {
  EXPECT_EQ(parse_link_expires("0"), 0);
  EXPECT_EQ(parse_link_expires("1700000000"), 1700000000);
  EXPECT_EQ(parse_link_expires("999999999999999999"), 999999999999999999);
  for (const char* bad :
       {"", "-1", "+1", " 1", "1 ", "1.5", "1e9", "0x10", "01", "00", "9999999999999999999"}) {
    EXPECT_FALSE(parse_link_expires(bad).has_value()) << bad;
  }
}

TEST(PresignedLinkTest, VerifyChecksSignatureThenExpiry) {
  const LinkSecrets secrets{std::string("now"), std::nullopt};
  const std::string sig = link_signature("now", "a/b.txt", 1000);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", sig, 999), LinkVerdict::kValid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", sig, 1000), LinkVerdict::kValid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", sig, 1001), LinkVerdict::kExpired);
  // Tampered key, expiry or signature; missing parameters; an expired link with a bad signature
  // is invalid, not expired.
  EXPECT_EQ(verify_link(secrets, "a/c.txt", "1000", sig, 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1001", sig, 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "01000", sig, 999), LinkVerdict::kInvalid);
  std::string flipped = sig;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", flipped, 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", flipped, 2000), LinkVerdict::kInvalid);
  std::string upper = sig;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", upper, 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", sig.substr(0, 63), 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", std::nullopt, sig, 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", std::nullopt, 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "1000", "", 999), LinkVerdict::kInvalid);
  EXPECT_EQ(verify_link(secrets, "a/b.txt", "-1000", sig, 999), LinkVerdict::kInvalid);
}

TEST(PresignedLinkTest, PreviousSecretIsAcceptedDuringRotation) {
  const std::string old_sig = link_signature("old", "k", 1000);
  EXPECT_EQ(verify_link(LinkSecrets{std::string("new"), std::nullopt}, "k", "1000", old_sig, 1),
            LinkVerdict::kInvalid);
  const LinkSecrets rotating{std::string("new"), std::string("old")};
  EXPECT_EQ(verify_link(rotating, "k", "1000", old_sig, 1), LinkVerdict::kValid);
  EXPECT_EQ(verify_link(rotating, "k", "1000", link_signature("new", "k", 1000), 1),
            LinkVerdict::kValid);
  EXPECT_EQ(verify_link(rotating, "k", "1000", link_signature("other", "k", 1000), 1),
            LinkVerdict::kInvalid);
}

TEST(PresignedLinkTest, SecretsComeFromTheEnvironment) {
  ::setenv("SLUICE_TEST_LINK_SECRET", "s1", 1);
  ::setenv("SLUICE_TEST_LINK_SECRET_PREVIOUS", "", 1);
  LinkSecrets secrets = link_secrets_from_env("SLUICE_TEST_LINK_SECRET");
  EXPECT_EQ(secrets.current, "s1");
  EXPECT_FALSE(secrets.previous.has_value());  // empty counts as unset
  ::setenv("SLUICE_TEST_LINK_SECRET_PREVIOUS", "s0", 1);
  EXPECT_EQ(link_secrets_from_env("SLUICE_TEST_LINK_SECRET").previous, "s0");
  ::unsetenv("SLUICE_TEST_LINK_SECRET");
  ::unsetenv("SLUICE_TEST_LINK_SECRET_PREVIOUS");
  EXPECT_FALSE(link_secrets_from_env("SLUICE_TEST_LINK_SECRET").enabled());
}

TEST(PresignedLinkTest, LifetimeParsing) {
  EXPECT_EQ(parse_link_lifetime("30s").seconds.count(), 30);
  EXPECT_EQ(parse_link_lifetime("15m").seconds.count(), 900);
  EXPECT_EQ(parse_link_lifetime("1h").seconds.count(), 3600);
  EXPECT_EQ(parse_link_lifetime("7d").seconds.count(), 604800);
  EXPECT_EQ(parse_link_lifetime("168h").seconds.count(), 604800);
  EXPECT_EQ(parse_link_lifetime("604800s").seconds.count(), 604800);
  EXPECT_TRUE(parse_link_lifetime("1h").error.empty());
  EXPECT_EQ(parse_link_lifetime("8d").error, "'8d' is beyond the maximum of 7d (604800 seconds)");
  EXPECT_EQ(parse_link_lifetime("604801s").error,
            "'604801s' is beyond the maximum of 7d (604800 seconds)");
  EXPECT_EQ(parse_link_lifetime("99999999999999999d").error,
            "'99999999999999999d' is beyond the maximum of 7d (604800 seconds)");
  EXPECT_EQ(parse_link_lifetime("0s").error, "'0s' is not a positive duration");
  for (const char* bad : {"", "1", "h", "1w", "-1h", "1.5h", " 1h", "1H", "1hh"}) {
    EXPECT_FALSE(parse_link_lifetime(bad).error.empty()) << bad;
    EXPECT_EQ(parse_link_lifetime(bad).seconds.count(), 0) << bad;
  }
}

TEST(PresignedLinkTest, PathEncodesTheKeyAndKeepsSlashes) {
  const std::string path = presigned_path("s", "dir/a b+c/\xC3\xA9.txt", 42);
  EXPECT_EQ(path, "/v1/files/dir/a%20b%2Bc/%C3%A9.txt?expires=42&sig=" +
                      link_signature("s", "dir/a b+c/\xC3\xA9.txt", 42));
}

TEST(FileHeadersTest, ContentTypeFromExtension) {
  EXPECT_EQ(content_type_for("a/b/report.CSV"), "text/csv; charset=utf-8");
  EXPECT_EQ(content_type_for("photo.jpg"), "image/jpeg");
  EXPECT_EQ(content_type_for("x.tar.gz"), "application/gzip");
  EXPECT_EQ(content_type_for("data.parquet"), "application/vnd.apache.parquet");
  EXPECT_EQ(content_type_for("README"), "application/octet-stream");
  EXPECT_EQ(content_type_for(".hidden"), "application/octet-stream");
  EXPECT_EQ(content_type_for("dir.png/file"), "application/octet-stream");
  EXPECT_EQ(content_type_for("a.unknownext"), "application/octet-stream");
}

TEST(FileHeadersTest, StrongETagFromSizeAndMtime) {
  EXPECT_EQ(object_etag(ObjectInfo{"k", 10, 255}), "\"a-ff\"");
  EXPECT_NE(object_etag(ObjectInfo{"k", 10, 256}), object_etag(ObjectInfo{"k", 10, 255}));
  // S3's tag joins in: same size and second, other content → another ETag.
  EXPECT_EQ(object_etag(ObjectInfo{"k", 10, 255, "9e107d9d372bb6826bd81d3542a419d6"}),
            "\"a-ff-9e107d9d372bb6826bd81d3542a419d6\"");
  EXPECT_NE(object_etag(ObjectInfo{"k", 10, 255, "abc-2"}),
            object_etag(ObjectInfo{"k", 10, 255, "abd-2"}));
  EXPECT_EQ(object_etag(ObjectInfo{"k", 10, 255, "a\"b"}), "\"a-ff-ab\"");
}

TEST(FileHeadersTest, HttpDate) {
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST(FileHeadersTest, IfNoneMatch) {
  EXPECT_TRUE(if_none_match_matches("\"a-ff\"", "\"a-ff\""));
  EXPECT_TRUE(if_none_match_matches("W/\"a-ff\"", "\"a-ff\""));
  EXPECT_TRUE(if_none_match_matches("\"x\", \"a-ff\"", "\"a-ff\""));
  EXPECT_TRUE(if_none_match_matches(" * ", "\"a-ff\""));
  EXPECT_FALSE(if_none_match_matches("\"a-fe\"", "\"a-ff\""));
  EXPECT_FALSE(if_none_match_matches("a-ff", "\"a-ff\""));
  EXPECT_FALSE(if_none_match_matches("", "\"a-ff\""));
}

TEST(FileHeadersTest, BaseName) {
  EXPECT_EQ(base_name("a/b/c.txt"), "c.txt");
  EXPECT_EQ(base_name("c.txt"), "c.txt");
}

}  // namespace
}  // namespace sluice
