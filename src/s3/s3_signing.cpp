#include "s3/s3_signing.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <vector>

#include "core/sha256.hpp"

namespace sluice {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr char kHexUpper[] = "0123456789ABCDEF";

// The headers the signer writes itself; a caller's copy would be signed twice or contradict it.
constexpr std::array<std::string_view, 5> kSignerHeaders = {
    "host", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"};
constexpr std::array<std::string_view, 7> kSignerQueryKeys = {
    "X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",     "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature"};

[[noreturn]] void reject(const std::string& problem) {
  throw std::invalid_argument("S3 signing: " + problem);
}

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// RFC 9110 tchar: what a header name may consist of.
bool is_token_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string ascii_lower(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lowered;
}

// Goes into the credential scope, which '/' separates, and into a header value.
void check_scope_part(std::string_view value, std::string_view what) {
  if (value.empty()) reject(std::string(what) + " is empty");
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '/' || byte <= 0x20 || byte == 0x7F) {
      reject(std::string(what) + " contains '/', a space or a control character");
    }
  }
}

void check_common(const S3Request& request, const S3Credentials& credentials) {
  if (request.method.empty() || !std::all_of(request.method.begin(), request.method.end(),
                                             [](char c) { return c >= 'A' && c <= 'Z'; })) {
    reject("the method must be upper-case letters");
  }
  check_scope_part(request.host, "the host");
  if (!request.path.empty() && request.path.front() != '/') reject("the path must begin with '/'");
  check_scope_part(request.region, "the region");
  check_scope_part(request.service, "the service");
  check_scope_part(credentials.access_key_id, "the access key id");
  if (credentials.secret_access_key.empty()) reject("the secret access key is empty");
  for (char c : credentials.session_token) {
    if (c == '\r' || c == '\n' || c == '\0') reject("the session token contains CR, LF or NUL");
  }
}

// SigV4's Trimall: no leading or trailing blanks, each inner run of them one space.
std::string trim_all(std::string_view value) {
  std::string trimmed;
  bool blank_pending = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      blank_pending = !trimmed.empty();
      continue;
    }
    if (blank_pending) trimmed += ' ';
    blank_pending = false;
    trimmed += c;
  }
  return trimmed;
}

// Lower-case name → value, sorted by name; a repeated name's values joined with ','.
std::map<std::string, std::string> caller_headers(const std::vector<S3Header>& headers) {
  std::map<std::string, std::string> canonical;
  for (const auto& [name, value] : headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
          return is_token_char(static_cast<unsigned char>(c));
        })) {
      reject("invalid header name '" + name + "'");
    }
    std::string lowered = ascii_lower(name);
    if (std::find(kSignerHeaders.begin(), kSignerHeaders.end(), lowered) != kSignerHeaders.end()) {
      reject("the header " + lowered + " is the signer's own");
    }
    for (char c : value) {
      const auto byte = static_cast<unsigned char>(c);
      if ((byte < 0x20 && c != '\t') || byte == 0x7F) {
        reject("the value of " + lowered + " contains a control character");
      }
    }
    auto [slot, inserted] = canonical.try_emplace(std::move(lowered), trim_all(value));
    if (!inserted) slot->second += ',' + trim_all(value);
  }
  return canonical;
}

using Digest = std::array<std::uint8_t, 32>;

