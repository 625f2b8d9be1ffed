#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace sluice {

// The big-endian integers of PostgreSQL's wire protocol: read from message bytes (the binary
// COPY decoder, the COPY stream parser) and written into messages (the COPY's Query message;
// tests, fuzz seeds and benchmarks build COPY data with them too).

// The integer at `bytes`. REQUIRES: sizeof(T) readable bytes.
template <typename T>
T load_big_endian(const char* bytes) {
  std::make_unsigned_t<T> value = 0;
  std::memcpy(&value, bytes, sizeof value);
  if constexpr (std::endian::native == std::endian::little) {
    if constexpr (sizeof(T) == 2) value = __builtin_bswap16(value);
    if constexpr (sizeof(T) == 4) value = __builtin_bswap32(value);
    if constexpr (sizeof(T) == 8) value = __builtin_bswap64(value);
  }
  return static_cast<T>(value);
}

inline void put_be16(std::string& out, int value) {
  out += static_cast<char>((value >> 8) & 0xFF);
  out += static_cast<char>(value & 0xFF);
}
inline void put_be32(std::string& out, std::int64_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xFF);
}
inline void put_be64(std::string& out, std::int64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xFF);
}

}  // namespace sluice
