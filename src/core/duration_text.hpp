#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice {

// A lifetime as a request writes it in text: a whole number and one unit, "90s", "30m", "24h",
// "7d" (lowercase; no sign, spaces or fractions). Returns the seconds, or nothing when the text
// is not of that form or the seconds do not fit in 64 bits.
// (A number without unit is JSON's business: the caller reads it as seconds.) Thread-safe.
std::optional<std::int64_t> parse_duration_text(std::string_view text);

}  // namespace sluice
