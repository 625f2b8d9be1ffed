#pragma once

#include <string_view>

namespace sluice {

// Conditional requests on a representation whose entity tag is `etag` (RFC 9110 13.1, 13.2).
// Beast-free, thread-safe.

// Whether `header` (an If-Match or If-None-Match value: "*" or a comma-separated list of entity
// tags) matches `etag`. Strong comparison (If-Match): both tags strong and their opaque parts
// equal. Weak comparison (If-None-Match): the opaque parts equal, "W/" ignored. "*" matches any
// current representation. An empty or malformed member matches nothing.
enum class TagComparison { kStrong, kWeak };
bool etag_matches(std::string_view header, std::string_view etag, TagComparison comparison);

// What the preconditions of a GET or HEAD decide, in RFC 9110 13.2.2's order: If-Match first
// (412 when it does not match), then If-None-Match (304 when it matches). A Range with If-Range
// is decided after kProceed (http/byte_range.hpp). Empty headers are absent.
enum class Precondition {
  kProceed,      // send the representation (or the range asked for)
  kNotModified,  // 304 with the ETag and no body
  kFailed,       // 412 precondition_failed
};
Precondition evaluate_preconditions(std::string_view if_match, std::string_view if_none_match,
                                    std::string_view etag);

}  // namespace sluice
