#include "s3/s3_xml.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;
using testing::IsEmpty;

constexpr std::int64_t kSecond = 1'000'000'000;

// The S3XmlError message `parse` throws; fails the test when it throws nothing.
template <typename Parse>
std::string xml_error(Parse parse) {
  try {
    parse();
  } catch (const S3XmlError& error) {
    return error.what();
  }
  ADD_FAILURE() << "no S3XmlError";
  return "";
}

std::string list_error(std::string_view body) {
  return xml_error([&] { parse_list_objects_v2(body, true); });
}

// A ListBucketResult around `contents` (the rest of a page as S3 writes it).
std::string listing(const std::string& contents, const std::string& truncated = "false") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
         "<Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>" +
         truncated + "</IsTruncated>" + contents + "</ListBucketResult>";
}

std::string one_object(const std::string& key, const std::string& size = "5",
                       const std::string& last_modified = "2009-10-12T17:50:30.000Z") {
  return "<Contents><Key>" + key + "</Key><LastModified>" + last_modified +
         "</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>" + size +
         "</Size><StorageClass>STANDARD</StorageClass></Contents>";
}

// ---------------------------------------------------------------------------------------------
// The Amazon S3 API Reference's own examples: ListObjectsV2 ("Example 1: Listing keys",
// "Example 3: Listing keys using the prefix and delimiter", "Example 4: Using a continuation
// token"; the pages' "..." elisions left out), InitiateMultipartUpload, CompleteMultipartUpload
// (both its answers), the Error responses page and DeleteObjects. Times in seconds since the
// epoch from Python's calendar.timegm.
// ---------------------------------------------------------------------------------------------

TEST(S3XmlAwsDocs, ListObjectsV2ListingKeys) {
  const S3ListPage page = parse_list_objects_v2(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Name>bucket</Name>
    <Prefix/>
    <KeyCount>205</KeyCount>
    <MaxKeys>1000</MaxKeys>
    <IsTruncated>false</IsTruncated>
    <Contents>
        <Key>my-image.jpg</Key>
        <LastModified>2009-10-12T17:50:30.000Z</LastModified>
        <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
        <Size>434234</Size>
        <StorageClass>STANDARD</StorageClass>
    </Contents>
</ListBucketResult>)",
                                                false);
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].key, "my-image.jpg");
  EXPECT_EQ(page.objects[0].size, 434234u);
  EXPECT_EQ(page.objects[0].etag, "fba9dede5f27731c9771645a39863328");
  EXPECT_EQ(page.objects[0].mtime_ns, 1255369830 * kSecond);
  EXPECT_FALSE(page.truncated);
  EXPECT_THAT(page.common_prefixes, IsEmpty());
  EXPECT_EQ(page.next_continuation_token, "");
}

TEST(S3XmlAwsDocs, ListObjectsV2PrefixAndDelimiter) {
  const S3ListPage page = parse_list_objects_v2(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix>photos/2006/</Prefix>
  <KeyCount>3</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>photos/2006/</Key>
    <LastModified>2016-04-30T23:51:29.000Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag>
    <Size>0</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>photos/2006/February/</Prefix>
  </CommonPrefixes>
  <CommonPrefixes>
    <Prefix>photos/2006/January/</Prefix>
  </CommonPrefixes>
</ListBucketResult>)",
                                                false);
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].key, "photos/2006/");
  EXPECT_EQ(page.objects[0].size, 0u);
  EXPECT_EQ(page.objects[0].mtime_ns, 1462060289 * kSecond);
  EXPECT_THAT(page.common_prefixes, ElementsAre("photos/2006/February/", "photos/2006/January/"));
}

