// Fuzzes the S3 XML layer (s3/s3_xml.hpp) with any bytes: S3's answers are untrusted input.
// Invariants:
// - every parse_* function, on the input and on the input inside its expected root element,
//   returns or throws S3XmlError: no other exception, no crash; parse_s3_error never throws;
// - a parsed listing has no empty key or prefix, and a truncated one has a continuation token;
// - parse_s3_time and parse_http_date never throw, and read back their own rendering of what
//   they returned (ISO 8601 with nanoseconds, IMF-fixdate) as the same instant;
// - the body builders, given the input cut at each 0xFF byte (never in UTF-8) as keys and
//   ETags, throw std::invalid_argument exactly when a REQUIRES is broken (a reference written
//   from the XML 1.0 Char production); otherwise pugixml reads their XML back to exactly those
//   keys (in order, with Quiet true) and those part numbers and quoted ETags.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <pugixml.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "s3/s3_xml.hpp"

namespace {

using sluice::S3CompletedPart;
using sluice::S3XmlError;

constexpr std::string_view kS3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/";

[[noreturn]] void fail(const std::string& what, std::string_view input) {
  std::cerr << "invariant broken: " << what << "\ninput (" << input.size() << " bytes): [" << input
            << "]\n";
  std::abort();
}

// Runs `parse`, which may only return or throw S3XmlError (anything else escapes to libFuzzer).
template <typename Parse>
void expect_only_xml_errors(Parse parse) {
  try {
    parse();
  } catch (const S3XmlError&) {
  }
}

void check_listing(std::string_view body, std::string_view input) {
  for (bool url_encoded : {false, true}) {
    expect_only_xml_errors([&] {
      const sluice::S3ListPage page = sluice::parse_list_objects_v2(body, url_encoded);
      for (const sluice::S3ListedObject& object : page.objects) {
        if (object.key.empty()) fail("a listed object without a key", input);
      }
      for (const std::string& prefix : page.common_prefixes) {
        if (prefix.empty()) fail("an empty common prefix", input);
      }
      if (page.truncated && page.next_continuation_token.empty()) {
        fail("a truncated page without a continuation token", input);
      }
    });
  }
}

void check_parsers(std::string_view body, std::string_view input) {
  (void)sluice::parse_s3_error(body);  // noexcept in effect: an exception escapes and aborts
  check_listing(body, input);
  expect_only_xml_errors([&] { (void)sluice::parse_initiate_multipart_upload(body); });
  expect_only_xml_errors([&] { (void)sluice::parse_complete_multipart_upload(body); });
  expect_only_xml_errors([&] { (void)sluice::parse_delete_objects(body); });
}

std::string wrapped(std::string_view root, std::string_view inner) {
  return "<" + std::string(root) + ">" + std::string(inner) + "</" + std::string(root) + ">";
}

// ---- Times ----

struct Civil {
  std::chrono::year_month_day date;
  std::chrono::hh_mm_ss<std::chrono::nanoseconds> time;
  std::chrono::weekday weekday;
};

Civil civil(std::int64_t ns) {
  using namespace std::chrono;
  const sys_time<nanoseconds> instant{nanoseconds{ns}};
  const sys_days day = floor<days>(instant);
  return {year_month_day{day}, hh_mm_ss<nanoseconds>{instant - day}, weekday{day}};
}

std::string iso8601(std::int64_t ns) {
  const Civil c = civil(ns);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%09lldZ",
                static_cast<int>(c.date.year()), static_cast<unsigned>(c.date.month()),
                static_cast<unsigned>(c.date.day()), static_cast<int>(c.time.hours().count()),
                static_cast<int>(c.time.minutes().count()),
                static_cast<int>(c.time.seconds().count()),
                static_cast<long long>(c.time.subseconds().count()));
  return text;
}

std::string imf_fixdate(std::int64_t ns) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const Civil c = civil(ns);
  char text[64];
  std::snprintf(
      text, sizeof text, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDays[c.weekday.c_encoding()],
      static_cast<unsigned>(c.date.day()), kMonths[static_cast<unsigned>(c.date.month()) - 1],
      static_cast<int>(c.date.year()), static_cast<int>(c.time.hours().count()),
      static_cast<int>(c.time.minutes().count()), static_cast<int>(c.time.seconds().count()));
  return text;
}

void check_times(std::string_view text, std::string_view input) {
  if (const std::optional<std::int64_t> ns = sluice::parse_s3_time(text)) {
    if (sluice::parse_s3_time(iso8601(*ns)) != ns) fail("S3 time " + iso8601(*ns), input);
  }
  if (const std::optional<std::int64_t> ns = sluice::parse_http_date(text)) {
    if (*ns % 1'000'000'000 != 0) fail("an HTTP date with a fraction of a second", input);
    if (sluice::parse_http_date(imf_fixdate(*ns)) != ns)
      fail("HTTP date " + imf_fixdate(*ns), input);
  }
}

// ---- Body builders ----

// The length of the UTF-8 sequence `lead` begins, 0 when none may (RFC 3629).
std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;  // a continuation byte, or the lead of an overlong form
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return lead < 0xF5 ? 4 : 0;
}

