#include "s3/s3_xml.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <limits>
#include <pugixml.hpp>
#include <utility>

#include "core/utf8.hpp"

namespace sluice {
namespace {

// parse_default expands character references and XML's five entities, nothing else: pugixml
// reads no DTD, so no external entity is fetched and no entity grows ("billion laughs"). It also
// makes CDATA text and CR LF a LF, as XML requires. ws_pcdata keeps a key made of spaces.
// fragment keeps text and a second element beside the root, which pugixml otherwise drops
// without a word, so that load() can call such a body malformed.
constexpr unsigned kParseOptions =
    pugi::parse_default | pugi::parse_ws_pcdata | pugi::parse_fragment;
constexpr std::string_view kS3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/";
constexpr std::size_t kMaxDeleteKeys = 1000;
constexpr int kMaxPartNumber = 10000;
constexpr std::string_view kContents = "ListBucketResult/Contents";

[[noreturn]] void fail(const std::string& problem) {
  throw S3XmlError("S3 XML: " + problem);
}

[[noreturn]] void reject(const std::string& problem) {
  throw std::invalid_argument("S3 XML body: " + problem);
}

bool is_xml_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_xml_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_xml_space(text.back())) text.remove_suffix(1);
  return text;
}

// Text from S3 as a message shows it: short, printable, UTF-8 (a body may be anything).
std::string quoted(std::string_view text) {
  return "'" + shown_text(text) + "'";
}

// ----------------------------------------------------------------------------------------------
// Reading
// ----------------------------------------------------------------------------------------------

std::string_view local_name(pugi::xml_node node) {
  const std::string_view name = node.name();
  return name.substr(name.find(':') + 1);  // without a prefix, npos + 1 is 0
}

template <typename Visit>
void for_each_child(pugi::xml_node parent, std::string_view name, Visit visit) {
  for (pugi::xml_node node : parent.children()) {
    if (node.type() == pugi::node_element && local_name(node) == name) visit(node);
  }
}

pugi::xml_node child(pugi::xml_node parent, std::string_view name) {
  for (pugi::xml_node node : parent.children()) {
    if (node.type() == pugi::node_element && local_name(node) == name) return node;
  }
  return {};
}

// The text directly inside `element`, "" for a missing one. pugixml splits text around comments
// and CDATA sections.
std::string text_of(pugi::xml_node element) {
  std::string text;
  for (pugi::xml_node node : element.children()) {
    if (node.type() == pugi::node_pcdata || node.type() == pugi::node_cdata) text += node.value();
  }
  return text;
}

std::string trimmed_text_of(pugi::xml_node element) {
  return std::string(trim(text_of(element)));
}

// Why `body` is not one well-formed element with nothing but blanks (and comments, processing
// instructions, a DOCTYPE) around it; "" when it is.
std::string load(pugi::xml_document& document, std::string_view body) {
  if (body.empty()) return "an empty body";
  const pugi::xml_parse_result parsed =
      document.load_buffer(body.data(), body.size(), kParseOptions, pugi::encoding_utf8);
  if (!parsed) {
    return std::string(parsed.description()) + " at byte " + std::to_string(parsed.offset);
  }
  int roots = 0;
  for (pugi::xml_node node : document.children()) {
    if (node.type() == pugi::node_element) {
      ++roots;
    } else if (node.type() == pugi::node_cdata || !trim(node.value()).empty()) {
      return "text outside the root element";
    }
  }
  if (roots != 1) return roots == 0 ? "no element" : "more than one root element";
  return "";
}

// The root element of `body`, which must be <`name`>. S3 may answer 200 with an <Error> (a late
// failure of CompleteMultipartUpload): its code and message make the best diagnosis.
pugi::xml_node expect_root(pugi::xml_document& document, std::string_view body,
                           std::string_view name) {
  const std::string expected = "expected <" + std::string(name) + ">, got ";
  const std::string problem = load(document, body);
  if (!problem.empty()) {
    fail(expected + "a body that is not XML (" + problem + "): " + quoted(body));
  }
  const pugi::xml_node root = document.document_element();
  if (local_name(root) == name) return root;
  if (local_name(root) == "Error") {
    fail(expected + "S3's error " + trimmed_text_of(child(root, "Code")) + ": " +
         text_of(child(root, "Message")));
  }
  fail(expected + "<" + shown_text(root.name()) + ">");
}

