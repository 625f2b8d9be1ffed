#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

// AWS Signature Version 4 as S3 checks it ("AWS4-HMAC-SHA256"): the Authorization header of a
// request with its payload in one piece, and presigned URLs. Pure functions of their arguments
// (no clock, no network, no state): thread-safe, and the same inputs always give the same bytes.
// Invalid input (see each REQUIRES) throws std::invalid_argument.
//
// S3 differs from other services in two rules: the path is encoded once, never twice, and not
// normalised ("a/./b" stays as it is); and every request signed with a header carries
// x-amz-content-sha256. S3Request's defaults are S3's; s3_path_rules and send_content_sha256 select
// the general rules, which AWS's SigV4 test suite checks (s3_signing_suite_test.cpp).

struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials (STS); empty for long-term keys
};

using S3Header = std::pair<std::string, std::string>;      // name, value
using S3QueryParam = std::pair<std::string, std::string>;  // key, value (both unencoded)

inline constexpr std::string_view kS3UnsignedPayload = "UNSIGNED-PAYLOAD";

// What a signature covers.
struct S3Request {
  std::string method = "GET";  // REQUIRES: an upper-case token (GET, PUT, HEAD, DELETE, POST)
  // As the Host header will say it: "examplebucket.s3.amazonaws.com", "127.0.0.1:9000" (with
  // the port when it is not the scheme's default). REQUIRES: not empty.
  std::string host;
  // Unencoded, beginning with '/': "/album/été 2013.jpg" (virtual-hosted style: the key;
  // path style: "/bucket/key"). Empty means "/". Sent as s3_encoded_path() gives it.
  std::string path;
  // true (S3): the canonical path is the path as sent, s3_encoded_path(path). false (every other
  // service): the path as sent with dot segments removed and repeated slashes merged
  // ("//a/./b/../c/" is "/a/c/"), encoded again (s3_uri_encode: '%' becomes "%25").
  bool s3_path_rules = true;
  // Unencoded, in any order; an empty value is "key=" on the wire.
  std::vector<S3QueryParam> query;
  // Further headers to sign, sent as they are (Content-Type, Range, x-amz-meta-*, ...).
  // Names are case-insensitive; a repeated name is signed as one header, its values joined
  // by ',' in the order given. REQUIRES: no Host, Authorization, X-Amz-Date,
  // X-Amz-Content-SHA256 or X-Amz-Security-Token (the signer owns those); no CR, LF or NUL.
  std::vector<S3Header> headers;
  // sign_headers: the lower-case hex SHA-256 of the body (of "" when there is none), or
  // kS3UnsignedPayload. presign_url: empty or kS3UnsignedPayload.
  std::string payload_sha256;
  // sign_headers: true (S3, which requires it) sends and signs x-amz-content-sha256; false leaves
  // the header out (services other than S3 do not expect it). The canonical request ends with
  // payload_sha256 either way.
  bool send_content_sha256 = true;
  std::string region = "us-east-1";
  std::string service = "s3";
  // Signing time; whole seconds count (the rest is dropped). REQUIRES: years 1970..9999.
  std::chrono::system_clock::time_point time;
};

// The intermediate results, for tests and for "SignatureDoesNotMatch" diagnostics (S3 answers
// with its own canonical request and string to sign). signing_key_hex is a secret: derived
// from the secret key, valid for a day, region and service. Never log it.
struct S3SigningSteps {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signing_key_hex;
  std::string signature;  // 64 lower-case hex digits
};

struct S3SignedHeaders {
  // To add to the request, in this order: x-amz-date, x-amz-content-sha256 (only with
  // send_content_sha256), x-amz-security-token (only with a session token), Authorization.
  std::vector<S3Header> headers;
  S3SigningSteps steps;
};

// Signs `request` with an Authorization header. Signed: host, request.headers, x-amz-date,
// x-amz-content-sha256 (unless !send_content_sha256) and x-amz-security-token (when set).
S3SignedHeaders sign_headers(const S3Request& request, const S3Credentials& credentials);

inline constexpr std::chrono::seconds kS3MinPresignExpiry{1};
inline constexpr std::chrono::seconds kS3MaxPresignExpiry{604800};  // 7 days, S3's limit

struct S3PresignedUrl {
  std::string path;   // encoded: the URL is scheme://host + path + '?' + query
  std::string query;  // request.query and the X-Amz-* parameters, X-Amz-Signature last
  S3SigningSteps steps;
};

// A URL for `request` (usually a GET) that anyone may use until time + expires. Signed: host
// only, payload UNSIGNED-PAYLOAD. REQUIRES: kS3MinPresignExpiry <= expires <=
// kS3MaxPresignExpiry; request.headers empty; no X-Amz-* parameter of the signer's own in
// request.query.
S3PresignedUrl presign_url(const S3Request& request, const S3Credentials& credentials,
                           std::chrono::seconds expires);

// "20130524T000000Z" (UTC, ISO 8601 basic format).
std::string s3_amz_date(std::chrono::system_clock::time_point time);

// S3's URI encoding: every byte except A-Z a-z 0-9 - . _ ~ as %XX (upper-case hex), and '/'
// too unless `keep_slash`. UTF-8 is encoded byte by byte.
std::string s3_uri_encode(std::string_view text, bool keep_slash);

// request.path as it goes into the request line and the canonical request.
std::string s3_encoded_path(std::string_view path);

// The query as it goes into the canonical request (and may go into the URL): each key and
// value encoded, sorted by encoded key, then encoded value, joined with '&'.
std::string s3_canonical_query(const std::vector<S3QueryParam>& query);

}  // namespace sluice
