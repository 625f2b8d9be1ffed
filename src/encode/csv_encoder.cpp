// RFC 4180 CSV: a delimiter (',' by default), CRLF (or LF) after every record (header included),
// a field quoted only when it holds the delimiter, '"', CR or LF, or is empty. NULL is an empty
// unquoted field and "" is `""`, so the two stay distinguishable. Bytes are copied verbatim.
// The formula guard: a text cell starting with = + - @ TAB or CR would be evaluated by a
// spreadsheet (CSV injection), so it gets a leading `'`; numeric columns keep their '-'.

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/csv_quote.hpp"
#include "encode/encoder.hpp"

namespace sluice {
namespace {

using csv_quote::copy16_and_scan;
using csv_quote::copy_and_scan;
using csv_quote::double_quotes;
using csv_quote::is_formula_start;
using csv_quote::kQuotePiece;
using csv_quote::kSlack;

// Room a non-empty field needs beyond its bytes on the fast path: `,` or CRLF plus the slack.
constexpr std::size_t kFieldExtra = 4 + kSlack;

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

// The slow path: writes `value` (which needs quoting) at c.pos as a quoted field, after a `'`
// when `guarded`, leaving room for the separator after it.
[[gnu::noinline]] void write_quoted(Cursor& c, std::string_view value, bool guarded) {
  ensure_room(c, 2);
  *c.pos++ = '"';
  if (guarded) *c.pos++ = '\'';
  for (std::size_t at = 0; at < value.size(); at += kQuotePiece) {
    std::size_t n = value.size() - at < kQuotePiece ? value.size() - at : kQuotePiece;
    ensure_room(c, 2 * n + kSlack);
    c.pos = double_quotes(value.data() + at, n, c.pos);
  }
  ensure_room(c, kFieldExtra + 1);
  *c.pos++ = '"';
}

// Writes a guarded field: `'` then the value, quoted when it needs it. The caller made room for
// value.size() + kFieldExtra bytes.
[[gnu::noinline]] void write_guarded(Cursor& c, std::string_view value, __m128i delimiter) {
  *c.pos = '\'';
  if (copy_and_scan(value.data(), value.size(), c.pos + 1, delimiter)) {
    write_quoted(c, value, true);
  } else {
    c.pos += value.size() + 1;
  }
}

// Writes one non-NULL field at c.pos; the caller writes the separator.
void write_field(Cursor& c, std::string_view value, bool guard, __m128i delimiter) {
  ensure_room(c, value.size() + kFieldExtra);
  if (value.empty()) {
    c.pos[0] = '"';
    c.pos[1] = '"';
    c.pos += 2;
  } else if (guard && is_formula_start(value.front())) {
    write_guarded(c, value, delimiter);
  } else if (copy_and_scan(value.data(), value.size(), c.pos, delimiter)) {
    write_quoted(c, value, false);
  } else {
    c.pos += value.size();
  }
}

class CsvEncoder final : public Encoder {
 public:
  explicit CsvEncoder(const OutputOptions& options)
      : options_(options), delimiter_(_mm_set1_epi8(options.delimiter)) {}

  void begin(std::span<const Column> columns, ByteBuffer& out) override {
    // A cell of a numeric column is exempt from the guard unless the source marked it as text.
    guard_text_only_.clear();
    for (const Column& column : columns) guard_text_only_.push_back(is_numeric(column.type));
    Cursor c = open_cursor(out, 256);
    if (options_.bom) {
      std::memcpy(c.pos, "\xef\xbb\xbf", 3);
      c.pos += 3;
    }
    if (options_.header && !columns.empty()) {
      for (const Column& column : columns) {
        write_field(c, column.name, options_.formula_guard, delimiter_);
        *c.pos++ = options_.delimiter;
      }
      c.pos = end_record(c.pos);
    }
    close_cursor(c);
  }

  void encode(const RowBatch& batch, ByteBuffer& out) override {
    const std::size_t rows = batch.rows();
    const std::size_t columns = batch.columns();
    if (rows == 0) return;
    // Enough for the usual batch (few fields quoted) in one reservation; the per-field check
    // below grows the buffer if quoting needs more, so correctness never rests on this guess.
    const std::size_t cells = rows * columns;
    Cursor c = open_cursor(
        out, batch.arena_bytes() + batch.arena_bytes() / 8 + 3 * cells + 2 * rows + kSlack);
    char* p = c.pos;
    char* end = c.end;
    const __m128i delimiter = delimiter_;
    const char separator = options_.delimiter;
    const bool guard = options_.formula_guard;
    // Every value lies in the batch's arena: one that starts 16 bytes or more before its end can
    // be copied and scanned as one 16-byte block (the bytes after it are another cell's).
    const char* const arena_end = batch.arena().data() + batch.arena().size();
    for (std::size_t row = 0; row < rows; ++row) {
      for (std::size_t col = 0; col < columns; ++col) {
        const Cell cell = batch.cell(row, col);
        const std::size_t len = cell.value.size();
        if (static_cast<std::size_t>(end - p) < len + kFieldExtra) {
          c.pos = p;
          grow(c, len + kFieldExtra);
          p = c.pos;
          end = c.end;
        }
        if (cell.null) {
          // An empty, unquoted field.
        } else if (len == 0) {
          p[0] = '"';
          p[1] = '"';
          p += 2;
        } else if (guard && is_formula_start(cell.value.front()) &&
                   (cell.as_text || !guard_text_only_[col])) {
          c.pos = p;
          write_guarded(c, cell.value, delimiter);
          p = c.pos;
          end = c.end;
        } else if (len <= 16 && arena_end - cell.value.data() >= 16
                       ? !copy16_and_scan(cell.value.data(), len, p, delimiter)
                       : !copy_and_scan(cell.value.data(), len, p, delimiter)) {
          p += len;
        } else {
          c.pos = p;
          write_quoted(c, cell.value, false);
          p = c.pos;
          end = c.end;
        }
        *p++ = separator;
      }
      p = end_record(p);
    }
    c.pos = p;
    close_cursor(c);
  }

  void finish(ByteBuffer&) override {}

 private:
  // The last field's delimiter becomes the record terminator; returns the new end.
  char* end_record(char* p) const {
    if (!options_.crlf) {
      p[-1] = '\n';
      return p;
    }
    p[-1] = '\r';
    *p = '\n';
    return p + 1;
  }

  OutputOptions options_;
  __m128i delimiter_;
  std::vector<bool> guard_text_only_;
};

}  // namespace

std::unique_ptr<Encoder> make_csv_encoder(const OutputOptions& options) {
  return std::make_unique<CsvEncoder>(options);
}

}  // namespace sluice
