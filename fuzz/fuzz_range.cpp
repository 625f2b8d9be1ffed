// Fuzzes decide_range (http/byte_range.hpp) against a reference written from its
// contract and RFC 9110 §14, on any Range / If-Range text and body length.
// Input: "LENGTH\nRANGE\nIF-RANGE" (LENGTH in decimal, saturating; the strong ETag is "tag").
// Invariants:
// - kFull and kUnsatisfiable carry the whole body [0, length);
// - kPartial: first ≤ last, i.e. start < end ≤ length;
// - the outcome and window equal the reference's: kFull for no Range, an If-Range that is not
//   exactly the ETag, another unit, several ranges or malformed syntax (a last position below
//   the first one included, however many digits they have); kUnsatisfiable only for a valid
//   range whose first byte is at or past the end (or a suffix of 0 bytes, or any suffix of an
//   empty body); kPartial otherwise, clamped to the body;
// - the answer does not depend on the case of the unit, nor on spaces/tabs around the header.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "http/byte_range.hpp"

namespace {

using sluice::ByteWindow;
using sluice::RangeDecision;
using Outcome = RangeDecision::Outcome;

constexpr std::string_view kEtag = "\"tag\"";

[[noreturn]] void fail(const std::string& what, std::string_view range, std::string_view if_range,
                       std::uint64_t length) {
  std::cerr << "invariant broken: " << what << "\nRange: [" << range << "] If-Range: [" << if_range
            << "] length: " << length << '\n';
  std::abort();
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// A position as its exact decimal digits, leading zeros removed ("0" for zero); nullopt when
// `text` is not 1*DIGIT.
std::optional<std::string> digits(std::string_view text) {
  if (text.empty()) return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  const std::size_t first = text.find_first_not_of('0');
  return first == std::string_view::npos ? std::string("0") : std::string(text.substr(first));
}

// Exact comparison of two digit strings without leading zeros.
int compare(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

std::string decimal(std::uint64_t value) { return std::to_string(value); }

// The value when it fits below `limit` (exclusive), else nullopt.
std::optional<std::uint64_t> below(const std::string& number, std::uint64_t limit) {
  if (compare(number, decimal(limit)) >= 0) return std::nullopt;
  return std::stoull(number);
}

RangeDecision reference(std::string_view range, std::string_view if_range, std::uint64_t length) {
  const RangeDecision full{Outcome::kFull, {0, length}};
  const RangeDecision unsatisfiable{Outcome::kUnsatisfiable, {0, length}};
  range = trim(range);
  if (range.empty()) return full;
  if_range = trim(if_range);
  if (!if_range.empty() && if_range != kEtag) return full;
  const std::size_t equals = range.find('=');
  if (equals == std::string_view::npos) return full;
  std::string unit(range.substr(0, equals));
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit != "bytes") return full;
  const std::string_view spec = trim(range.substr(equals + 1));
  if (spec.find(',') != std::string_view::npos) return full;  // several ranges (or an empty one)
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return full;
  const std::string_view first_text = trim(spec.substr(0, dash));
  const std::string_view last_text = trim(spec.substr(dash + 1));
  if (first_text.empty()) {
    const auto suffix = digits(last_text);
    if (!suffix) return full;
    if (*suffix == "0" || length == 0) return unsatisfiable;
    const std::optional<std::uint64_t> n = below(*suffix, length);
    const std::uint64_t take = n ? *n : length;
    return {Outcome::kPartial, {length - take, length}};
  }
  const auto first = digits(first_text);
  if (!first) return full;
  std::optional<std::string> last;
  if (!last_text.empty()) {
    last = digits(last_text);
    if (!last || compare(*last, *first) < 0) return full;  // invalid: ignored
  }
  const std::optional<std::uint64_t> start = below(*first, length);
  if (!start) return unsatisfiable;
  std::uint64_t end = length;
  if (last) {
    if (const auto last_value = below(*last, length)) end = *last_value + 1;
  }
  return {Outcome::kPartial, {*start, end}};
}

std::uint64_t parse_length(std::string_view text) {
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') continue;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
      return std::numeric_limits<std::uint64_t>::max();
    }
    value = value * 10 + digit;
  }
  return value;
}

void check_one(std::string_view range, std::string_view if_range, std::uint64_t length) {
  const RangeDecision got = sluice::decide_range(range, if_range, kEtag, length);
  const ByteWindow& window = got.window;
  switch (got.outcome) {
    case Outcome::kFull:
    case Outcome::kUnsatisfiable:
      if (window.start != 0 || window.end != length) {
        fail("a full or 416 answer without the whole body as its window", range, if_range, length);
      }
      break;
    case Outcome::kPartial:
      if (!(window.start < window.end && window.end <= length)) {
        fail("a 206 window outside [0, length) or empty: [" + decimal(window.start) + ", " +
                 decimal(window.end) + ")",
             range, if_range, length);
      }
      break;
  }
  const RangeDecision expected = reference(range, if_range, length);
  auto name = [](Outcome outcome) {
    return outcome == Outcome::kFull ? "full (200)"
                                     : outcome == Outcome::kPartial ? "partial (206)"
                                                                    : "unsatisfiable (416)";
  };
  if (got.outcome != expected.outcome || got.window.start != expected.window.start ||
      got.window.end != expected.window.end) {
    fail(std::string("got ") + name(got.outcome) + " [" + decimal(window.start) + ", " +
             decimal(window.end) + "), expected " + name(expected.outcome) + " [" +
             decimal(expected.window.start) + ", " + decimal(expected.window.end) + ")",
         range, if_range, length);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t first_newline = input.find('\n');
  const std::uint64_t length = parse_length(input.substr(0, first_newline));
  std::string_view rest =
      first_newline == std::string_view::npos ? std::string_view() : input.substr(first_newline + 1);
  const std::size_t second_newline = rest.find('\n');
  const std::string_view range = rest.substr(0, second_newline);
  const std::string_view if_range =
      second_newline == std::string_view::npos ? std::string_view() : rest.substr(second_newline + 1);

  check_one(range, if_range, length);
  // The same range against bodies around it: empty, one byte, and the extremes.
  for (std::uint64_t other : {std::uint64_t{0}, std::uint64_t{1}, length + 1, length - 1,
                              std::numeric_limits<std::uint64_t>::max()}) {
    check_one(range, if_range, other);
  }
  // The unit's case and surrounding whitespace do not matter.
  std::string upper(range);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string padded = " \t" + std::string(range) + "\t ";
  const RangeDecision plain = sluice::decide_range(range, if_range, kEtag, length);
  for (const std::string& variant : {upper, padded}) {
    const RangeDecision other = sluice::decide_range(variant, if_range, kEtag, length);
    if (other.outcome != plain.outcome || other.window.start != plain.window.start ||
        other.window.end != plain.window.end) {
      fail("the answer changed with the unit's case or surrounding spaces: [" + variant + "]",
           range, if_range, length);
    }
  }
  return 0;
}
