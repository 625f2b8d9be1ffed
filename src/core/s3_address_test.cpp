#include "core/s3_address.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

// The parts make_s3_endpoint builds its addresses from.
TEST(S3Address, ParsesTheEndpointIntoItsParts) {
  S3Url url;
  EXPECT_EQ(parse_s3_endpoint("HTTP://[::1]:09000/", url), "");
  EXPECT_FALSE(url.tls);
  EXPECT_EQ(url.host, "::1");
  EXPECT_TRUE(url.ip);
  EXPECT_TRUE(url.ipv6);
  EXPECT_EQ(url.port, "9000");

  EXPECT_EQ(parse_s3_endpoint(s3_aws_endpoint("eu-central-1"), url), "");
  EXPECT_TRUE(url.tls);
  EXPECT_EQ(url.host, "s3.eu-central-1.amazonaws.com");
  EXPECT_FALSE(url.ip);
  EXPECT_EQ(url.port, "443");
}

// The loader judges `addressing` against the endpoint's text: an invalid endpoint is reported at
// `endpoint` alone, not again at `addressing`; the word itself is still checked.
TEST(S3Address, AddressingAgainstAnInvalidEndpointChecksOnlyTheWord) {
  EXPECT_EQ(s3_addressing_problem("virtual", "https://a..b", "a.b"), "");
  EXPECT_EQ(s3_addressing_problem("Virtual", "https://a..b", "a.b"),
            "expected one of: auto, path, virtual, got \"Virtual\"");
  EXPECT_EQ(s3_addressing_problem("virtual", "https://a.b", "a.b"),
            "\"virtual\" with a bucket name holding '.' fails the TLS certificate check; use "
            "\"path\"");
}

}  // namespace
}  // namespace sluice
