#include "core/random_id.hpp"

#include <openssl/rand.h>

#include <stdexcept>
#include <vector>

namespace sluice {

std::string random_hex(std::size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::vector<unsigned char> random(bytes);
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed: the random generator is not seeded");
  }
  std::string text;
  text.reserve(2 * bytes);
  for (const unsigned char byte : random) {
    text += kHex[byte >> 4];
    text += kHex[byte & 0xF];
  }
  return text;
}

}  // namespace sluice
