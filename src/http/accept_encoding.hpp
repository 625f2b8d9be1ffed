#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "http/handler.hpp"

namespace sluice {

// Content negotiation by Accept-Encoding (RFC 9110 12.5.3).
//
// `fields` are the values of every Accept-Encoding field of the request (none: the header is
// absent); `offered` the codings the server can apply, most preferred first. Returns the coding
// to answer with: an element of `offered`, "identity" (no coding), or nullopt when the client
// accepts none of them and refuses identity as well (`identity;q=0`, or `*;q=0` without an
// identity entry) — a 406.
//
// - No Accept-Encoding field: identity. (Any coding would be allowed, but clients that send
//   no header — curl without --compressed, scripts — expect the plain bytes.)
// - A coding's weight is its own entry's q, else the `*` entry's, else 0; `x-gzip` is gzip.
//   Names are case-insensitive. An entry with a malformed q is ignored.
// - identity's weight is its own entry's q, else the `*` entry's, else the least weight above
//   0: a client that names a coding at any weight gets it, unless it prefers identity by name.
// - The highest weight wins; at equal weight the earlier element of `offered` wins, and a
//   coding wins over identity (the client asked for it by name or by `*`).
std::optional<std::string_view> choose_content_coding(std::span<const std::string_view> fields,
                                                      std::span<const std::string_view> offered);

// The same over a request's Accept-Encoding fields.
std::optional<std::string_view> choose_content_coding(const HttpRequest& request,
                                                      std::span<const std::string_view> offered);

}  // namespace sluice
