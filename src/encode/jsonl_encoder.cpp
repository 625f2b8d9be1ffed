// JSON Lines: one object per row, `{"col":value,...}\n`, keys in column order. Values are
// rendered by the column's logical type, and only when the text really is that JSON type:
// anything that is not a valid JSON number, a known boolean word or valid JSON becomes a JSON
// string, so the output is always valid JSON whatever the source hands us.
// The same encoder in array mode writes the JSON array format: `[`, then each object on its own
// line with `,` between rows, then `]` (`[]` when there are none).

#include <emmintrin.h>

#include <boost/json.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/sha256.hpp"
#include "core/copy_scan.hpp"
#include "encode/encoder.hpp"

namespace sluice {
namespace {

// 16-byte stores may run this far past the bytes they keep.
constexpr std::size_t kSlack = 16;
// Room a cell needs beyond its value and key on the fast path: quotes, `null`, `}\n`, slack.
constexpr std::size_t kCellExtra = 16 + kSlack;
// Long values are escaped in pieces, so a huge value reserves about its own size rather than
// the 6x worst case (every byte as \u00XX) up front.
constexpr std::size_t kSegment = 64 * 1024;
// Embedded JSON nested deeper than this is emitted as a string.
constexpr int kMaxJsonDepth = 128;

using copy_scan::load32;
using copy_scan::load64;
using copy_scan::store32;
using copy_scan::store64;

// Lanes holding a byte that must be escaped inside a JSON string: '"', '\\' or a control byte.
__m128i special_lanes(__m128i v) {
  __m128i m =
      _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
  // Unsigned v <= 0x1f: saturating subtraction leaves zero exactly there.
  __m128i control = _mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(0x1f)), _mm_setzero_si128());
  return _mm_or_si128(m, control);
}

// Copies `len` (> 0) bytes to `dst` and tells whether any of them needs escaping.
bool copy_and_scan(const char* src, std::size_t len, char* dst) {
  return copy_scan::copy_and_scan(src, len, dst, special_lanes);
}

// Like copy_and_scan without the scan (numbers are validated separately).
void copy_bytes(const char* src, std::size_t len, char* dst) {
  if (len >= 16) {
    std::memcpy(dst, src, len);
  } else if (len >= 8) {
    std::uint64_t lo = load64(src), hi = load64(src + len - 8);
    store64(dst, lo);
    store64(dst + len - 8, hi);
  } else if (len >= 4) {
    std::uint32_t lo = load32(src), hi = load32(src + len - 4);
    store32(dst, lo);
    store32(dst + len - 4, hi);
  } else if (len > 0) {
    dst[0] = src[0];
    dst[len / 2] = src[len / 2];
    dst[len - 1] = src[len - 1];
  }
}

// Short escapes for the control bytes that have one; 0 means \u00XX.
constexpr char kShortEscape[32] = {0, 0, 0, 0, 0, 0, 0, 0, 'b', 't', 'n', 0, 'f', 'r', 0, 0,
                                   0, 0, 0, 0, 0, 0, 0, 0, 0,   0,   0,   0, 0,   0,   0, 0};

char* escape_byte(std::uint8_t c, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  p[0] = '\\';
  if (c == '"' || c == '\\' || (c < 0x20 && kShortEscape[c] != 0)) {
    p[1] = c < 0x20 ? kShortEscape[c] : static_cast<char>(c);
    return p + 2;
  }
  std::memcpy(p + 1, "u00", 3);
  p[4] = kHex[c >> 4];
  p[5] = kHex[c & 0xf];
  return p + 6;
}

bool needs_escape(std::uint8_t c) {
  return c < 0x20 || c == '"' || c == '\\';
}

// Writes `len` bytes escaped for the inside of a JSON string. Bytes >= 0x80 pass through, so
// UTF-8 stays UTF-8 (and invalid UTF-8 stays as invalid as it came).
// REQUIRES: room for 6 * len + kSlack bytes.
char* escape_json(const char* src, std::size_t len, char* p) {
  std::size_t i = 0;
  while (i + 16 <= len) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
    auto mask = static_cast<unsigned>(_mm_movemask_epi8(special_lanes(v)));
    if (mask == 0) {
      p += 16;
      i += 16;
      continue;
    }
    unsigned n = static_cast<unsigned>(__builtin_ctz(mask));
    p = escape_byte(static_cast<std::uint8_t>(src[i + n]), p + n);
    i += n + 1;
  }
  for (; i < len; ++i) {
    const auto c = static_cast<std::uint8_t>(src[i]);
    if (needs_escape(c)) {
      p = escape_byte(c, p);
    } else {
      *p++ = static_cast<char>(c);
    }
  }
  return p;
}

// RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. Rejects what databases print
// but JSON forbids: "+1", "01", ".5", "5.", "NaN", "Infinity", "1e"; and exponents beyond
// 9 digits (found by fuzz_encoders: common parsers fail on them).
bool is_json_number(std::string_view s) {
  auto digit = [&](std::size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; };
  std::size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (i < s.size() && s[i] == '0') ++i;
    // An exponent of more than 9 significant digits is valid JSON, but parsers that read numbers
    // as doubles (Boost.JSON among them) reject it as an overflow: such a value is a string.
    const std::size_t exponent_start = i;
    while (digit(i)) ++i;
    if (i - exponent_start > 9) return false;
  }
  return i == s.size();
}

// Strict RFC 8259 (no comments, trailing commas, NaN or invalid UTF-8), via Boost.JSON. Only
// kJson cells get here, which are rare, so the parse's allocations do not matter.
bool is_valid_json(std::string_view text) {
  boost::json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  boost::json::monotonic_resource resource;
  boost::system::error_code ec;
  boost::json::parse(text, ec, &resource, options);
  return !ec;
}

bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A raw write position in a ByteBuffer's reserved tail. The hot loop copies `pos` and `end`
// into locals (stores through char* could alias these fields and force reloads).
struct Cursor {
  ByteBuffer* buffer;
  char* base;  // where the uncommitted bytes start
  char* pos;
  char* end;  // end of the buffer's capacity
};

Cursor open_cursor(ByteBuffer& out, std::size_t room) {
  char* base = out.tail(room);
  return Cursor{&out, base, base, out.data() + out.capacity()};
}

[[gnu::noinline]] void grow(Cursor& c, std::size_t room) {
  c.buffer->commit(static_cast<std::size_t>(c.pos - c.base));
  c.base = c.pos = c.buffer->tail(room);
  c.end = c.buffer->data() + c.buffer->capacity();
}

void ensure_room(Cursor& c, std::size_t room) {
  if (static_cast<std::size_t>(c.end - c.pos) < room) grow(c, room);
}

void close_cursor(Cursor& c) {
  c.buffer->commit(static_cast<std::size_t>(c.pos - c.base));
  c.base = c.pos;
}

// The slow paths below write one value at c.pos and leave kCellExtra bytes of room after it.

[[gnu::noinline]] void write_escaped_string(Cursor& c, std::string_view value) {
  ensure_room(c, 1);
  *c.pos++ = '"';
  for (std::size_t at = 0; at < value.size(); at += kSegment) {
    const std::size_t n = value.size() - at < kSegment ? value.size() - at : kSegment;
    ensure_room(c, 6 * n + kSlack);
    c.pos = escape_json(value.data() + at, n, c.pos);
  }
  ensure_room(c, kCellExtra + 1);
  *c.pos++ = '"';
}

// Bytes columns become a JSON string holding standard base64 (RFC 4648, with '=' padding):
// JSON has no binary type and base64 is what clients decode without guessing.
[[gnu::noinline]] void write_base64(Cursor& c, std::string_view value) {
  constexpr std::size_t kBase64Segment = 3 * 16 * 1024;  // whole 3-byte groups per piece
  ensure_room(c, 1);
  *c.pos++ = '"';
  for (std::size_t at = 0; at < value.size(); at += kBase64Segment) {
    const std::string_view piece = value.substr(at, kBase64Segment);
    ensure_room(c, base64_size(piece.size()) + 1);  // the encoder also writes a NUL
    c.pos += base64_encode(piece, c.pos);
  }
  ensure_room(c, kCellExtra + 1);
  *c.pos++ = '"';
}

// Valid JSON is embedded as it came, trimmed, with CR and LF turned into spaces: in valid JSON
// they can only be whitespace between tokens, and a raw newline would split the record.
[[gnu::noinline]] void write_json(Cursor& c, std::string_view value) {
  if (!is_valid_json(value)) {
    write_escaped_string(c, value);
    return;
  }
  while (is_json_space(value.front())) value.remove_prefix(1);
  while (is_json_space(value.back())) value.remove_suffix(1);
  ensure_room(c, value.size() + kCellExtra);
  char* p = c.pos;
  for (char ch : value) *p++ = ch == '\n' || ch == '\r' ? ' ' : ch;
  c.pos = p;
}

// Per column: where its `{"name":` / `,"name":` prefix sits in keys_, and how to render values.
struct ColumnPlan {
  std::size_t key_offset;
  std::size_t key_size;
  LogicalType type;
};

class JsonlEncoder final : public Encoder {
 public:
  explicit JsonlEncoder(bool array) : array_(array) {}

