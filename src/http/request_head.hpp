#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct HttpRequest;

// Checks on a request head that Beast's parser lets through but RFC 9112 refuses; each answer
// is a 400 and the connection closes (a request whose framing is in doubt can hide another one:
// request smuggling). Beast-free, so they are unit-tested and fuzzed on their own.

// Where the head in `received` ends (just past its blank line), or npos while it is incomplete.
// Empty lines before the request line are skipped, as RFC 9112 2.2 allows.
std::size_t request_head_end(std::string_view received);

// Why the raw head (request line and fields) must be refused, or nothing: obs-fold (a field line
// that starts with a space or a tab, RFC 9112 5.2).
std::optional<std::string> raw_head_problem(std::string_view head);

// What the parsed head says about the framing.
struct RequestFraming {
  int version = 11;                  // 11 = HTTP/1.1, 10 = HTTP/1.0
  std::size_t host_fields = 0;       // how many Host fields
  std::size_t transfer_encodings = 0;  // how many Transfer-Encoding fields
  bool chunked = false;              // the parser found `chunked` as the final coding
};

// Why the framing must be refused, or nothing: a Transfer-Encoding whose final coding is not
// `chunked` (`xchunked`, `chunked, identity`: the body's end is unknown) or on HTTP/1.0; a
// missing Host on HTTP/1.1; more than one Host.
std::optional<std::string> framing_problem(const RequestFraming& framing);

// Splits and decodes request.target into request.segments and request.params (origin form, or
// the absolute form RFC 9112 3.2.2 requires servers to accept; '+' is a space in the query);
// false when it is neither.
bool parse_target(HttpRequest& request);

}  // namespace sluice
