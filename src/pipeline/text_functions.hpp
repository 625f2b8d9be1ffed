#pragma once

// The value functions of column transforms that work on text: each writes its result at a
// caller-provided pointer (room given by its *_max_size) and allocates nothing, so a transform
// can write straight into a RowBatch's arena.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice {

// Rounds a decimal number (`-12.345`, `1e3`, `.5`) to `places` fraction digits, half away
// from zero, exactly on the digits (no binary floating point): 9.995 → 10.00, -0.005 → -0.01,
// -0.004 → 0.00. Returns the bytes written, or npos when `text` is not a finite number or its
// exponent is beyond ±400 (NaN, Infinity and such are passed on unchanged by the caller).
std::size_t round_decimal(std::string_view text, int places, char* out);
std::size_t round_decimal_max_size(std::string_view text, int places);

// The number of code points in `text` (a byte that starts no valid sequence counts as one).
std::size_t count_code_points(std::string_view text);
// The first `count` code points of `text` (never cuts a UTF-8 sequence).
std::string_view first_code_points(std::string_view text, std::size_t count);

// `user@example.com` → `u***@example.com` (the first character of the local part kept);
// a value without '@' before its domain becomes `***`. Writes at most
// mask_email_max_size(text) bytes.
std::size_t mask_email(std::string_view text, char* out);
std::size_t mask_email_max_size(std::string_view text);

// Keeps the last `keep` characters and writes '*' for each one before them; a value of at most
// `keep` characters is masked whole (a short value must not come out in clear).
// Writes at most text.size() bytes.
std::size_t mask_keep_last(std::string_view text, std::size_t keep, char* out);

// Unicode simple case mapping (the C.UTF-8 locale's towupper/towlower), ASCII fast path;
// invalid UTF-8 bytes are copied as they are. Writes at most change_case_max_size() bytes.
std::size_t to_upper(std::string_view text, char* out);
std::size_t to_lower(std::string_view text, char* out);
inline std::size_t change_case_max_size(std::size_t bytes) { return bytes * 3 / 2 + 4; }
inline std::size_t change_case_max_size(std::string_view text) { return change_case_max_size(text.size()); }

}  // namespace sluice
