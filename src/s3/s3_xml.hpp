#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// The XML S3 answers with and the XML bodies Sluice sends (pugixml). Pure functions: no I/O,
// thread-safe. A body that is not the expected document throws S3XmlError naming what is
// missing or malformed (the caller turns it into a StorageError); a broken REQUIRES of a body
// builder throws std::invalid_argument. No DTD is read and no entity but XML's five and
// character references is expanded; text beside the root element, or a second root, is
// malformed. Element names match without a namespace prefix.

class S3XmlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// <Error><Code>NoSuchKey</Code><Message>...</Message><RequestId>...</RequestId>...</Error>.
// Also what S3 sends with 200 OK to a CompleteMultipartUpload that failed late.
struct S3ErrorBody {
  std::string code;     // "NoSuchBucket", "SignatureDoesNotMatch", "SlowDown", ...
  std::string message;  // S3's sentence
  std::string request_id;
  // SignatureDoesNotMatch carries S3's own view, for a precise diagnosis.
  std::string string_to_sign;
  std::string canonical_request;
};
// Nothing when `body` is not an <Error> document (empty, HTML from a proxy, another root).
std::optional<S3ErrorBody> parse_s3_error(std::string_view body);

// ListObjectsV2 (ListBucketResult). The client asks for encoding-type=url (a key may hold bytes
// XML 1.0 cannot carry); S3 then percent-encodes <Key>, <Prefix>, <StartAfter> and <Delimiter>
// and says so with <EncodingType>url</EncodingType>. `url_encoded` (the request asked for it)
// decodes keys and common prefixes as botocore does: only when the answer says url (a server
// that ignores the parameter, such as s3rver, sends keys as they are), with unquote_plus (%XX is
// the byte, '+' is a space, a real '+' arrives as %2B, a '%' without two hex digits stays).
// Every <Contents> needs a <Key>, a <Size> (a uint64) and a <LastModified>; a truncated page
// needs a <NextContinuationToken>, else S3XmlError.
struct S3ListedObject {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;  // as S3 gives it, quotes removed: 9b2cf535f27731c974343645a3985328; "" if none
  std::int64_t mtime_ns = 0;  // <LastModified> (ISO 8601, e.g. 2009-10-12T17:50:30.000Z)
};
struct S3ListPage {
  std::vector<S3ListedObject> objects;
  std::vector<std::string> common_prefixes;  // with a delimiter
  bool truncated = false;                    // <IsTruncated>true</IsTruncated>
  std::string next_continuation_token;       // when truncated
};
S3ListPage parse_list_objects_v2(std::string_view body, bool url_encoded);

// InitiateMultipartUploadResult: the UploadId.
std::string parse_initiate_multipart_upload(std::string_view body);

// CompleteMultipartUploadResult: the object's ETag (quotes removed). A 200 answer whose body is
// an <Error> document is a failure: parse_s3_error() it first.
std::string parse_complete_multipart_upload(std::string_view body);

struct S3CompletedPart {
  int number = 0;    // 1..10000
  std::string etag;  // as UploadPart's ETag header gave it (quotes kept or not: sent quoted)
};
// <CompleteMultipartUpload xmlns="..."><Part><PartNumber>1</PartNumber><ETag>&quot;...&quot;
// </ETag></Part>...</CompleteMultipartUpload>, no XML declaration (UTF-8 is XML's default).
// REQUIRES: 1..10000 parts, numbers 1..10000 strictly ascending; each ETag not empty and
// sendable (below).
std::string complete_multipart_upload_body(const std::vector<S3CompletedPart>& parts);

// <Delete xmlns="..."><Quiet>true</Quiet><Object><Key>...</Key></Object>...</Delete>
// (DeleteObjects; S3 also wants a Content-MD5 or x-amz-checksum-* header with it). Keys are
// escaped as AWS lists it: ' " & < > as entities, CR and LF as character references.
// REQUIRES: 1..1000 keys, each not empty and sendable: valid UTF-8 of XML 1.0 characters (no
// C0 control but tab, LF and CR, no U+FFFE or U+FFFF; such a key needs DeleteObject).
std::string delete_objects_body(const std::vector<std::string>& keys);
// DeleteResult: the keys that could not be deleted, with their error code and message.
struct S3DeleteFailure {
  std::string key;
  std::string code;
  std::string message;
};
std::vector<S3DeleteFailure> parse_delete_objects(std::string_view body);

// "2009-10-12T17:50:30.000Z" -> nanoseconds since the epoch; nothing when malformed or outside
// int64 nanoseconds (1677..2262). Fractional seconds are optional (digits past 9 are dropped);
// the zone is 'Z', an offset (+02:00) or absent (UTC).
std::optional<std::int64_t> parse_s3_time(std::string_view text);
// An HTTP date ("Wed, 12 Oct 2009 17:50:00 GMT", Last-Modified) -> nanoseconds since the
// epoch; nothing when malformed. RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 (its
// two-digit year is 19YY from 70, else 20YY) and asctime forms. The weekday is not checked
// against the date.
std::optional<std::int64_t> parse_http_date(std::string_view text);

}  // namespace sluice
