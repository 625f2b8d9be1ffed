#pragma once

#include <string_view>

namespace sluice {

// A header field value, or one element of a list in it, without the optional whitespace (spaces
// and tabs, RFC 9110 5.6.3) around it.
inline std::string_view trim_ows(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

}  // namespace sluice
