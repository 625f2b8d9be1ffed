#pragma once

// Internal to the encoders: fields of a CSV record as PostgreSQL's COPY CSV (and RFC 4180)
// writes them.

#include <cstddef>
#include <cstring>
#include <string_view>

namespace sluice {

// End of the field that starts at `at` in `record` (the index of its ',' or record.size()).
inline std::size_t csv_field_end(std::string_view record, std::size_t at) {
  if (at < record.size() && record[at] == '"') {
    // Quoted: "" inside is an escaped quote; the field ends after the lone closing quote.
    std::size_t i = at + 1;
    while (i < record.size()) {
      if (record[i] != '"') {
        ++i;
      } else if (i + 1 < record.size() && record[i + 1] == '"') {
        i += 2;
      } else {
        return i + 1;
      }
    }
    return record.size();
  }
  const auto* comma =
      static_cast<const char*>(std::memchr(record.data() + at, ',', record.size() - at));
  return comma == nullptr ? record.size() : static_cast<std::size_t>(comma - record.data());
}

}  // namespace sluice
