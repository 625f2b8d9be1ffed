#include "http/content_disposition.hpp"

namespace sluice {
namespace {

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

}  // namespace

std::string content_disposition(std::string_view file_name) {
  std::string fallback;
  bool plain = true;
  for (char c : file_name) {
    bool safe = is_token_char(c) || c == '.' || c == ' ';
    fallback += safe ? c : '_';
    plain = plain && safe;
  }
  std::string header = "attachment; filename=\"" + fallback + "\"";
  if (plain) return header;
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (char c : file_name) {
    auto byte = static_cast<unsigned char>(c);
    if (is_token_char(c) || c == '.') {
      encoded += c;
    } else {
      encoded += '%';
      encoded += kHex[byte >> 4];
      encoded += kHex[byte & 0xF];
    }
  }
  return header + "; filename*=UTF-8''" + encoded;
}

}  // namespace sluice
