#pragma once

// Writing one CSV text field (RFC 4180, as the CSV encoder and PostgreSQL's COPY CSV write it):
// the bytes as they are, or quoted with every '"' doubled when they hold the delimiter, '"', CR
// or LF; and which first bytes the formula guard marks. Shared by the CSV encoder and the PostgreSQL binary decoder, which renders whole CSV
// records itself when the download is CSV.

#include <emmintrin.h>

#include <cstddef>

#include "core/copy_scan.hpp"

namespace sluice::csv_quote {

// 16-byte stores in these functions may run this far past the bytes they keep.
constexpr std::size_t kSlack = 16;
// Text that needs quoting is quoted this many bytes at a time, so a huge value takes room for
// about its own size rather than the 2x worst case up front.
constexpr std::size_t kQuotePiece = 64 * 1024;

// First bytes that make a spreadsheet evaluate a cell (the formula guard puts a `'` before).
constexpr bool is_formula_start(char c) {
  return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

inline __m128i needs_quote_lanes(__m128i v, __m128i delimiter) {
  __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, delimiter), _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
  m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
  return _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\r')));
}

// Copies `len` (> 0) bytes to `dst` and tells whether any of them needs quoting.
inline bool copy_and_scan(const char* src, std::size_t len, char* dst, __m128i delimiter) {
  return copy_scan::copy_and_scan(
      src, len, dst, [delimiter](__m128i v) { return needs_quote_lanes(v, delimiter); });
}

// Copies the `len` (1 to 16) bytes at `src` as one 16-byte load and store, and tells whether
// any of them needs quoting. REQUIRES: 16 readable bytes at `src`, room for 16 at `dst`.
inline bool copy16_and_scan(const char* src, std::size_t len, char* dst, __m128i delimiter) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v);
  const unsigned kept = (1u << len) - 1;
  return (static_cast<unsigned>(_mm_movemask_epi8(needs_quote_lanes(v, delimiter))) & kept) != 0;
}

// Writes `len` bytes with every '"' doubled; returns the end. REQUIRES: room for
// 2 * len + kSlack bytes.
inline char* double_quotes(const char* src, std::size_t len, char* p) {
  const __m128i quote = _mm_set1_epi8('"');
  std::size_t i = 0;
  while (i + 16 <= len) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)));
    if (mask == 0) {
      p += 16;
      i += 16;
      continue;
    }
    // The stored chunk already holds the quote at p[n]; add its twin and go on after it.
    unsigned n = static_cast<unsigned>(__builtin_ctz(mask));
    p[n + 1] = '"';
    p += n + 2;
    i += n + 1;
  }
  for (; i < len; ++i) {
    *p++ = src[i];
    if (src[i] == '"') *p++ = '"';
  }
  return p;
}

}  // namespace sluice::csv_quote
