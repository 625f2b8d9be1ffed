#include "sources/pg_text_decoder.hpp"

#include <cstring>

#include "sources/source_error.hpp"

namespace sluice {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Unescapes `field` into `out` (room for field.size() bytes); returns the bytes written.
std::size_t unescape(std::string_view field, char* out) {
  char* start = out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    char c = field[i];
    if (c != '\\' || i + 1 == field.size()) {
      *out++ = c;
      continue;
    }
    char next = field[++i];
    switch (next) {
      case 'b': *out++ = '\b'; break;
      case 'f': *out++ = '\f'; break;
      case 'n': *out++ = '\n'; break;
      case 'r': *out++ = '\r'; break;
      case 't': *out++ = '\t'; break;
      case 'v': *out++ = '\v'; break;
      case 'x': {
        int value = 0;
        std::size_t digits = 0;
        while (digits < 2 && i + 1 < field.size() && hex_value(field[i + 1]) >= 0) {
          value = value * 16 + hex_value(field[++i]);
          ++digits;
        }
        *out++ = digits == 0 ? 'x' : static_cast<char>(value);
        break;
      }
      default:
        if (next >= '0' && next <= '7') {
          int value = next - '0';
          for (int k = 0; k < 2 && i + 1 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '7'; ++k) {
            value = value * 8 + (field[++i] - '0');
          }
          *out++ = static_cast<char>(value);
        } else {
          *out++ = next;  // \\ and any other escaped character stand for themselves
        }
    }
  }
  return static_cast<std::size_t>(out - start);
}

void add_field(std::string_view field, RowBatch& batch) {
  if (field == "\\N") {
    batch.add_null();
    return;
  }
  if (std::memchr(field.data(), '\\', field.size()) == nullptr) {
    batch.add_value(field);
    return;
  }
  char* out = batch.reserve_value(field.size());
  batch.commit_value(unescape(field, out));
}

}  // namespace

void decode_copy_text_row(std::string_view row, std::size_t columns, RowBatch& batch) {
  if (!row.empty() && row.back() == '\n') row.remove_suffix(1);
  std::size_t added = 0;
  for (;;) {
    std::size_t tab = row.find('\t');
    if (++added > columns) break;
    add_field(row.substr(0, tab), batch);
    if (tab == std::string_view::npos) break;
    row.remove_prefix(tab + 1);
  }
  if (added != columns) {
    throw SourceError("COPY row has " + std::to_string(added) + " fields, expected " +
                      std::to_string(columns));
  }
}

}  // namespace sluice
