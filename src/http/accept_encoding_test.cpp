#include "http/accept_encoding.hpp"

#include <gtest/gtest.h>

#include <array>
#include <initializer_list>
#include <string>
#include <vector>

namespace sluice {
namespace {

constexpr std::array<std::string_view, 2> kOffered{"gzip", "zstd"};

std::string choose(std::initializer_list<std::string_view> fields) {
  std::vector<std::string_view> list(fields);
  std::optional<std::string_view> coding = choose_content_coding(list, kOffered);
  return coding ? std::string(*coding) : "406";
}

TEST(AcceptEncoding, NoHeaderMeansIdentity) {
  EXPECT_EQ(choose({}), "identity");
}

TEST(AcceptEncoding, EmptyValueMeansIdentity) {
  EXPECT_EQ(choose({""}), "identity");
  EXPECT_EQ(choose({" , ,"}), "identity");
}

TEST(AcceptEncoding, BrowsersGetGzip) {
  EXPECT_EQ(choose({"gzip, deflate, br, zstd"}), "gzip");
  EXPECT_EQ(choose({"gzip, deflate, br"}), "gzip");
  EXPECT_EQ(choose({"zstd, gzip"}), "gzip") << "equal q: the server's preference";
}

TEST(AcceptEncoding, QValuesDecide) {
  EXPECT_EQ(choose({"gzip;q=0.5, zstd"}), "zstd");
  EXPECT_EQ(choose({"gzip;q=0.5, zstd;q=0.501"}), "zstd");
  EXPECT_EQ(choose({"zstd;q=0.9, gzip;q=0.8"}), "zstd");
  EXPECT_EQ(choose({"gzip ; Q = 0.2 , zstd ;q=0.1"}), "gzip");
  EXPECT_EQ(choose({"zstd"}), "zstd");
  EXPECT_EQ(choose({"br, deflate"}), "identity");
}

TEST(AcceptEncoding, ZeroWeightRefuses) {
  EXPECT_EQ(choose({"gzip;q=0"}), "identity");
  EXPECT_EQ(choose({"gzip;q=0, zstd;q=0.000"}), "identity");
  EXPECT_EQ(choose({"gzip;q=0, *"}), "zstd");
}

TEST(AcceptEncoding, IdentityAgainstCodings) {
  EXPECT_EQ(choose({"gzip;q=0.5, identity"}), "identity");
  EXPECT_EQ(choose({"gzip, identity;q=0.5"}), "gzip");
  EXPECT_EQ(choose({"gzip, identity"}), "gzip") << "asked for by name: compress";
  EXPECT_EQ(choose({"identity"}), "identity");
}

TEST(AcceptEncoding, Star) {
  EXPECT_EQ(choose({"*"}), "gzip");
  EXPECT_EQ(choose({"*;q=0.3"}), "gzip");
  EXPECT_EQ(choose({"*;q=0.3, gzip;q=0.1"}), "zstd");
  EXPECT_EQ(choose({"*;q=0"}), "406");
  EXPECT_EQ(choose({"*;q=0, identity"}), "identity");
  EXPECT_EQ(choose({"*;q=0, zstd;q=0.2"}), "zstd");
}

TEST(AcceptEncoding, NothingAcceptableIs406) {
  EXPECT_EQ(choose({"br, identity;q=0"}), "406");
  EXPECT_EQ(choose({"identity;q=0"}), "406");
  EXPECT_EQ(choose({"gzip;q=0, identity;q=0"}), "406");
  EXPECT_EQ(choose({"br, identity;q=0, gzip"}), "gzip");
}

TEST(AcceptEncoding, CaseAliasesAndSeveralFields) {
  EXPECT_EQ(choose({"GZIP"}), "gzip");
  EXPECT_EQ(choose({"x-gzip"}), "gzip");
  EXPECT_EQ(choose({"ZStd"}), "zstd");
  EXPECT_EQ(choose({"br", "zstd"}), "zstd");
  EXPECT_EQ(choose({"gzip;q=0.1", "zstd;q=0.2"}), "zstd");
  EXPECT_EQ(choose({"br", "identity;q=0"}), "406");
}

TEST(AcceptEncoding, MalformedWeightsAreIgnoredNotTrusted) {
  EXPECT_EQ(choose({"gzip;q=2, zstd;q=0.5"}), "zstd");
  EXPECT_EQ(choose({"gzip;q=1.5"}), "identity");
  EXPECT_EQ(choose({"gzip;q=0.1234"}), "identity");
  EXPECT_EQ(choose({"gzip;q=abc"}), "identity");
  EXPECT_EQ(choose({"gzip;q="}), "identity");
  EXPECT_EQ(choose({"identity;q=x"}), "identity");
  EXPECT_EQ(choose({"gzip;level=9"}), "gzip") << "unknown parameters do not matter";
  EXPECT_EQ(choose({";q=1, gzip"}), "gzip");
}

TEST(AcceptEncoding, FromARequest) {
  HttpRequest request;
  EXPECT_EQ(choose_content_coding(request, kOffered), "identity");
  request.headers = {{"accept-encoding", "br"}, {"Accept-Encoding", "zstd;q=0.4"}};
  EXPECT_EQ(choose_content_coding(request, kOffered), "zstd");
}

}  // namespace
}  // namespace sluice