// The text of `parent`'s child `name`; `where` names `parent` in the message when it is missing
// or empty.
std::string required_text(pugi::xml_node parent, const std::string& where, std::string_view name) {
  const pugi::xml_node element = child(parent, name);
  if (!element) fail(where + " has no <" + std::string(name) + ">");
  std::string text = text_of(element);
  if (text.empty()) fail(where + " has an empty <" + std::string(name) + ">");
  return text;
}

// The same for an identifier, where blanks around it are the document's layout.
std::string required_token(pugi::xml_node parent, const std::string& where, std::string_view name) {
  std::string token(trim(required_text(parent, where, name)));
  if (token.empty()) fail(where + " has an empty <" + std::string(name) + ">");
  return token;
}

// S3 quotes ETags ("&quot;" in XML or a raw '"'); comparisons and our callers want them bare.
std::string unquoted_etag(std::string_view text) {
  text = trim(text);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  return std::string(text);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's urllib.parse.unquote_plus, byte for byte (it leaves a malformed escape as it is).
std::string url_decoded(std::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int high = text[i] == '%' && i + 2 < text.size() ? hex_digit(text[i + 1]) : -1;
    const int low = high < 0 ? -1 : hex_digit(text[i + 2]);
    if (low >= 0) {
      decoded += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      decoded += text[i] == '+' ? ' ' : text[i];
    }
  }
  return decoded;
}

bool is_truncated(pugi::xml_node root) {
  const std::string flag = trimmed_text_of(child(root, "IsTruncated"));
  if (flag == "true" || flag == "1") return true;
  if (flag == "false" || flag == "0") return false;
  if (!child(root, "IsTruncated")) fail("ListBucketResult has no <IsTruncated>");
  fail("ListBucketResult/IsTruncated is not a boolean: " + quoted(flag));
}

std::uint64_t object_size(pugi::xml_node contents, const std::string& shown_key) {
  const std::string text =
      required_text(contents, std::string(kContents) + " of " + shown_key, "Size");
  const std::string_view digits = trim(text);
  std::uint64_t size = 0;
  const char* end = digits.data() + digits.size();
  const auto [stop, error] = std::from_chars(digits.data(), end, size);  // no sign, no blanks
  if (digits.empty() || error != std::errc() || stop != end) {
    fail(std::string(kContents) + "/Size of " + shown_key +
         " is not a byte count: " + quoted(text));
  }
  return size;
}

std::int64_t object_mtime(pugi::xml_node contents, const std::string& shown_key) {
  const std::string where = std::string(kContents) + " of " + shown_key;
  const std::string text = required_text(contents, where, "LastModified");
  const std::optional<std::int64_t> mtime_ns = parse_s3_time(trim(text));
  if (!mtime_ns) {
    fail(std::string(kContents) + "/LastModified of " + shown_key +
         " is not an ISO 8601 time: " + quoted(text));
  }
  return *mtime_ns;
}

S3ListedObject listed_object(pugi::xml_node contents, bool decode) {
  S3ListedObject object;
  object.key = required_text(contents, std::string(kContents), "Key");
  if (decode) object.key = url_decoded(object.key);
  const std::string shown_key = quoted(object.key);
  object.size = object_size(contents, shown_key);
  object.mtime_ns = object_mtime(contents, shown_key);
  object.etag = unquoted_etag(text_of(child(contents, "ETag")));
  return object;
}

// ----------------------------------------------------------------------------------------------
// Writing
// ----------------------------------------------------------------------------------------------

// XML 1.0 can carry `text`: valid UTF-8 of Chars, i.e. no C0 control but tab, LF and CR, and no
// U+FFFE or U+FFFF (EF BF BE, EF BF BF). S3 answers anything else with MalformedXML.
bool sendable(std::string_view text) {
  if (!valid_utf8(text)) return false;
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return text.find("\xEF\xBF\xBE") == std::string_view::npos &&
         text.find("\xEF\xBF\xBF") == std::string_view::npos;
}