std::string_view as_bytes(const Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

std::string sha256_hex(std::string_view text) {
  Sha256 hash;
  hash.update(text);
  return to_hex(hash.final());
}

// kSecret → date → region → service → "aws4_request".
Digest signing_key(std::string_view secret, std::string_view date, std::string_view region,
                   std::string_view service) {
  std::string first_key = "AWS4" + std::string(secret);
  Digest key = hmac_sha256(first_key, date);
  OPENSSL_cleanse(first_key.data(), first_key.size());
  key = hmac_sha256(as_bytes(key), region);
  key = hmac_sha256(as_bytes(key), service);
  return hmac_sha256(as_bytes(key), "aws4_request");
}

// RFC 3986's remove_dot_segments, with empty segments dropped too: "//a/./b/../c//" is "/a/c/".
// A path ending in '/', "/." or "/.." keeps its trailing slash, as the general SigV4 rules do.
std::string normalised_path(std::string_view path) {
  std::vector<std::string_view> segments;
  std::string_view last;
  for (std::size_t begin = 0; begin <= path.size();) {
    const std::size_t end = std::min(path.find('/', begin), path.size());
    last = path.substr(begin, end - begin);
    if (last == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!last.empty() && last != ".") {
      segments.push_back(last);
    }
    begin = end + 1;
  }
  std::string normalised;
  for (std::string_view segment : segments) {
    normalised += '/';
    normalised += segment;
  }
  if (normalised.empty() || last.empty() || last == "." || last == "..") normalised += '/';
  return normalised;
}

std::string canonical_path(const S3Request& request) {
  if (request.s3_path_rules) return s3_encoded_path(request.path);
  // The path as sent is encoded once; the canonical path encodes that again ('%' is "%25").
  return s3_uri_encode(s3_encoded_path(normalised_path(request.path)), /*keep_slash=*/true);
}

// What a signature needs besides the request's own method, path and credentials.
struct Canonical {
  std::string amz_date;  // "20130524T000000Z"
  std::string scope;     // "20130524/us-east-1/s3/aws4_request"
  std::string query;     // canonical query string
  std::string headers;   // "name:value\n" per signed header
  std::string signed_headers;
  std::string_view payload;
};

Canonical start(const S3Request& request) {
  Canonical canonical;
  canonical.amz_date = s3_amz_date(request.time);
  canonical.scope = canonical.amz_date.substr(0, 8) + '/' + request.region + '/' + request.service +
                    "/aws4_request";
  return canonical;
}

S3SigningSteps sign(const S3Request& request, const S3Credentials& credentials,
                    const Canonical& canonical) {
  S3SigningSteps steps;
  steps.canonical_request = request.method + '\n' + canonical_path(request) + '\n' +
                            canonical.query + '\n' + canonical.headers + '\n' +
                            canonical.signed_headers + '\n' + std::string(canonical.payload);
  steps.string_to_sign = std::string(kAlgorithm) + '\n' + canonical.amz_date + '\n' +
                         canonical.scope + '\n' + sha256_hex(steps.canonical_request);
  const Digest key = signing_key(credentials.secret_access_key, canonical.amz_date.substr(0, 8),
                                 request.region, request.service);
  steps.signing_key_hex = to_hex(key);
  steps.signature = to_hex(hmac_sha256(as_bytes(key), steps.string_to_sign));
  return steps;
}

bool is_lower_hex_sha256(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

std::string s3_amz_date(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto seconds = floor<std::chrono::seconds>(time);
  const auto day = floor<days>(seconds);
  const year_month_day date{day};
  const hh_mm_ss clock{seconds - day};
  const int year = static_cast<int>(date.year());
  if (year < 1970 || year > 9999) reject("the time is outside the years 1970..9999");
  std::array<char, 17> text{};
  const auto put = [&text](std::size_t at, unsigned value, std::size_t digits) {
    for (std::size_t i = digits; i-- > 0; value /= 10)
      text[at + i] = static_cast<char>('0' + value % 10);
  };
  put(0, static_cast<unsigned>(year), 4);
  put(4, static_cast<unsigned>(date.month()), 2);
  put(6, static_cast<unsigned>(date.day()), 2);
  text[8] = 'T';
  put(9, static_cast<unsigned>(clock.hours().count()), 2);
  put(11, static_cast<unsigned>(clock.minutes().count()), 2);
  put(13, static_cast<unsigned>(clock.seconds().count()), 2);
  text[15] = 'Z';
  return {text.data(), 16};
}

std::string s3_uri_encode(std::string_view text, bool keep_slash) {
  std::string encoded;
  encoded.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_unreserved(byte) || (keep_slash && c == '/')) {
      encoded += c;
    } else {
      encoded += '%';
      encoded += kHexUpper[byte >> 4];
      encoded += kHexUpper[byte & 0x0F];
    }
  }
  return encoded;
}

