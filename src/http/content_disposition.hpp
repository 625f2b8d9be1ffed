#pragma once

#include <string>
#include <string_view>

namespace sluice {

// `Content-Disposition: attachment` for a download named `file_name` (RFC 6266): a quoted
// ASCII fallback with anything unsafe replaced by '_', plus an RFC 5987 `filename*` (UTF-8,
// percent-encoded) when the name is not plain ASCII. Quotes, CR and LF never reach the header.
std::string content_disposition(std::string_view file_name);

}  // namespace sluice
