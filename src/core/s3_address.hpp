#pragma once

// The rules of an S3 address (`[storage] kind = "s3"`: endpoint, region, bucket, prefix,
// addressing), in one place for the two that enforce them: the config loader, which reports a
// bad value at its key and line when the file is read, and make_s3_endpoint (s3/s3_endpoint.hpp),
// which builds the requests' addresses from the same parse.
//
// Every *_problem function (and parse_s3_endpoint) returns the whole message, e.g.
// `invalid bucket name "A": may hold only lower-case letters, digits, '.' and '-'`, or empty
// when the value is fine. The caller prefixes the key ("storage.bucket: "). Values are quoted as
// every loader message quotes them (config_detail::quote_text).
//
// Pure functions of their arguments, no network or name resolution: thread-safe.

#include <string>
#include <string_view>

namespace sluice {

// The parts of an endpoint URL.
struct S3Url {
  bool tls = true;   // https://, else http://
  std::string host;  // lower-case; an IPv6 address without its brackets
  bool ip = false;   // host is an IPv4 or IPv6 address, not a name
  bool ipv6 = false;
  std::string port;  // decimal without leading zeros; "443" or "80" when the URL has none
};

// "https://HOST[:PORT]" or "http://HOST[:PORT]" (the scheme in any case, an optional trailing
// '/'; no path, query, fragment or user info) into `out`. HOST is a DNS name (letters, digits,
// '-', '_'; labels of 1..63, 253 in all), an IPv4 address or a bracketed IPv6 address; PORT is
// 1..65535. Returns the problem, or empty. `out` is complete only when the result is empty.
std::string parse_s3_endpoint(std::string_view endpoint, S3Url& out);
// parse_s3_endpoint without the parts.
std::string s3_endpoint_problem(std::string_view endpoint);
// The endpoint of AWS S3 in `region`, used when none is configured:
// https://s3.REGION.amazonaws.com.
std::string s3_aws_endpoint(std::string_view region);

// 1..64 letters, digits, '-' and '_'. `aws_default` (no endpoint: AWS S3 in the region)
// further requires an AWS region name: lower-case, and not "auto" (Cloudflare R2's).
std::string s3_region_problem(std::string_view region, bool aws_default);
// A bucket name S3 accepts: 3..63 of a-z 0-9 . -, beginning and ending with a letter or digit,
// no "..", not an IPv4 address.
std::string s3_bucket_problem(std::string_view bucket);
// Empty, or a valid key prefix ending with '/': UTF-8 of at most 1024 bytes (S3's key limit),
// no leading '/', no control characters, no empty, "." or ".." segments.
std::string s3_prefix_problem(std::string_view prefix);
// "auto", "path" or "virtual"; "virtual" needs a host name (not an IP address) and, over TLS, a
// bucket name without '.' (a wildcard certificate covers one label). `url` is the effective
// endpoint: s3_aws_endpoint(region) when none is configured.
std::string s3_addressing_problem(std::string_view addressing, const S3Url& url,
                                  std::string_view bucket);
// The same, with the effective endpoint as text; empty when that endpoint is itself invalid
// (its problem is reported at `endpoint`, not here).
std::string s3_addressing_problem(std::string_view addressing, std::string_view endpoint,
                                  std::string_view bucket);

}  // namespace sluice
