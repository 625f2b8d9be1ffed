#include "s3/s3_signing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "core/sha256.hpp"

namespace sluice {
namespace {

using std::chrono::seconds;
using std::chrono::sys_days;
using testing::ElementsAre;
using testing::HasSubstr;
using testing::Pair;

constexpr const char* kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::chrono::system_clock::time_point utc(int year, unsigned month, unsigned day, int hour = 0,
                                          int minute = 0, int second = 0) {
  return sys_days{std::chrono::year{year} / month / day} + std::chrono::hours{hour} +
         std::chrono::minutes{minute} + seconds{second};
}

std::string sha256_hex(std::string_view text) {
  Sha256 hash;
  hash.update(text);
  return to_hex(hash.final());
}

// ---------------------------------------------------------------------------------------------
// AWS's own examples. Amazon S3 API Reference, "Signature Calculations for the Authorization
// Header: Transferring Payload in a Single Chunk (AWS Signature Version 4)", section "Examples:
// Signature Calculations" (GET Object, PUT Object, GET Bucket Lifecycle, Get Bucket (List
// Objects)), and "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)"
// (the presigned GET). Canonical requests, strings to sign and signatures are the pages'.
// ---------------------------------------------------------------------------------------------

const S3Credentials kAwsDocCredentials{"AKIAIOSFODNN7EXAMPLE",
                                       "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};

S3Request aws_doc_request() {
  S3Request request;
  request.host = "examplebucket.s3.amazonaws.com";
  request.region = "us-east-1";
  request.service = "s3";
  request.time = utc(2013, 5, 24);
  request.payload_sha256 = kEmptySha256;
  return request;
}

// Not printed on the pages; from an independent Python hmac/hashlib computation, and implied
// by every signature below (a different key could not produce them).
constexpr const char* kAwsDocSigningKey =
    "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378";

TEST(S3SigningAwsDocs, GetObjectWithRange) {
  S3Request request = aws_doc_request();
  request.path = "/test.txt";
  request.headers = {{"Range", "bytes=0-9"}};
  const S3SignedHeaders signed_request = sign_headers(request, kAwsDocCredentials);

  EXPECT_EQ(
      signed_request.steps.canonical_request,
      "GET\n"
      "/test.txt\n"
      "\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "range:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n"
      "\n"
      "host;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_request.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(signed_request.steps.signing_key_hex, kAwsDocSigningKey);
  EXPECT_EQ(signed_request.steps.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_THAT(
      signed_request.headers,
      ElementsAre(
          Pair("x-amz-date", "20130524T000000Z"), Pair("x-amz-content-sha256", kEmptySha256),
          Pair("Authorization",
               "AWS4-HMAC-SHA256 "
               "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
               "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
               "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")));
}

TEST(S3SigningAwsDocs, PutObjectWithDollarInKey) {
  S3Request request = aws_doc_request();
  request.method = "PUT";
  request.path = "/test$file.text";
  request.headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  request.payload_sha256 = sha256_hex("Welcome to Amazon S3.");
  ASSERT_EQ(request.payload_sha256,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  const S3SignedHeaders signed_request = sign_headers(request, kAwsDocCredentials);

  EXPECT_EQ(
      signed_request.steps.canonical_request,
      "PUT\n"
      "/test%24file.text\n"
      "\n"
      "date:Fri, 24 May 2013 00:00:00 GMT\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
      "x-amz-date:20130524T000000Z\n"
      "x-amz-storage-class:REDUCED_REDUNDANCY\n"
      "\n"
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(signed_request.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(signed_request.steps.signing_key_hex, kAwsDocSigningKey);
  EXPECT_EQ(signed_request.steps.signature,
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  EXPECT_EQ(signed_request.headers.back().second,
            "AWS4-HMAC-SHA256 "
            "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(S3SigningAwsDocs, GetBucketLifecycleHasAnEmptyQueryValue) {
  S3Request request = aws_doc_request();
  request.path = "/";
  request.query = {{"lifecycle", ""}};
  const S3SignedHeaders signed_request = sign_headers(request, kAwsDocCredentials);

  EXPECT_EQ(
      signed_request.steps.canonical_request,
      "GET\n"
      "/\n"
      "lifecycle=\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n"
      "\n"
      "host;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_request.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  EXPECT_EQ(signed_request.steps.signature,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(S3SigningAwsDocs, ListObjectsSortsTheQuery) {
  S3Request request = aws_doc_request();
  request.path = "/";
  request.query = {{"prefix", "J"}, {"max-keys", "2"}};  // the URL's order, not the sorted one
  const S3SignedHeaders signed_request = sign_headers(request, kAwsDocCredentials);

  EXPECT_EQ(
      signed_request.steps.canonical_request,
      "GET\n"
      "/\n"
      "max-keys=2&prefix=J\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n"
      "\n"
      "host;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_request.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
  EXPECT_EQ(signed_request.steps.signature,
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(S3SigningAwsDocs, PresignedGet) {
  S3Request request = aws_doc_request();
  request.path = "/test.txt";
  request.payload_sha256.clear();
  const S3PresignedUrl url = presign_url(request, kAwsDocCredentials, seconds{86400});

  EXPECT_EQ(url.steps.canonical_request,
            "GET\n"
            "/test.txt\n"
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "\n"
            "host\n"
            "UNSIGNED-PAYLOAD");
  EXPECT_EQ(url.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
  EXPECT_EQ(url.steps.signing_key_hex, kAwsDocSigningKey);
  EXPECT_EQ(url.steps.signature,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  EXPECT_EQ(url.path, "/test.txt");
  EXPECT_EQ(url.query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

// AWS General Reference, "Examples of how to derive a signing key for Signature Version 4":
// kSigning for secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1, iam.
TEST(S3SigningAwsDocs, SigningKeyDerivation) {
  S3Request request = aws_doc_request();
  request.service = "iam";
  request.time = utc(2012, 2, 15);
  const S3Credentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  EXPECT_EQ(sign_headers(request, credentials).steps.signing_key_hex,
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

// ---------------------------------------------------------------------------------------------
// botocore 1.43.11 (SigV4 of the AWS SDK for Python), clock fixed at 2024-02-29T12:34:56Z:
// the output of `python3 tests/tools/sigv4_vectors.py`, pasted. botocore was given the same
// inputs (its URL path encoded by its own botocore.utils.percent_encode(key, safe="/~")).
// ---------------------------------------------------------------------------------------------

const S3Credentials kBotocoreCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                         ""};
const S3Credentials kBotocoreTemporaryCredentials{"AKIDEXAMPLE",
                                                  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                                  "IQoJb3JpZ2luX2VjEXAMPLE//token+with/slash=="};

S3Request botocore_request() {
  S3Request request;
  request.host = "examplebucket.s3.amazonaws.com";
  request.time = utc(2024, 2, 29, 12, 34, 56);
  return request;
}

// S3SigV4Auth, PUT with a session token, a UTF-8 key with ' ', '+', '=', '~', '(' and blanks
// to collapse in a header value.
TEST(S3SigningBotocore, PutWithSessionTokenAndUnicodeKey) {
  S3Request request = botocore_request();
  request.method = "PUT";
  request.host = "examplebucket.s3.eu-central-1.amazonaws.com";
  request.region = "eu-central-1";
  request.path = "/photos/été 2013/a+b=c~d (1).jpg";
  request.headers = {{"Content-Type", "image/jpeg"}, {"x-amz-meta-note", "  two   spaces  here  "}};
  request.payload_sha256 = sha256_hex("hello, S3");
  ASSERT_EQ(request.payload_sha256,
            "195d68c5429e70c8f86511ec057714fdb3c8ca5396126d5158ef98c6253a34c4");
  const S3SignedHeaders signed_request = sign_headers(request, kBotocoreTemporaryCredentials);

  EXPECT_EQ(
      signed_request.steps.canonical_request,
      "PUT\n"
      "/photos/%C3%A9t%C3%A9%202013/a%2Bb%3Dc~d%20%281%29.jpg\n"
      "\n"
      "content-type:image/jpeg\n"
      "host:examplebucket.s3.eu-central-1.amazonaws.com\n"
      "x-amz-content-sha256:195d68c5429e70c8f86511ec057714fdb3c8ca5396126d5158ef98c6253a34c4\n"
      "x-amz-date:20240229T123456Z\n"
      "x-amz-meta-note:two spaces here\n"
      "x-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//token+with/slash==\n"
      "\n"
      "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-note;x-amz-security-token\n"
      "195d68c5429e70c8f86511ec057714fdb3c8ca5396126d5158ef98c6253a34c4");
  EXPECT_EQ(signed_request.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20240229T123456Z\n"
            "20240229/eu-central-1/s3/aws4_request\n"
            "80ed4be4529428f597b7e9da5f53f8a95d234a9106fc28a88898ffdb26185537");
  EXPECT_EQ(signed_request.steps.signature,
            "41c780083581649ede081fa94bc390503a3c8104f18706e37272831ed89d95c3");
  EXPECT_THAT(
      signed_request.headers,
      ElementsAre(
          Pair("x-amz-date", "20240229T123456Z"),
          Pair("x-amz-content-sha256",
               "195d68c5429e70c8f86511ec057714fdb3c8ca5396126d5158ef98c6253a34c4"),
          Pair("x-amz-security-token", "IQoJb3JpZ2luX2VjEXAMPLE//token+with/slash=="),
          Pair("Authorization",
               "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-central-1/s3/aws4_request, "
               "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-note;"
               "x-amz-security-token, "
               "Signature=41c780083581649ede081fa94bc390503a3c8104f18706e37272831ed89d95c3")));
  EXPECT_EQ(s3_encoded_path(request.path),
            "/photos/%C3%A9t%C3%A9%202013/a%2Bb%3Dc~d%20%281%29.jpg");
}

// S3SigV4Auth, ListObjectsV2 with '/' and UTF-8 in query values (encoded there, unlike the path).
TEST(S3SigningBotocore, ListWithSlashInQueryValues) {
  S3Request request = botocore_request();
  request.path = "/";
  request.query = {{"list-type", "2"}, {"prefix", "photos/été/"}, {"delimiter", "/"}};
  request.payload_sha256 = kEmptySha256;
  const S3SignedHeaders signed_request = sign_headers(request, kBotocoreCredentials);

  EXPECT_EQ(
      signed_request.steps.canonical_request,
      "GET\n"
      "/\n"
      "delimiter=%2F&list-type=2&prefix=photos%2F%C3%A9t%C3%A9%2F\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20240229T123456Z\n"
      "\n"
      "host;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signed_request.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20240229T123456Z\n"
            "20240229/us-east-1/s3/aws4_request\n"
            "e292da6ac980bdee76acef5095a4156e4c08ea735544931d93699dc9fa54fe67");
  EXPECT_EQ(signed_request.steps.signature,
            "2416db6f06f9c4789cd526b26697dc549be94c6959c69e83fee5d88f65de5907");
}

// S3SigV4Auth with s3.payload_signing_enabled = False: x-amz-content-sha256 UNSIGNED-PAYLOAD.
TEST(S3SigningBotocore, PutWithUnsignedPayload) {
  S3Request request = botocore_request();
  request.method = "PUT";
  request.path = "/big/object.bin";
  request.headers = {{"Content-Type", "application/octet-stream"}};
  request.payload_sha256 = kS3UnsignedPayload;
  const S3SignedHeaders signed_request = sign_headers(request, kBotocoreCredentials);

  EXPECT_EQ(signed_request.steps.canonical_request,
            "PUT\n"
            "/big/object.bin\n"
            "\n"
            "content-type:application/octet-stream\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
            "x-amz-date:20240229T123456Z\n"
            "\n"
            "content-type;host;x-amz-content-sha256;x-amz-date\n"
            "UNSIGNED-PAYLOAD");
  EXPECT_EQ(signed_request.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20240229T123456Z\n"
            "20240229/us-east-1/s3/aws4_request\n"
            "a4f9b18c47bd6309cac6de5fa8072c2b80720b741e0fd0603011609ce7b205c9");
  EXPECT_EQ(signed_request.steps.signature,
            "2f1a88f343be5ee688c6c7f9ed26db8ca861a87bd3305ad5e53710155a2937ef");
  EXPECT_THAT(signed_request.headers[1], Pair("x-amz-content-sha256", "UNSIGNED-PAYLOAD"));
}

// S3SigV4QueryAuth, path-style on a port (MinIO-like), session token, an operation parameter.
TEST(S3SigningBotocore, PresignedGetWithSessionTokenAndPort) {
  S3Request request = botocore_request();
  request.host = "127.0.0.1:9000";
  request.region = "us-west-2";
  request.path = "/examplebucket/reports/Q1 2024/naïve ~résumé+final.pdf";
  request.query = {{"response-content-disposition", "attachment; filename=\"r.pdf\""}};
  const S3PresignedUrl url = presign_url(request, kBotocoreTemporaryCredentials, seconds{3600});

  EXPECT_EQ(url.steps.canonical_request,
            "GET\n"
            "/examplebucket/reports/Q1%202024/na%C3%AFve%20~r%C3%A9sum%C3%A9%2Bfinal.pdf\n"
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIDEXAMPLE%2F20240229%2Fus-west-2%2Fs3%2Faws4_request"
            "&X-Amz-Date=20240229T123456Z&X-Amz-Expires=3600"
            "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2Ftoken%2Bwith%2Fslash%3D%3D"
            "&X-Amz-SignedHeaders=host"
            "&response-content-disposition=attachment%3B%20filename%3D%22r.pdf%22\n"
            "host:127.0.0.1:9000\n"
            "\n"
            "host\n"
            "UNSIGNED-PAYLOAD");
  EXPECT_EQ(url.steps.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20240229T123456Z\n"
            "20240229/us-west-2/s3/aws4_request\n"
            "73d293103d3955ab46281a137315e2dd7a6ce972554858067e6eb23b5781cd7c");
  EXPECT_EQ(url.steps.signature,
            "f0e7a42a28c4946f926278d8c088105ed3cb92b5d8c733554c96e65e57e33c15");
  EXPECT_EQ(url.path,
            "/examplebucket/reports/Q1%202024/na%C3%AFve%20~r%C3%A9sum%C3%A9%2Bfinal.pdf");
  // botocore orders the URL's parameters differently (operation's first); S3 sorts them itself,
  // so the sorted canonical query plus the signature is an equally valid URL.
  EXPECT_EQ(url.query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIDEXAMPLE%2F20240229%2Fus-west-2%2Fs3%2Faws4_request"
            "&X-Amz-Date=20240229T123456Z&X-Amz-Expires=3600"
            "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2Ftoken%2Bwith%2Fslash%3D%3D"
            "&X-Amz-SignedHeaders=host"
            "&response-content-disposition=attachment%3B%20filename%3D%22r.pdf%22"
            "&X-Amz-Signature=f0e7a42a28c4946f926278d8c088105ed3cb92b5d8c733554c96e65e57e33c15");
}

// ---------------------------------------------------------------------------------------------
// The rules one at a time.
// ---------------------------------------------------------------------------------------------

TEST(S3SigningEncoding, UnreservedBytesStayEverythingElseIsUpperCaseHex) {
  EXPECT_EQ(s3_uri_encode("AZaz09-._~", false), "AZaz09-._~");
  EXPECT_EQ(s3_uri_encode("a b+c=d&e", false), "a%20b%2Bc%3Dd%26e");
  EXPECT_EQ(s3_uri_encode("*!'()$,;:@%", false), "%2A%21%27%28%29%24%2C%3B%3A%40%25");
  EXPECT_EQ(s3_uri_encode(std::string("\0\x1f\x7f\xff", 4), false), "%00%1F%7F%FF");
  EXPECT_EQ(s3_uri_encode("été", false), "%C3%A9t%C3%A9");
  EXPECT_EQ(s3_uri_encode("\xf0\x9f\x93\xa6", false), "%F0%9F%93%A6");  // U+1F4E6
  EXPECT_EQ(s3_uri_encode("a/b", false), "a%2Fb");
  EXPECT_EQ(s3_uri_encode("a/b", true), "a/b");
  EXPECT_EQ(s3_uri_encode("", false), "");
}

TEST(S3SigningEncoding, PathIsEncodedOnceAndNeverNormalised) {
  EXPECT_EQ(s3_encoded_path(""), "/");
  EXPECT_EQ(s3_encoded_path("/"), "/");
  EXPECT_EQ(s3_encoded_path("/a/./b/../c//d/"), "/a/./b/../c//d/");
  EXPECT_EQ(s3_encoded_path("/already%20encoded"), "/already%2520encoded");
  EXPECT_EQ(s3_encoded_path("/key with spaces"), "/key%20with%20spaces");

  S3Request request = aws_doc_request();
  request.path = "";
  EXPECT_THAT(sign_headers(request, kAwsDocCredentials).steps.canonical_request,
              testing::StartsWith("GET\n/\n\n"));
  request.payload_sha256.clear();
  EXPECT_EQ(presign_url(request, kAwsDocCredentials, seconds{60}).path, "/");
}

TEST(S3SigningEncoding, QuerySortsByEncodedKeyThenValue) {
  EXPECT_EQ(s3_canonical_query({}), "");
  EXPECT_EQ(s3_canonical_query({{"k", ""}}), "k=");
  EXPECT_EQ(s3_canonical_query({{"k", "b"}, {"k", "a"}}), "k=a&k=b");
  // The key decides before '=' would: "a" < "a-", though "a-=" < "a=" as strings.
  EXPECT_EQ(s3_canonical_query({{"a-", "y"}, {"a", "z"}}), "a=z&a-=y");
  // Encoded order: "%C3%A9" < "~" ('%' is 0x25), though raw 0xC3 > '~'.
  EXPECT_EQ(s3_canonical_query({{"~", "2"}, {"é", "1"}}), "%C3%A9=1&~=2");
  EXPECT_EQ(s3_canonical_query({{"a b", "1"}, {"a-b", "2"}, {"a+b", "3"}}),
            "a%20b=1&a%2Bb=3&a-b=2");
  EXPECT_EQ(s3_canonical_query({{"prefix", "a/b c"}}), "prefix=a%2Fb%20c");
}

TEST(S3SigningHeaders, NamesLowerCaseValuesTrimmedRepeatsJoined) {
  S3Request request = aws_doc_request();
  request.headers = {{"X-Amz-Meta-B", " \t x \t  y  "},
                     {"x-amz-meta-a", "1"},
                     {"X-AMZ-META-B", "z"},
                     {"Content-Type", "text/plain"}};
  const S3SigningSteps steps = sign_headers(request, kAwsDocCredentials).steps;
  EXPECT_EQ(steps.canonical_request,
            "GET\n/\n\n"
            "content-type:text/plain\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:" +
                std::string(kEmptySha256) +
                "\n"
                "x-amz-date:20130524T000000Z\n"
                "x-amz-meta-a:1\n"
                "x-amz-meta-b:x y,z\n"
                "\n"
                "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-b\n" +
                kEmptySha256);
}

TEST(S3SigningHeaders, AnEmptyValueIsSigned) {
  S3Request request = aws_doc_request();
  request.headers = {{"x-amz-meta-empty", "   "}};
  EXPECT_THAT(sign_headers(request, kAwsDocCredentials).steps.canonical_request,
              HasSubstr("\nx-amz-meta-empty:\n"));
}

TEST(S3SigningHeaders, NoSessionTokenNoTokenHeader) {
  const S3SignedHeaders signed_request = sign_headers(aws_doc_request(), kAwsDocCredentials);
  for (const auto& [name, value] : signed_request.headers) {
    EXPECT_NE(name, "x-amz-security-token");
  }
  EXPECT_THAT(signed_request.steps.canonical_request, testing::Not(HasSubstr("security-token")));
}

TEST(S3SigningRejects, HeadersTheSignerOwnsOrCannotSend) {
  for (const char* name :
       {"Host", "authorization", "X-Amz-Date", "x-amz-content-sha256", "X-Amz-Security-Token"}) {
    S3Request request = aws_doc_request();
    request.headers = {{name, "x"}};
    EXPECT_THROW(sign_headers(request, kAwsDocCredentials), std::invalid_argument) << name;
  }
  for (const S3Header& header : std::initializer_list<S3Header>{{"", "x"},
                                                                {"bad name", "x"},
                                                                {"bad:name", "x"},
                                                                {"x-ok", "a\r\nInjected: 1"},
                                                                {"x-ok", std::string("a\0b", 3)},
                                                                {"x-ok", "a\nb"}}) {
    S3Request request = aws_doc_request();
    request.headers = {header};
    EXPECT_THROW(sign_headers(request, kAwsDocCredentials), std::invalid_argument) << header.first;
  }
}

TEST(S3SigningRejects, MalformedRequestsAndCredentials) {
  const auto rejected = [](auto change) {
    S3Request request = aws_doc_request();
    S3Credentials credentials = kAwsDocCredentials;
    change(request, credentials);
    EXPECT_THROW(sign_headers(request, credentials), std::invalid_argument);
  };
  rejected([](S3Request& r, S3Credentials&) { r.path = "test.txt"; });
  rejected([](S3Request& r, S3Credentials&) { r.method = "get"; });
  rejected([](S3Request& r, S3Credentials&) { r.method = ""; });
  rejected([](S3Request& r, S3Credentials&) { r.host = ""; });
  rejected([](S3Request& r, S3Credentials&) { r.host = "a b"; });
  rejected([](S3Request& r, S3Credentials&) { r.region = ""; });
  rejected([](S3Request& r, S3Credentials&) { r.region = "us/east"; });
  rejected([](S3Request& r, S3Credentials&) { r.service = ""; });
  rejected([](S3Request& r, S3Credentials&) { r.payload_sha256 = ""; });
  rejected([](S3Request& r, S3Credentials&) { r.payload_sha256 = std::string(64, 'A'); });
  rejected([](S3Request& r, S3Credentials&) { r.payload_sha256 = std::string(63, 'a'); });
  rejected([](S3Request& r, S3Credentials&) { r.payload_sha256 = "unsigned-payload"; });
  rejected([](S3Request& r, S3Credentials&) { r.time = utc(1969, 12, 31, 23, 59, 59); });
  rejected([](S3Request&, S3Credentials& c) { c.access_key_id = ""; });
  rejected([](S3Request&, S3Credentials& c) { c.access_key_id = "AKIA/X"; });
  rejected([](S3Request&, S3Credentials& c) { c.secret_access_key = ""; });
  rejected([](S3Request&, S3Credentials& c) { c.session_token = "a\nb"; });
}

TEST(S3SigningPresign, ExpiryFromOneSecondToSevenDays) {
  S3Request request = aws_doc_request();
  request.path = "/test.txt";
  request.payload_sha256.clear();
  for (long long bad : {-1LL, 0LL, 604801LL, 10000000LL}) {
    EXPECT_THROW(presign_url(request, kAwsDocCredentials, seconds{bad}), std::invalid_argument)
        << bad;
  }
  EXPECT_THAT(presign_url(request, kAwsDocCredentials, seconds{1}).query,
              HasSubstr("&X-Amz-Expires=1&"));
  EXPECT_THAT(presign_url(request, kAwsDocCredentials, kS3MaxPresignExpiry).query,
              HasSubstr("&X-Amz-Expires=604800&"));
}

TEST(S3SigningPresign, RejectsWhatAPresignedUrlCannotCarry) {
  S3Request request = aws_doc_request();
  request.path = "/test.txt";
  request.payload_sha256.clear();
  S3Request with_header = request;
  with_header.headers = {{"Range", "bytes=0-9"}};
  EXPECT_THROW(presign_url(with_header, kAwsDocCredentials, seconds{60}), std::invalid_argument);
  S3Request with_hash = request;
  with_hash.payload_sha256 = kEmptySha256;
  EXPECT_THROW(presign_url(with_hash, kAwsDocCredentials, seconds{60}), std::invalid_argument);
  S3Request with_signature = request;
  with_signature.query = {{"X-Amz-Signature", "0"}};
  EXPECT_THROW(presign_url(with_signature, kAwsDocCredentials, seconds{60}), std::invalid_argument);
  S3Request unsigned_payload = request;
  unsigned_payload.payload_sha256 = kS3UnsignedPayload;
  EXPECT_EQ(presign_url(unsigned_payload, kAwsDocCredentials, seconds{86400}).steps.signature,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(S3SigningTime, AmzDateIsUtcWholeSeconds) {
  EXPECT_EQ(s3_amz_date(utc(2013, 5, 24)), "20130524T000000Z");
  EXPECT_EQ(s3_amz_date(utc(2024, 2, 29, 12, 34, 56)), "20240229T123456Z");
  EXPECT_EQ(s3_amz_date(utc(1999, 12, 31, 23, 59, 59) + std::chrono::milliseconds{999}),
            "19991231T235959Z");
  EXPECT_EQ(s3_amz_date(utc(1970, 1, 1)), "19700101T000000Z");
  EXPECT_THROW(s3_amz_date(utc(1969, 12, 31, 23, 59, 59)), std::invalid_argument);
}

TEST(S3SigningTime, TheScopeDayChangesAtMidnightUtc) {
  S3Request request = aws_doc_request();
  request.time = utc(2013, 5, 24, 23, 59, 59);
  const S3SignedHeaders before = sign_headers(request, kAwsDocCredentials);
  request.time += seconds{1};
  const S3SignedHeaders after = sign_headers(request, kAwsDocCredentials);
  EXPECT_THAT(before.steps.string_to_sign, HasSubstr("\n20130524/us-east-1/s3/aws4_request\n"));
  EXPECT_THAT(after.steps.string_to_sign, HasSubstr("\n20130525/us-east-1/s3/aws4_request\n"));
  EXPECT_EQ(before.steps.signing_key_hex, kAwsDocSigningKey);
  EXPECT_NE(after.steps.signing_key_hex, kAwsDocSigningKey);
}

}  // namespace
}  // namespace sluice
