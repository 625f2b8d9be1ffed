#pragma once

// For the encoders (and a decoder that writes CSV): copy a value while finding out, 16 bytes at
// a time (SSE2, the x86-64 baseline), whether it holds a byte that needs quoting or escaping.

#include <emmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::copy_scan {

inline std::uint64_t load64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline std::uint32_t load32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store64(char* p, std::uint64_t v) { std::memcpy(p, &v, sizeof v); }
inline void store32(char* p, std::uint32_t v) { std::memcpy(p, &v, sizeof v); }

// Copies `len` (> 0) bytes to `dst` and tells whether any lane of `special_lanes(vector)` is
// set for them. Short values use overlapping loads that fill a whole vector with the value's own
// bytes, so neither side is read or written outside its `len` bytes and one compare covers it.
template <typename SpecialLanes>
inline bool copy_and_scan(const char* src, std::size_t len, char* dst, SpecialLanes special_lanes) {
  __m128i v;
  if (len >= 16) {
    std::size_t i = 0;
    for (; i + 16 <= len; i += 16) {
      v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), v);
      if (_mm_movemask_epi8(special_lanes(v)) != 0) return true;
    }
    if (i == len) return false;
    v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + len - 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + len - 16), v);
  } else if (len >= 8) {
    std::uint64_t lo = load64(src), hi = load64(src + len - 8);
    store64(dst, lo);
    store64(dst + len - 8, hi);
    v = _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
  } else if (len >= 4) {
    std::uint32_t lo = load32(src), hi = load32(src + len - 4);
    store32(dst, lo);
    store32(dst + len - 4, hi);
    v = _mm_set_epi32(static_cast<int>(hi), static_cast<int>(lo), static_cast<int>(hi),
                      static_cast<int>(lo));
  } else {
    const auto a = static_cast<std::uint8_t>(src[0]);
    const auto b = static_cast<std::uint8_t>(src[len / 2]);
    const auto c = static_cast<std::uint8_t>(src[len - 1]);
    dst[0] = src[0];
    dst[len / 2] = src[len / 2];
    dst[len - 1] = src[len - 1];
    v = _mm_set1_epi32(static_cast<int>(a | b << 8 | c << 16 | std::uint32_t{c} << 24));
  }
  return _mm_movemask_epi8(special_lanes(v)) != 0;
}

}  // namespace sluice::copy_scan