TEST(S3XmlAwsDocs, ListObjectsV2ContinuationToken) {
  const S3ListPage page = parse_list_objects_v2(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix></Prefix>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <KeyCount>1000</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>happyface.jpg</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>"70ee1738b6b21e2c8a43f3a5ab0eee71"</ETag>
    <Size>11</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
</ListBucketResult>)",
                                                true);
  EXPECT_TRUE(page.truncated);
  EXPECT_EQ(page.next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].key, "happyface.jpg");
  EXPECT_EQ(page.objects[0].size, 11u);
  EXPECT_EQ(page.objects[0].mtime_ns, 1416598805 * kSecond);
}

TEST(S3XmlAwsDocs, InitiateMultipartUpload) {
  EXPECT_EQ(parse_initiate_multipart_upload(R"(<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>)"),
            "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
}

TEST(S3XmlAwsDocs, CompleteMultipartUpload) {
  const std::string body = R"(<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Location>http://Example-Bucket.s3.amazonaws.com/Example-Object</Location>
  <Bucket>Example-Bucket</Bucket>
  <Key>Example-Object</Key>
  <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
</CompleteMultipartUploadResult>)";
  EXPECT_EQ(parse_s3_error(body), std::nullopt);
  EXPECT_EQ(parse_complete_multipart_upload(body), "3858f62230ac3c915f300c664312c11f-9");
}

// "the error is embedded in the 200 OK response": the caller must not take it for success.
constexpr const char* kLateInternalError = R"(<?xml version="1.0" encoding="UTF-8"?>

<Error>
  <Code>InternalError</Code>
  <Message>We encountered an internal error. Please try again.</Message>
  <RequestId>656c76696e6727732072657175657374</RequestId>
  <HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>
</Error>)";

TEST(S3XmlAwsDocs, CompleteMultipartUploadFailingLateIn200) {
  const std::optional<S3ErrorBody> error = parse_s3_error(kLateInternalError);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "InternalError");
  EXPECT_EQ(error->message, "We encountered an internal error. Please try again.");
  EXPECT_EQ(error->request_id, "656c76696e6727732072657175657374");
  // A caller that forgot parse_s3_error() still gets an exception naming S3's error.
  const std::string message =
      xml_error([] { parse_complete_multipart_upload(kLateInternalError); });
  EXPECT_THAT(message, HasSubstr("expected <CompleteMultipartUploadResult>"));
  EXPECT_THAT(message, HasSubstr("InternalError: We encountered an internal error."));
}

TEST(S3XmlAwsDocs, ErrorResponse) {
  const std::optional<S3ErrorBody> error = parse_s3_error(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource> 
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>)");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "NoSuchKey");
  EXPECT_EQ(error->message, "The resource you requested does not exist");
  EXPECT_EQ(error->request_id, "4442587FB7D0A2F9");
  EXPECT_EQ(error->string_to_sign, "");
  EXPECT_EQ(error->canonical_request, "");
}

TEST(S3XmlAwsDocs, DeleteObjectsResult) {
  const std::vector<S3DeleteFailure> failures =
      parse_delete_objects(R"(<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted>
    <Key>sample1.txt</Key>
  </Deleted>
  <Error>
    <Key>sample2.txt</Key>
    <Code>AccessDenied</Code>
    <Message>Access Denied</Message>
  </Error>
</DeleteResult>)");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].key, "sample2.txt");
  EXPECT_EQ(failures[0].code, "AccessDenied");
  EXPECT_EQ(failures[0].message, "Access Denied");
}