std::string s3_encoded_path(std::string_view path) {
  return path.empty() ? std::string("/") : s3_uri_encode(path, /*keep_slash=*/true);
}

std::string s3_canonical_query(const std::vector<S3QueryParam>& query) {
  std::vector<S3QueryParam> encoded;
  encoded.reserve(query.size());
  for (const auto& [key, value] : query) {
    encoded.emplace_back(s3_uri_encode(key, false), s3_uri_encode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());  // byte order of key, then of value
  std::string joined;
  for (const auto& [key, value] : encoded) {
    if (!joined.empty()) joined += '&';
    joined += key;
    joined += '=';
    joined += value;
  }
  return joined;
}

S3SignedHeaders sign_headers(const S3Request& request, const S3Credentials& credentials) {
  check_common(request, credentials);
  if (request.payload_sha256 != kS3UnsignedPayload &&
      !is_lower_hex_sha256(request.payload_sha256)) {
    reject("the payload hash must be 64 lower-case hex digits or UNSIGNED-PAYLOAD");
  }
  Canonical canonical = start(request);
  canonical.query = s3_canonical_query(request.query);
  canonical.payload = request.payload_sha256;

  S3SignedHeaders signed_request;
  signed_request.headers.emplace_back("x-amz-date", canonical.amz_date);
  if (request.send_content_sha256) {
    signed_request.headers.emplace_back("x-amz-content-sha256", request.payload_sha256);
  }
  if (!credentials.session_token.empty()) {
    signed_request.headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  std::map<std::string, std::string> headers = caller_headers(request.headers);
  headers.emplace("host", request.host);
  for (const auto& [name, value] : signed_request.headers) headers.emplace(name, trim_all(value));
  for (const auto& [name, value] : headers) {
    canonical.headers += name + ':' + value + '\n';
    if (!canonical.signed_headers.empty()) canonical.signed_headers += ';';
    canonical.signed_headers += name;
  }

  signed_request.steps = sign(request, credentials, canonical);
  signed_request.headers.emplace_back(
      "Authorization", std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + '/' +
                           canonical.scope + ", SignedHeaders=" + canonical.signed_headers +
                           ", Signature=" + signed_request.steps.signature);
  return signed_request;
}

S3PresignedUrl presign_url(const S3Request& request, const S3Credentials& credentials,
                           std::chrono::seconds expires) {
  check_common(request, credentials);
  if (expires < kS3MinPresignExpiry || expires > kS3MaxPresignExpiry) {
    throw std::invalid_argument(
        "S3 signing: a presigned URL expires after 1 to 604800 seconds, not " +
        std::to_string(expires.count()));
  }
  if (!request.headers.empty()) reject("a presigned URL signs the host header only");
  if (!request.payload_sha256.empty() && request.payload_sha256 != kS3UnsignedPayload) {
    reject("a presigned URL's payload is UNSIGNED-PAYLOAD");
  }
  for (const auto& param : request.query) {
    if (std::find(kSignerQueryKeys.begin(), kSignerQueryKeys.end(), param.first) !=
        kSignerQueryKeys.end()) {
      reject("the query parameter " + param.first + " is the signer's own");
    }
  }
  Canonical canonical = start(request);
  std::vector<S3QueryParam> query = request.query;
  query.emplace_back("X-Amz-Algorithm", kAlgorithm);
  query.emplace_back("X-Amz-Credential", credentials.access_key_id + '/' + canonical.scope);
  query.emplace_back("X-Amz-Date", canonical.amz_date);
  query.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  query.emplace_back("X-Amz-SignedHeaders", "host");
  if (!credentials.session_token.empty()) {
    query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  canonical.query = s3_canonical_query(query);
  canonical.headers = "host:" + request.host + '\n';
  canonical.signed_headers = "host";
  canonical.payload = kS3UnsignedPayload;

  S3PresignedUrl url;
  url.steps = sign(request, credentials, canonical);
  url.path = s3_encoded_path(request.path);
  url.query = canonical.query + "&X-Amz-Signature=" + url.steps.signature;
  return url;
}

}  // namespace sluice