// Decodes one code point at `at` and says whether it is one of XML 1.0's Char production.
bool next_xml_char(std::string_view text, std::size_t& at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const std::size_t length = sequence_length(byte(at));
  if (length == 0 || at + length > text.size()) return false;
  std::uint32_t code = length == 1 ? byte(at) : byte(at) & (0x7F >> length);
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return false;
    code = (code << 6) | (byte(at + i) & 0x3F);
  }
  static constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kSmallest[length] || code > 0x10FFFF) return false;  // overlong, beyond Unicode
  at += length;
  return code == 0x9 || code == 0xA || code == 0xD || (code >= 0x20 && code <= 0xD7FF) ||
         (code >= 0xE000 && code <= 0xFFFD) || code >= 0x10000;
}

bool sendable(std::string_view text) {
  std::size_t at = 0;
  while (at < text.size()) {
    if (!next_xml_char(text, at)) return false;
  }
  return !text.empty();
}

pugi::xml_node parse_back(pugi::xml_document& document, const std::string& body,
                          std::string_view root, std::string_view input) {
  const pugi::xml_parse_result parsed = document.load_buffer(
      body.data(), body.size(), pugi::parse_default | pugi::parse_ws_pcdata, pugi::encoding_utf8);
  const pugi::xml_node element = document.document_element();
  if (!parsed || std::string_view(element.name()) != root ||
      std::string_view(element.attribute("xmlns").value()) != kS3Namespace) {
    fail("the body is not a <" + std::string(root) + " xmlns=...> document: " + body, input);
  }
  return element;
}

void check_delete_body(const std::vector<std::string>& keys, bool valid, std::string_view input) {
  std::string body;
  try {
    body = sluice::delete_objects_body(keys);
  } catch (const std::invalid_argument&) {
    if (valid) fail("delete_objects_body refused sendable keys", input);
    return;
  }
  if (!valid) fail("delete_objects_body accepted a broken REQUIRES", input);
  pugi::xml_document document;
  const pugi::xml_node root = parse_back(document, body, "Delete", input);
  if (std::string_view(root.child_value("Quiet")) != "true") fail("no <Quiet>true</Quiet>", input);
  std::size_t index = 0;
  for (pugi::xml_node object : root.children("Object")) {
    if (index >= keys.size() || object.child("Key").child_value() != keys[index]) {
      fail("key " + std::to_string(index) + " came back as [" + object.child("Key").child_value() +
               "]",
           input);
    }
    ++index;
  }
  if (index != keys.size()) fail("keys were lost", input);
}

std::string quoted_etag(const std::string& etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') return etag;
  return '"' + etag + '"';
}

void check_complete_body(const std::vector<S3CompletedPart>& parts, bool valid,
                         std::string_view input) {
  std::string body;
  try {
    body = sluice::complete_multipart_upload_body(parts);
  } catch (const std::invalid_argument&) {
    if (valid) fail("complete_multipart_upload_body refused sendable ETags", input);
    return;
  }
  if (!valid) fail("complete_multipart_upload_body accepted a broken REQUIRES", input);
  pugi::xml_document document;
  const pugi::xml_node root = parse_back(document, body, "CompleteMultipartUpload", input);
  std::size_t index = 0;
  for (pugi::xml_node part : root.children("Part")) {
    if (index >= parts.size() ||
        std::string_view(part.child_value("PartNumber")) != std::to_string(parts[index].number) ||
        part.child_value("ETag") != quoted_etag(parts[index].etag)) {
      fail("part " + std::to_string(index) + " came back wrong", input);
    }
    ++index;
  }
  if (index != parts.size()) fail("parts were lost", input);
}

void check_builders(std::string_view input) {
  std::vector<std::string> keys;
  bool all_sendable = true;
  std::size_t start = 0;
  for (std::size_t cut = input.find('\xFF'); start <= input.size();
       cut = input.find('\xFF', start)) {
    if (cut == std::string_view::npos) cut = input.size();
    keys.emplace_back(input.substr(start, cut - start));
    all_sendable = all_sendable && sendable(keys.back());
    start = cut + 1;
  }
  check_delete_body(keys, all_sendable && keys.size() <= 1000, input);
  std::vector<S3CompletedPart> parts;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    parts.push_back({static_cast<int>(i) + 1, keys[i]});
  }
  check_complete_body(parts, all_sendable && parts.size() <= 10000, input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_parsers(input, input);
  for (std::string_view root : {"Error", "ListBucketResult", "InitiateMultipartUploadResult",
                                "CompleteMultipartUploadResult", "DeleteResult"}) {
    check_parsers(wrapped(root, input), input);
  }
  check_times(input, input);
  check_builders(input);
  return 0;
}
