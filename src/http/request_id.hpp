#pragma once

#include <string>
#include <string_view>

namespace sluice {

// The request id for a response: the client's X-Request-Id when it is a safe token
// ([A-Za-z0-9._-], 1..64 characters), otherwise 16 fresh random hex digits.
std::string make_request_id(std::string_view offered);

}  // namespace sluice