  void begin(std::span<const Column> columns, ByteBuffer& out) override {
    if (array_) out.push_back('[');
    rows_written_ = 0;
    plans_.clear();
    keys_.clear();
    max_key_size_ = 0;
    std::string escaped;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const std::string& name = columns[i].name;
      escaped.resize(6 * name.size() + kSlack + 4);
      char* p = escaped.data();
      *p++ = i == 0 ? '{' : ',';
      *p++ = '"';
      p = escape_json(name.data(), name.size(), p);
      *p++ = '"';
      *p++ = ':';
      const auto size = static_cast<std::size_t>(p - escaped.data());
      // Each prefix is padded to whole 16-byte chunks so the hot loop copies it with vector
      // moves and never reads past the string.
      plans_.push_back(ColumnPlan{keys_.size(), size, columns[i].type});
      keys_.append(escaped.data(), size);
      keys_.append((16 - size % 16) % 16, '\0');
      if (size > max_key_size_) max_key_size_ = size;
    }
  }

  void encode(const RowBatch& batch, ByteBuffer& out) override {
    const std::size_t rows = batch.rows();
    const std::size_t columns = batch.columns();
    if (rows == 0) return;
    // Indexing plans_ with a wider batch would read past it: fail the stream instead.
    if (columns != plans_.size()) throw std::logic_error("JsonlEncoder: batch columns differ");
    const std::size_t cell_room = max_key_size_ + kCellExtra;
    // Enough for the usual batch (little escaping) in one reservation; the per-cell check
    // below grows the buffer when a value needs more, so correctness never rests on this guess.
    Cursor c = open_cursor(out, batch.arena_bytes() + batch.arena_bytes() / 8 +
                                    rows * (keys_.size() + 2 * columns + 2) + kSlack);
    char* p = c.pos;
    char* end = c.end;
    const ColumnPlan* plans = plans_.data();
    const char* keys = keys_.data();
    // Hands the cursor to a slow path and takes it back (it may have grown the buffer).
    auto slow_path = [&](void (*write)(Cursor&, std::string_view), std::string_view value) {
      c.pos = p;
      write(c, value);
      p = c.pos;
      end = c.end;
    };
    for (std::size_t row = 0; row < rows; ++row) {
      // Array mode: `\n` before the first row, `,\n` before the others. Room for it is in the
      // reservation's per-row bytes and what the last cell's room check left.
      if (array_ && rows_written_ + row == 0) {
        *p++ = '\n';
      } else if (array_) {
        p[0] = ',';
        p[1] = '\n';
        p += 2;
      }
      for (std::size_t col = 0; col < columns; ++col) {
        const Cell cell = batch.cell(row, col);
        const std::size_t len = cell.value.size();
        if (static_cast<std::size_t>(end - p) < len + cell_room) {
          c.pos = p;
          grow(c, len + cell_room);
          p = c.pos;
          end = c.end;
        }
        const ColumnPlan& plan = plans[col];
        for (std::size_t k = 0; k < plan.key_size; k += 16) {
          _mm_storeu_si128(
              reinterpret_cast<__m128i*>(p + k),
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(keys + plan.key_offset + k)));
        }
        p += plan.key_size;
        if (cell.null) {
          std::memcpy(p, "null", 4);
          p += 4;
          continue;
        }
        if (!cell.as_text) {
          switch (plan.type) {
            case LogicalType::kInt:
            case LogicalType::kDecimal:
            case LogicalType::kFloat:
              if (is_json_number(cell.value)) {
                copy_bytes(cell.value.data(), len, p);
                p += len;
                continue;
              }
              break;
            case LogicalType::kBool: {
              const std::optional<bool> b = parse_bool(cell.value);
              if (b) {
                std::memcpy(p, *b ? "true" : "false", 5);
                p += *b ? 4 : 5;
                continue;
              }
              break;
            }
            case LogicalType::kJson:
              slow_path(write_json, cell.value);
              continue;
            case LogicalType::kBytes:
              slow_path(write_base64, cell.value);
              continue;
            case LogicalType::kText:
            case LogicalType::kTimestamp:
            case LogicalType::kDate:
              break;
          }
        }
        // A JSON string: the common case copies the value once and finds nothing to escape.
        *p = '"';
        if (len == 0) {
          p[1] = '"';
          p += 2;
        } else if (!copy_and_scan(cell.value.data(), len, p + 1)) {
          p[len + 1] = '"';
          p += len + 2;
        } else {
          slow_path(write_escaped_string, cell.value);
        }
      }
      p[0] = '}';
      p[1] = '\n';
      p += array_ ? 1 : 2;
    }
    rows_written_ += rows;
    c.pos = p;
    close_cursor(c);
  }

  void finish(ByteBuffer& out) override {
    if (array_) out.append(rows_written_ == 0 ? "]\n" : "\n]\n");
  }

 private:
  bool array_;
  std::uint64_t rows_written_ = 0;
  std::vector<ColumnPlan> plans_;
  std::string keys_;
  std::size_t max_key_size_ = 0;
};

}  // namespace

std::unique_ptr<Encoder> make_jsonl_encoder() {
  return std::make_unique<JsonlEncoder>(false);
}

std::unique_ptr<Encoder> make_json_array_encoder() {
  return std::make_unique<JsonlEncoder>(true);
}

}  // namespace sluice
