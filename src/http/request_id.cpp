#include "http/request_id.hpp"

#include <algorithm>
#include <cstdint>
#include <random>

namespace sluice {

std::string make_request_id(std::string_view offered) {
  auto safe = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  };
  if (!offered.empty() && offered.size() <= 64 &&
      std::all_of(offered.begin(), offered.end(), safe)) {
    return std::string(offered);
  }
  thread_local std::mt19937_64 generator{std::random_device{}()};
  std::uint64_t value = generator();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (char& digit : id) {
    digit = kHex[value & 0xF];
    value >>= 4;
  }
  return id;
}

}  // namespace sluice