// The body S3 sends for SignatureDoesNotMatch, with the canonical request and string to sign of
// the API Reference's "GET Object" signing example (s3_signing_test.cpp): line breaks and the
// empty query line must come back exactly, or the diagnosis compares the wrong text.
TEST(S3XmlAwsDocs, SignatureDoesNotMatchCarriesS3sView) {
  const std::string canonical_request =
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  const std::string string_to_sign =
      "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972";
  const std::optional<S3ErrorBody> error = parse_s3_error(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>"
      "<Message>The request signature we calculated does not match the signature you provided. "
      "Check your key and signing method.</Message><AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE"
      "</AWSAccessKeyId><StringToSign>" +
      string_to_sign +
      "</StringToSign><SignatureProvided>f0e8bdb87c964420e857bd35b5d6ed310bd44f"
      "0170aba48dd91039c6036bdb41</SignatureProvided><CanonicalRequest>" +
      canonical_request +
      "</CanonicalRequest><RequestId>TX1234</RequestId><HostId>h</HostId></Error>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "SignatureDoesNotMatch");
  EXPECT_EQ(error->string_to_sign, string_to_sign);
  EXPECT_EQ(error->canonical_request, canonical_request);
  EXPECT_EQ(error->request_id, "TX1234");
}

// ---------------------------------------------------------------------------------------------
// s3rver 3.7.1 (lib/s3rver.js, controllers/): fast-xml-parser's j2xParser with he.escape, so a
// declaration line, no indentation, every quote as &quot; and an apostrophe as &#x27;; its
// ListBucketResult namespace is "http://doc.s3.amazonaws.com/2006-03-01/" (sic); it ignores
// encoding-type; its errors carry no RequestId and its DeleteResult lists only <Deleted>.
// ---------------------------------------------------------------------------------------------

TEST(S3XmlS3rver, ListBucketResultIgnoringEncodingType) {
  const S3ListPage page = parse_list_objects_v2(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\"><Name>bucket</Name>"
      "<Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
      "<IsTruncated>false</IsTruncated><Contents><Key>100%+sure &amp; it&#x27;s.txt</Key>"
      "<LastModified>2021-05-01T12:00:00.000Z</LastModified>"
      "<ETag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</ETag><Size>5</Size>"
      "<StorageClass>STANDARD</StorageClass></Contents><Contents><Key>%41.txt</Key>"
      "<LastModified>2021-05-01T12:00:00.250Z</LastModified><ETag>&quot;d41d8cd98f00b204e980"
      "0998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>"
      "</ListBucketResult>",
      true);
  ASSERT_EQ(page.objects.size(), 2u);
  // No <EncodingType>url</EncodingType>: '%' and '+' are the keys' own.
  EXPECT_EQ(page.objects[0].key, "100%+sure & it's.txt");
  EXPECT_EQ(page.objects[0].etag, "5d41402abc4b2a76b9719d911017c592");
  EXPECT_EQ(page.objects[0].mtime_ns, 1619870400 * kSecond);
  EXPECT_EQ(page.objects[1].key, "%41.txt");
  EXPECT_EQ(page.objects[1].size, 0u);
  EXPECT_EQ(page.objects[1].mtime_ns, 1619870400 * kSecond + 250'000'000);
}

TEST(S3XmlS3rver, TruncatedListBucketResult) {
  const S3ListPage page = parse_list_objects_v2(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\"><Name>bucket</Name>"
      "<Prefix>logs/</Prefix><NextContinuationToken>1DrUx0Bl2OLlsXvhbVUkLA1zdWJGiq5Eh7BOOB+"
      "sYWY1nQ==</NextContinuationToken><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys>"
      "<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><Contents><Key>logs/a</Key>"
      "<LastModified>2021-05-01T12:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag>"
      "<Size>1</Size><StorageClass>STANDARD</StorageClass></Contents><CommonPrefixes>"
      "<Prefix>logs/2021/</Prefix></CommonPrefixes></ListBucketResult>",
      false);
  EXPECT_TRUE(page.truncated);
  EXPECT_EQ(page.next_continuation_token, "1DrUx0Bl2OLlsXvhbVUkLA1zdWJGiq5Eh7BOOB+sYWY1nQ==");
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].key, "logs/a");
  EXPECT_THAT(page.common_prefixes, ElementsAre("logs/2021/"));
}

