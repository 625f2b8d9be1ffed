#pragma once

#include <optional>
#include <string_view>

#include "core/config.hpp"
#include "sources/source.hpp"

namespace sluice {

// Parses one filter value as `type` into the value bound to the query, or nullopt when the
// text is not a valid value of that type. Strict: the whole text must be the value.
//   int: decimal int64; float: finite decimal number; decimal: -?digits[.digits] (bound as
//   text, for sources to cast exactly);
//   bool: true/false/1/0; date: YYYY-MM-DD; timestamp: YYYY-MM-DD[(T| )HH:MM[:SS[.f+]]][Z|±HH:MM];
//   text: UTF-8 without NUL, up to 4096 bytes.
std::optional<BoundValue> parse_filter_value(FilterType type, std::string_view text);

// A human description of the accepted syntax, for error messages.
std::string_view filter_value_syntax(FilterType type);

}  // namespace sluice
