#pragma once

#include <cstdint>
#include <string>

namespace sluice {

// Big-endian writers for building PostgreSQL wire messages (binary COPY tuples, protocol
// messages) in unit tests, fuzz seeds and benchmarks. Not used by the server itself.
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