TEST(S3XmlS3rver, MultipartUploadAnswers) {
  EXPECT_EQ(parse_initiate_multipart_upload(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>"
                "<Bucket>bucket</Bucket><Key>big.csv</Key>"
                "<UploadId>5a3bbe8e7d0e6a1a0f4c4f7c1e2b9d33</UploadId>"
                "</InitiateMultipartUploadResult>"),
            "5a3bbe8e7d0e6a1a0f4c4f7c1e2b9d33");
  EXPECT_EQ(parse_complete_multipart_upload(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>"
                "<Location>http://localhost:4568/bucket/big.csv</Location><Bucket>bucket</Bucket>"
                "<Key>big.csv</Key><ETag>&quot;b54357faf0632cce46e942fa68356b38-2&quot;</ETag>"
                "</CompleteMultipartUploadResult>"),
            "b54357faf0632cce46e942fa68356b38-2");
}

TEST(S3XmlS3rver, ErrorWithoutRequestId) {
  const std::optional<S3ErrorBody> error = parse_s3_error(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
      "<Message>The specified bucket does not exist</Message>"
      "<BucketName>nope</BucketName></Error>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "NoSuchBucket");
  EXPECT_EQ(error->message, "The specified bucket does not exist");
  EXPECT_EQ(error->request_id, "");
}

TEST(S3XmlS3rver, DeleteResultOfDeletedKeysOnly) {
  EXPECT_THAT(parse_delete_objects(
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Deleted><Key>"
                  "a</Key></Deleted><Deleted><Key>b</Key></Deleted></DeleteResult>"),
              IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Listings: encoding-type=url, text escapes, truncation, and what must be refused.
// ---------------------------------------------------------------------------------------------

// As botocore decodes with urllib.parse.unquote_plus (the expected keys are Python's output).
TEST(S3XmlListing, UrlEncodedKeysAndPrefixesAreDecoded) {
  const S3ListPage page = parse_list_objects_v2(
      listing("<EncodingType>url</EncodingType>" + one_object("photos/caf%C3%A9+menu%2B%252B.txt") +
              one_object("100%25+sure%zz%4") + one_object("ctl%01%0D%0A") +
              "<CommonPrefixes><Prefix>a+b%2F/</Prefix></CommonPrefixes>"),
      true);
  ASSERT_EQ(page.objects.size(), 3u);
  EXPECT_EQ(page.objects[0].key, "photos/caf\xC3\xA9 menu+%2B.txt");
  EXPECT_EQ(page.objects[1].key, "100% sure%zz%4");
  EXPECT_EQ(page.objects[2].key, "ctl\x01\r\n");
  EXPECT_THAT(page.common_prefixes, ElementsAre("a b//"));
}

TEST(S3XmlListing, UrlEncodedAnswerLeftAloneWhenNotAskedFor) {
  const S3ListPage page = parse_list_objects_v2(
      listing("<EncodingType>url</EncodingType>" + one_object("a+b%2B")), false);
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].key, "a+b%2B");
}

TEST(S3XmlListing, EscapedKeysKeepEveryCharacter) {
  const S3ListPage page = parse_list_objects_v2(
      listing(one_object("  ") + one_object("a&amp;b &lt;c&gt; &quot;q&quot; &#x1F600;&#233;") +
              one_object("x<![CDATA[<&>]]>y<!-- note -->z") + one_object("cr&#13;lf&#10;")),
      false);
  ASSERT_EQ(page.objects.size(), 4u);
  EXPECT_EQ(page.objects[0].key, "  ");
  EXPECT_EQ(page.objects[1].key, "a&b <c> \"q\" \xF0\x9F\x98\x80\xC3\xA9");
  EXPECT_EQ(page.objects[2].key, "x<&>yz");
  EXPECT_EQ(page.objects[3].key, "cr\rlf\n");
}

TEST(S3XmlListing, EmptyPage) {
  const S3ListPage page = parse_list_objects_v2(listing(""), true);
  EXPECT_THAT(page.objects, IsEmpty());
  EXPECT_THAT(page.common_prefixes, IsEmpty());
  EXPECT_FALSE(page.truncated);
}

TEST(S3XmlListing, SizesUpToUint64) {
  const S3ListPage page = parse_list_objects_v2(
      listing(one_object("five-tb", "5497558138880") + one_object("max", "18446744073709551615") +
              one_object("padded", "\n  42\n")),
      false);
  ASSERT_EQ(page.objects.size(), 3u);
  EXPECT_EQ(page.objects[0].size, 5497558138880u);
  EXPECT_EQ(page.objects[1].size, 18446744073709551615u);
  EXPECT_EQ(page.objects[2].size, 42u);
}

TEST(S3XmlListing, GarbageSizesNameTheElementAndTheKey) {
  for (const char* size : {"-1", "12abc", "+5", "1.5", "0x10", "18446744073709551616", " "}) {
    const std::string message = list_error(listing(one_object("a.csv", size)));
    EXPECT_THAT(message, HasSubstr("ListBucketResult/Contents/Size of 'a.csv' is not a byte count"))
        << size;
  }
  EXPECT_THAT(list_error(listing("<Contents><Key>k</Key><LastModified>2009-10-12T17:50:30Z"
                                 "</LastModified></Contents>")),
              HasSubstr("ListBucketResult/Contents of 'k' has no <Size>"));
}

TEST(S3XmlListing, MissingOrMalformedFieldsAreNamed) {
  EXPECT_THAT(list_error(listing("<Contents><Size>1</Size></Contents>")),
              HasSubstr("ListBucketResult/Contents has no <Key>"));
  EXPECT_THAT(list_error(listing(one_object(""))),
              HasSubstr("ListBucketResult/Contents has an empty <Key>"));
  EXPECT_THAT(list_error(listing(one_object("k", "1", "yesterday"))),
              HasSubstr("ListBucketResult/Contents/LastModified of 'k' is not an ISO 8601 time"));
  EXPECT_THAT(list_error(listing("<CommonPrefixes></CommonPrefixes>")),
              HasSubstr("ListBucketResult/CommonPrefixes has no <Prefix>"));
  EXPECT_THAT(list_error(listing("", "maybe")),
              HasSubstr("ListBucketResult/IsTruncated is not a boolean: 'maybe'"));
  EXPECT_THAT(list_error("<ListBucketResult><Name>b</Name></ListBucketResult>"),
              HasSubstr("ListBucketResult has no <IsTruncated>"));
}

TEST(S3XmlListing, TruncatedWithoutContinuationTokenIsRefused) {
  EXPECT_THAT(list_error(listing(one_object("a"), "true")), HasSubstr("<NextContinuationToken>"));
  // A server that ignored list-type=2 answers ListObjects V1: a marker, no token.
  EXPECT_THAT(list_error(listing("<NextMarker>a</NextMarker>" + one_object("a"), "true")),
              HasSubstr("has no <NextContinuationToken>"));
}

TEST(S3XmlListing, TokenOfAFinalPageIsIgnored) {
  const S3ListPage page =
      parse_list_objects_v2(listing("<NextContinuationToken>stale</NextContinuationToken>"), false);
  EXPECT_FALSE(page.truncated);
  EXPECT_EQ(page.next_continuation_token, "");
}

// ---------------------------------------------------------------------------------------------
// Bodies that are not the expected document.
// ---------------------------------------------------------------------------------------------

constexpr const char* kNginxBadGateway =
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n";

TEST(S3XmlBadBodies, NotXml) {
  for (const std::string_view body :
       {std::string_view("Service Unavailable"), std::string_view(kNginxBadGateway),
        std::string_view("<ListBucketResult><IsTruncated>false</IsTruncated>"),
        std::string_view("<ListBucketResult></ListBucket>")}) {
    EXPECT_THAT(list_error(body),
                HasSubstr("expected <ListBucketResult>, got a body that is not XML"))
        << body;
    EXPECT_EQ(parse_s3_error(body), std::nullopt) << body;
  }
  EXPECT_THAT(xml_error([] { parse_initiate_multipart_upload(""); }), HasSubstr("an empty body"));
}

TEST(S3XmlBadBodies, TextOrASecondElementBesideTheRoot) {
  const std::string page = listing("");
  EXPECT_THAT(list_error(page + "trailing"), HasSubstr("text outside the root element"));
  EXPECT_THAT(list_error("leading" + page), HasSubstr("text outside the root element"));
  EXPECT_THAT(list_error(page + "<Error/>"), HasSubstr("more than one root element"));
  EXPECT_THAT(list_error("<?xml version=\"1.0\"?><!-- only a comment -->"),
              HasSubstr("no element"));
  EXPECT_NO_THROW(parse_list_objects_v2(page + "\r\n<!-- done -->\n", false));
}

TEST(S3XmlBadBodies, WellFormedHtmlIsTheWrongRoot) {
  const std::string body = "<html><body><h1>Access Denied</h1></body></html>";
  EXPECT_THAT(list_error(body), HasSubstr("expected <ListBucketResult>, got <html>"));
  EXPECT_EQ(parse_s3_error(body), std::nullopt);
}

TEST(S3XmlBadBodies, WrongRoot) {
  EXPECT_THAT(xml_error([] { parse_initiate_multipart_upload(listing("")); }),
              HasSubstr("expected <InitiateMultipartUploadResult>, got <ListBucketResult>"));
  EXPECT_THAT(xml_error([] { parse_delete_objects("<DeleteObjectsResult/>"); }),
              HasSubstr("expected <DeleteResult>, got <DeleteObjectsResult>"));
  EXPECT_THAT(
      list_error("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"),
      HasSubstr("got S3's error AccessDenied: Access Denied"));
}

TEST(S3XmlBadBodies, MissingOrEmptyUploadIdAndETag) {
  EXPECT_THAT(xml_error([] {
                parse_initiate_multipart_upload(
                    "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                    "</InitiateMultipartUploadResult>");
              }),
              HasSubstr("InitiateMultipartUploadResult has no <UploadId>"));
  EXPECT_THAT(xml_error([] {
                parse_initiate_multipart_upload(
                    "<InitiateMultipartUploadResult><UploadId>\n  </UploadId>"
                    "</InitiateMultipartUploadResult>");
              }),
              HasSubstr("InitiateMultipartUploadResult has an empty <UploadId>"));
  EXPECT_THAT(xml_error([] {
                parse_complete_multipart_upload(
                    "<CompleteMultipartUploadResult><Key>k</Key></CompleteMultipartUploadResult>");
              }),
              HasSubstr("CompleteMultipartUploadResult has no <ETag>"));
}

TEST(S3XmlBadBodies, DeleteFailureWithoutKeyOrCode) {
  EXPECT_THAT(xml_error([] {
                parse_delete_objects(
                    "<DeleteResult><Error><Code>AccessDenied</Code></Error>"
                    "</DeleteResult>");
              }),
              HasSubstr("DeleteResult/Error has no <Key>"));
  EXPECT_THAT(xml_error([] {
                parse_delete_objects("<DeleteResult><Error><Key>k</Key></Error></DeleteResult>");
              }),
              HasSubstr("DeleteResult/Error of 'k' has no <Code>"));
}

// pugixml reads no DTD: an entity it declares, internal or external, stays unexpanded text.
TEST(S3XmlBadBodies, DeclaredEntitiesAreNotExpanded) {
  EXPECT_EQ(
      parse_initiate_multipart_upload("<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
                                      "<InitiateMultipartUploadResult><UploadId>&xxe;</UploadId>"
                                      "</InitiateMultipartUploadResult>"),
      "&xxe;");
  EXPECT_EQ(parse_initiate_multipart_upload(
                "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]>"
                "<InitiateMultipartUploadResult><UploadId>&b;</UploadId>"
                "</InitiateMultipartUploadResult>"),
            "&b;");
}

TEST(S3XmlErrors, OnlyAnErrorRootIsAnError) {
  EXPECT_EQ(parse_s3_error(""), std::nullopt);
  EXPECT_EQ(parse_s3_error(listing("")), std::nullopt);
  // A DeleteResult holds <Error> elements but is not one.
  EXPECT_EQ(parse_s3_error("<DeleteResult><Error><Key>k</Key><Code>AccessDenied</Code></Error>"
                           "</DeleteResult>"),
            std::nullopt);
  const std::optional<S3ErrorBody> error = parse_s3_error(
      "<Error><Code> SlowDown </Code><Message>Please reduce your request rate."
      "</Message></Error>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "SlowDown");
  EXPECT_EQ(error->message, "Please reduce your request rate.");
}

// ---------------------------------------------------------------------------------------------
// Request bodies.
// ---------------------------------------------------------------------------------------------

TEST(S3XmlBodies, DeleteObjects) {
  EXPECT_EQ(delete_objects_body({"sample1.txt", "sample2.txt"}),
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            "<Object><Key>sample1.txt</Key></Object><Object><Key>sample2.txt</Key></Object>"
            "</Delete>");
}

// The S3 User Guide's list of characters to replace inside XML; the rest goes as it is.
TEST(S3XmlBodies, DeleteObjectsEscapesKeys) {
  EXPECT_EQ(delete_objects_body({"a<b&c\"d'e>f\r\ng", "caf\xC3\xA9 +%2B\ttab", " "}),
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            "<Object><Key>a&lt;b&amp;c&quot;d&apos;e&gt;f&#13;&#10;g</Key></Object>"
            "<Object><Key>caf\xC3\xA9 +%2B\ttab</Key></Object>"
            "<Object><Key> </Key></Object></Delete>");
}

TEST(S3XmlBodies, DeleteObjectsRequirements) {
  EXPECT_THROW(delete_objects_body({}), std::invalid_argument);
  EXPECT_THROW(delete_objects_body(std::vector<std::string>(1001, "k")), std::invalid_argument);
  EXPECT_NO_THROW(delete_objects_body(std::vector<std::string>(1000, "k")));
  for (const std::string& key : {std::string(""), std::string("nul\0x", 5), std::string("bell\x07"),
                                 std::string("bad\xC3"), std::string("nonchar\xEF\xBF\xBF")}) {
    EXPECT_THROW(delete_objects_body({"fine", key}), std::invalid_argument) << key;
  }
}

TEST(S3XmlBodies, CompleteMultipartUpload) {
  // ETags as UploadPart's header gives them (quoted), or bare: both go quoted.
  EXPECT_EQ(complete_multipart_upload_body({{1, "\"a54357aff0632cce46d942af68356b38\""},
                                            {2, "0c78aef83f66abc1fa1e8477f296d394"},
                                            {10000, "acbd18db4cc2f85cedef654fccc4a4d8"}}),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Part><PartNumber>1</PartNumber>"
            "<ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>"
            "<Part><PartNumber>2</PartNumber>"
            "<ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag></Part>"
            "<Part><PartNumber>10000</PartNumber>"
            "<ETag>&quot;acbd18db4cc2f85cedef654fccc4a4d8&quot;</ETag></Part>"
            "</CompleteMultipartUpload>");
}

TEST(S3XmlBodies, CompleteMultipartUploadRequirements) {
  EXPECT_THROW(complete_multipart_upload_body({}), std::invalid_argument);
  EXPECT_THROW(complete_multipart_upload_body({{2, "a"}, {1, "b"}}), std::invalid_argument);
  EXPECT_THROW(complete_multipart_upload_body({{1, "a"}, {1, "b"}}), std::invalid_argument);
  EXPECT_THROW(complete_multipart_upload_body({{0, "a"}}), std::invalid_argument);
  EXPECT_THROW(complete_multipart_upload_body({{10001, "a"}}), std::invalid_argument);
  EXPECT_THROW(complete_multipart_upload_body({{1, ""}}), std::invalid_argument);
  EXPECT_THROW(complete_multipart_upload_body({{1, "\x01"}}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Times.
// ---------------------------------------------------------------------------------------------

TEST(S3XmlTimes, S3Times) {
  EXPECT_EQ(parse_s3_time("2009-10-12T17:50:30.000Z"), 1255369830 * kSecond);
  EXPECT_EQ(parse_s3_time("2009-10-12T17:50:30Z"), 1255369830 * kSecond);
  EXPECT_EQ(parse_s3_time("2009-10-12T17:50:30"), 1255369830 * kSecond);
  EXPECT_EQ(parse_s3_time("2009-10-12T19:50:30.5+02:00"), 1255369830 * kSecond + 500'000'000);
  EXPECT_EQ(parse_s3_time("2009-10-12T12:20:30-05:30"), 1255369830 * kSecond);
  EXPECT_EQ(parse_s3_time("2009-10-12T17:50:30.123456789Z"), 1255369830 * kSecond + 123456789);
  EXPECT_EQ(parse_s3_time("2009-10-12T17:50:30.1234567899Z"), 1255369830 * kSecond + 123456789);
  EXPECT_EQ(parse_s3_time("2008-02-29T00:00:00Z"), 1204243200 * kSecond);
  EXPECT_EQ(parse_s3_time("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_s3_time("1969-12-31T23:59:59.5Z"), -500'000'000);
}

TEST(S3XmlTimes, S3TimesOutsideInt64NanosecondsOrMalformed) {
  EXPECT_EQ(parse_s3_time("2262-04-11T23:47:15.999999999Z"), 9223372035999999999);
  EXPECT_EQ(parse_s3_time("2262-04-11T23:47:16Z"), std::nullopt);
  EXPECT_EQ(parse_s3_time("1677-09-21T00:12:44Z"), -9223372036 * kSecond);
  EXPECT_EQ(parse_s3_time("1677-09-21T00:12:43Z"), std::nullopt);
  for (const char* text :
       {"", "2009-10-12", "2009-10-12 17:50:30Z", "2009-10-12T17:50:30.Z", "2009-10-12T17:50:30,5Z",
        "2009-10-12T17:50:30.000Zjunk", "2009-02-29T00:00:00Z", "2009-13-01T00:00:00Z",
        "2009-10-12T24:00:00Z", "2009-10-12T17:60:00Z", "2009-10-12T17:50:61Z",
        "2009-10-12T17:50:30+0200", "2009-10-12T17:50:30+24:00", "+2009-10-12T17:50:30Z",
        " 2009-10-12T17:50:30Z", "2009-1-12T17:50:30Z"}) {
    EXPECT_EQ(parse_s3_time(text), std::nullopt) << text;
  }
}

// The header comment's example, and RFC 9110 §5.6.7's three forms of one instant.
TEST(S3XmlTimes, HttpDates) {
  EXPECT_EQ(parse_http_date("Wed, 12 Oct 2009 17:50:00 GMT"), 1255369800 * kSecond);
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777 * kSecond);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777 * kSecond);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777 * kSecond);
  EXPECT_EQ(parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT"), 946684800 * kSecond);
  EXPECT_EQ(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT"), 0);
}

TEST(S3XmlTimes, MalformedHttpDates) {
  for (const char* text :
       {"", "Sun, 06 Nov 1994 08:49:37 UTC", "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 06 Nov 1994 08:49 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday, 06 Nov 1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94",
        "1994-11-06T08:49:37Z", "Sun, 06 Nov 1994 25:49:37 GMT"}) {
    EXPECT_EQ(parse_http_date(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace sluice
