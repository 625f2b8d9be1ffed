#pragma once

// UTF-8 validation and repair for the encoders: every format we write is declared UTF-8, so
// bytes that are not (a Latin-1 column, a truncated multi-byte sequence) are either replaced
// with U+FFFD or refused, never passed on to break a client's decoder.

#include <cstddef>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "sources/row_batch.hpp"

namespace sluice {

// Thrown by a UTF-8-checked encoder in InvalidUtf8::kFail mode.
class Utf8Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

// Describes the first cell of `batch` that is not valid UTF-8 ("column 'c', row 3"), skipping
// kBytes columns when `keep_bytes`; nullopt when there is none. For checks before any byte of
// the response is sent.
std::optional<std::string> find_invalid_utf8(const RowBatch& batch, std::span<const Column> columns,
                                             bool keep_bytes);

}  // namespace sluice
