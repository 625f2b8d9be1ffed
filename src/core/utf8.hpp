#pragma once

// UTF-8 scalar functions: every format Sluice writes is declared UTF-8, so encoders, transforms,
// object keys and request values check and repair text with these one set of rules.

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice {

// True when every byte is < 0x80 (16 bytes per step).
bool is_ascii(std::string_view text);
// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view text);
// The length (1 to 4) of the valid sequence that starts at text[i], or 0 when none does (the
// same rules). REQUIRES: i < text.size().
std::size_t utf8_sequence_length(std::string_view text, std::size_t i);
// Writes `text` with each maximal invalid subpart (the WHATWG / Unicode "best practice" unit)
// replaced by U+FFFD (EF BF BD). REQUIRES: room for 3 * text.size() bytes at `out`.
// Returns the end of what was written.
char* write_repaired_utf8(std::string_view text, char* out);
// Client text as an error message shows it: about `limit` bytes, cut at a character boundary,
// each invalid UTF-8 byte as U+FFFD and each control character as \xHH. A JSON error body must
// be UTF-8, a NUL would end what() (a C string) and a line break would split a log line.
std::string shown_text(std::string_view text, std::size_t limit = 64);

}  // namespace sluice