// As the S3 User Guide lists it ("Object key naming guidelines", XML related constraints): the
// five entities, and CR and LF as references: XML end-of-line handling would turn a raw CR, or
// CR LF, into LF on S3's side, and the key would no longer match.
constexpr std::string_view kEscapedChars = "&<>\"'\r\n";
constexpr std::array<std::string_view, 7> kEscapes = {"&amp;",  "&lt;",  "&gt;", "&quot;",
                                                      "&apos;", "&#13;", "&#10;"};

void append_text(std::string& out, std::string_view text) {
  for (const char& c : text) {
    const std::size_t escape = kEscapedChars.find(c);
    out += escape == std::string_view::npos ? std::string_view(&c, 1) : kEscapes[escape];
  }
}

void append_element(std::string& out, std::string_view name, std::string_view text) {
  out.append("<").append(name).append(">");
  append_text(out, text);
  out.append("</").append(name).append(">");
}

// The namespace, as the AWS SDKs send it; S3 accepts the body without it, some others do not.
std::string open_root(std::string_view name) {
  return "<" + std::string(name) + " xmlns=\"" + std::string(kS3Namespace) + "\">";
}

void check_parts(const std::vector<S3CompletedPart>& parts) {
  if (parts.empty() || parts.size() > static_cast<std::size_t>(kMaxPartNumber)) {
    reject("a multipart upload has 1 to 10000 parts, not " + std::to_string(parts.size()));
  }
  int previous = 0;
  for (const S3CompletedPart& part : parts) {
    if (part.number <= previous || part.number > kMaxPartNumber) {
      reject("part numbers must ascend within 1..10000: " + std::to_string(part.number) +
             " after " + std::to_string(previous));
    }
    if (part.etag.empty() || !sendable(part.etag)) {
      reject("part " + std::to_string(part.number) + " has an empty or unsendable ETag " +
             quoted(part.etag));
    }
    previous = part.number;
  }
}

// S3 compares ETags without their quotes but documents and sends them quoted.
std::string quoted_etag(const std::string& etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') return etag;
  return '"' + etag + '"';
}

// ----------------------------------------------------------------------------------------------
// Times
// ----------------------------------------------------------------------------------------------

struct CivilTime {
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;  // 60 is a leap second: the instant after :59
  std::int64_t nanos = 0;
  int offset_seconds = 0;  // east of UTC
};

// The seconds whose nanoseconds, plus any fraction, fit an int64.
constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / kNanosPerSecond - 1;
constexpr std::int64_t kMinSeconds = std::numeric_limits<std::int64_t>::min() / kNanosPerSecond;

std::optional<std::int64_t> epoch_ns(const CivilTime& t) {
  using namespace std::chrono;
  const year_month_day date{year{t.year}, month{static_cast<unsigned>(t.month)},
                            day{static_cast<unsigned>(t.day)}};
  if (!date.ok() || t.hour > 23 || t.minute > 59 || t.second > 60) return std::nullopt;
  const std::int64_t days_since_epoch = sys_days{date}.time_since_epoch().count();
  const std::int64_t seconds =
      days_since_epoch * 86400 + t.hour * 3600 + t.minute * 60 + t.second - t.offset_seconds;
  if (seconds < kMinSeconds || seconds > kMaxSeconds) return std::nullopt;
  return seconds * kNanosPerSecond + t.nanos;
}

