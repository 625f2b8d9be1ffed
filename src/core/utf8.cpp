#include "core/utf8.hpp"

#include <emmintrin.h>

#include <cstdint>
#include <cstring>

namespace sluice {
namespace {

// Length of the valid sequence starting at s[0], or 0 when it is invalid; then `bad` is the
// length of its maximal invalid subpart (at least 1), the bytes one U+FFFD replaces.
std::size_t sequence_length(const std::uint8_t* s, std::size_t n, std::size_t& bad) {
  const std::uint8_t lead = s[0];
  std::size_t need = 0;
  std::uint8_t low = 0x80;
  std::uint8_t high = 0xbf;
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    need = 1;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    need = 2;
    if (lead == 0xe0) low = 0xa0;   // overlong
    if (lead == 0xed) high = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 3;
    if (lead == 0xf0) low = 0x90;   // overlong
    if (lead == 0xf4) high = 0x8f;  // above U+10FFFF
  } else {
    bad = 1;
    return 0;
  }
  for (std::size_t i = 1; i <= need; ++i) {
    const std::uint8_t lo = i == 1 ? low : 0x80;
    const std::uint8_t hi = i == 1 ? high : 0xbf;
    if (i >= n || s[i] < lo || s[i] > hi) {
      bad = i;
      return 0;
    }
  }
  return need + 1;
}

}  // namespace

bool is_ascii(std::string_view text) {
  const char* p = text.data();
  std::size_t n = text.size();
  __m128i any = _mm_setzero_si128();
  for (; n >= 64; p += 64, n -= 64) {
    __m128i a = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
    __m128i b = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48)));
    any = _mm_or_si128(any, _mm_or_si128(a, b));
    if (_mm_movemask_epi8(any) != 0) return false;
  }
  for (; n >= 16; p += 16, n -= 16) {
    any = _mm_or_si128(any, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  if (_mm_movemask_epi8(any) != 0) return false;
  for (; n > 0; ++p, --n) {
    if (static_cast<unsigned char>(*p) >= 0x80) return false;
  }
  return true;
}

std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  std::size_t bad = 0;
  return sequence_length(reinterpret_cast<const std::uint8_t*>(text.data()) + i, text.size() - i,
                         bad);
}

bool valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // Skip ASCII 64 bytes at a time, then 16, and straight to the first non-ASCII byte of a
    // block (text with an accent every few words would otherwise walk its ASCII byte by byte).
    if (i + 64 <= n) {
      const auto* block = reinterpret_cast<const __m128i*>(s + i);
      const __m128i any = _mm_or_si128(
          _mm_or_si128(_mm_loadu_si128(block), _mm_loadu_si128(block + 1)),
          _mm_or_si128(_mm_loadu_si128(block + 2), _mm_loadu_si128(block + 3)));
      if (_mm_movemask_epi8(any) == 0) {
        i += 64;
        continue;
      }
    }
    if (i + 16 <= n) {
      const auto high = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
      if (high == 0) {
        i += 16;
        continue;
      }
      i += static_cast<std::size_t>(__builtin_ctz(high));
    } else if (s[i] < 0x80) {
      ++i;
      continue;
    }
    std::size_t bad = 0;
    const std::size_t len = sequence_length(s + i, n - i, bad);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

char* write_repaired_utf8(std::string_view text, char* out) {
  const auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    std::size_t bad = 0;
    const std::size_t len = sequence_length(s + i, n - i, bad);
    if (len == 0) {
      std::memcpy(out, "\xef\xbf\xbd", 3);
      out += 3;
      i += bad;
      continue;
    }
    std::memcpy(out, s + i, len);
    out += len;
    i += len;
  }
  return out;
}

std::string shown_text(std::string_view text, std::size_t limit) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < text.size() && out.size() < limit;) {
    const std::size_t length = utf8_sequence_length(text, i);
    const auto byte = static_cast<unsigned char>(text[i]);
    if (length == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else if (byte < 0x20 || byte == 0x7F) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

}  // namespace sluice