// Reads a date field by field from the front; a failed step may leave the output half set.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : rest_(text) {}

  bool done() const { return rest_.empty(); }
  char peek() const { return rest_.empty() ? '\0' : rest_.front(); }

  bool skip(std::string_view literal) {
    if (rest_.substr(0, literal.size()) != literal) return false;
    rest_.remove_prefix(literal.size());
    return true;
  }

  // Exactly `digits` decimal digits.
  bool number(std::size_t digits, int& value) {
    if (rest_.size() < digits) return false;
    value = 0;
    for (std::size_t i = 0; i < digits; ++i) {
      if (rest_[i] < '0' || rest_[i] > '9') return false;
      value = value * 10 + (rest_[i] - '0');
    }
    rest_.remove_prefix(digits);
    return true;
  }

  // One of `names` (none a prefix of another); `index` is its position.
  template <std::size_t N>
  bool one_of(const std::array<std::string_view, N>& names, int& index) {
    for (std::size_t i = 0; i < N; ++i) {
      if (skip(names[i])) {
        index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }

 private:
  std::string_view rest_;
};

constexpr std::array<std::string_view, 7> kDayNames = {"Mon", "Tue", "Wed", "Thu",
                                                       "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDayNames = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> kMonthNames = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool time_of_day(Scanner& in, CivilTime& t) {
  return in.number(2, t.hour) && in.skip(":") && in.number(2, t.minute) && in.skip(":") &&
         in.number(2, t.second);
}

// ".5", ".123456789": the digits after 9 are below a nanosecond and dropped.
bool fraction(Scanner& in, std::int64_t& nanos) {
  if (!in.skip(".")) return true;
  int digit = 0;
  int count = 0;
  for (; in.number(1, digit); ++count) {
    if (count < 9) nanos = nanos * 10 + digit;
  }
  for (int i = count; i < 9; ++i) nanos *= 10;
  return count > 0;
}

// "Z", "+02:00", "-05:30", or nothing (UTC, as S3 means it).
bool zone(Scanner& in, int& offset_seconds) {
  if (in.done() || in.skip("Z") || in.skip("z")) return true;
  const int sign = in.peek() == '-' ? -1 : 1;
  int hours = 0;
  int minutes = 0;
  if (!(in.skip("+") || in.skip("-")) || !in.number(2, hours) || !in.skip(":") ||
      !in.number(2, minutes) || hours > 23 || minutes > 59) {
    return false;
  }
  offset_seconds = sign * (hours * 3600 + minutes * 60);
  return true;
}

bool month_name(Scanner& in, CivilTime& t) {
  int index = 0;
  if (!in.one_of(kMonthNames, index)) return false;
  t.month = index + 1;
  return true;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
bool imf_fixdate(Scanner& in, CivilTime& t) {
  int weekday = 0;
  return in.one_of(kDayNames, weekday) && in.skip(", ") && in.number(2, t.day) && in.skip(" ") &&
         month_name(in, t) && in.skip(" ") && in.number(4, t.year) && in.skip(" ") &&
         time_of_day(in, t) && in.skip(" GMT");
}

// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". RFC 9110 pivots the year on today's date; a pure
// function takes the fixed pivot most HTTP libraries use.
bool rfc850_date(Scanner& in, CivilTime& t) {
  int weekday = 0;
  if (!(in.one_of(kLongDayNames, weekday) && in.skip(", ") && in.number(2, t.day) && in.skip("-") &&
        month_name(in, t) && in.skip("-") && in.number(2, t.year) && in.skip(" ") &&
        time_of_day(in, t) && in.skip(" GMT"))) {
    return false;
  }
  t.year += t.year < 70 ? 2000 : 1900;
  return true;
}

// asctime: "Sun Nov  6 08:49:37 1994" (a day below 10 is padded with a space).
bool asctime_date(Scanner& in, CivilTime& t) {
  int weekday = 0;
  return in.one_of(kDayNames, weekday) && in.skip(" ") && month_name(in, t) && in.skip(" ") &&
         (in.number(2, t.day) || (in.skip(" ") && in.number(1, t.day))) && in.skip(" ") &&
         time_of_day(in, t) && in.skip(" ") && in.number(4, t.year);
}

using HttpDateFormat = bool (*)(Scanner&, CivilTime&);
constexpr std::array<HttpDateFormat, 3> kHttpDateFormats = {imf_fixdate, rfc850_date, asctime_date};

}  // namespace

std::optional<S3ErrorBody> parse_s3_error(std::string_view body) {
  pugi::xml_document document;
  if (!load(document, body).empty()) return std::nullopt;
  const pugi::xml_node root = document.document_element();
  if (local_name(root) != "Error") return std::nullopt;
  S3ErrorBody error;
  error.code = trimmed_text_of(child(root, "Code"));
  error.message = text_of(child(root, "Message"));
  error.request_id = trimmed_text_of(child(root, "RequestId"));
  error.string_to_sign = text_of(child(root, "StringToSign"));
  error.canonical_request = text_of(child(root, "CanonicalRequest"));
  return error;
}

S3ListPage parse_list_objects_v2(std::string_view body, bool url_encoded) {
  pugi::xml_document document;
  const pugi::xml_node root = expect_root(document, body, "ListBucketResult");
  // Only what the answer says it encoded: a server that ignores encoding-type (s3rver) sends
  // keys as they are, and a '%' or '+' in them is the key's own.
  const bool decode = url_encoded && trimmed_text_of(child(root, "EncodingType")) == "url";
  S3ListPage page;
  page.truncated = is_truncated(root);
  for_each_child(root, "Contents", [&](pugi::xml_node contents) {
    page.objects.push_back(listed_object(contents, decode));
  });
  for_each_child(root, "CommonPrefixes", [&](pugi::xml_node prefixes) {
    const std::string prefix = required_text(prefixes, "ListBucketResult/CommonPrefixes", "Prefix");
    page.common_prefixes.push_back(decode ? url_decoded(prefix) : prefix);
  });
  if (page.truncated) {
    // Without it the caller would list the first page again, forever.
    page.next_continuation_token =
        required_token(root, "ListBucketResult (truncated; a ListObjects V1 answer has none)",
                       "NextContinuationToken");
  }
  return page;
}

std::string parse_initiate_multipart_upload(std::string_view body) {
  pugi::xml_document document;
  const pugi::xml_node root = expect_root(document, body, "InitiateMultipartUploadResult");
  return required_token(root, "InitiateMultipartUploadResult", "UploadId");
}

std::string parse_complete_multipart_upload(std::string_view body) {
  pugi::xml_document document;
  const pugi::xml_node root = expect_root(document, body, "CompleteMultipartUploadResult");
  return unquoted_etag(required_token(root, "CompleteMultipartUploadResult", "ETag"));
}

std::string complete_multipart_upload_body(const std::vector<S3CompletedPart>& parts) {
  check_parts(parts);
  std::string body = open_root("CompleteMultipartUpload");
  for (const S3CompletedPart& part : parts) {
    body += "<Part>";
    append_element(body, "PartNumber", std::to_string(part.number));
    append_element(body, "ETag", quoted_etag(part.etag));
    body += "</Part>";
  }
  return body + "</CompleteMultipartUpload>";
}

std::string delete_objects_body(const std::vector<std::string>& keys) {
  if (keys.empty() || keys.size() > kMaxDeleteKeys) {
    reject("DeleteObjects takes 1 to 1000 keys, not " + std::to_string(keys.size()));
  }
  // Quiet: S3 lists only the failures, which is all parse_delete_objects() reports.
  std::string body = open_root("Delete") + "<Quiet>true</Quiet>";
  for (const std::string& key : keys) {
    if (key.empty() || !sendable(key)) {
      reject("the key " + quoted(key) + " is empty or holds what XML 1.0 cannot carry");
    }
    body += "<Object>";
    append_element(body, "Key", key);
    body += "</Object>";
  }
  return body + "</Delete>";
}

std::vector<S3DeleteFailure> parse_delete_objects(std::string_view body) {
  pugi::xml_document document;
  const pugi::xml_node root = expect_root(document, body, "DeleteResult");
  std::vector<S3DeleteFailure> failures;
  for_each_child(root, "Error", [&](pugi::xml_node error) {
    S3DeleteFailure failure;
    failure.key = required_text(error, "DeleteResult/Error", "Key");
    failure.code = required_token(error, "DeleteResult/Error of " + quoted(failure.key), "Code");
    failure.message = text_of(child(error, "Message"));
    failures.push_back(std::move(failure));
  });
  return failures;
}

std::optional<std::int64_t> parse_s3_time(std::string_view text) {
  Scanner in(text);
  CivilTime t;
  const bool parsed = in.number(4, t.year) && in.skip("-") && in.number(2, t.month) &&
                      in.skip("-") && in.number(2, t.day) && (in.skip("T") || in.skip("t")) &&
                      time_of_day(in, t) && fraction(in, t.nanos) && zone(in, t.offset_seconds) &&
                      in.done();
  return parsed ? epoch_ns(t) : std::nullopt;
}

std::optional<std::int64_t> parse_http_date(std::string_view text) {
  for (HttpDateFormat format : kHttpDateFormats) {
    Scanner in(text);
    CivilTime t;
    if (format(in, t) && in.done()) return epoch_ns(t);
  }
  return std::nullopt;
}

}  // namespace sluice
