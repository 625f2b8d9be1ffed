// TSV as PostgreSQL's text COPY format writes it: fields separated by TAB, records ended by LF,
// and inside a field `\` TAB LF CR written as `\\` `\t` `\n` `\r`; NULL is `\N` and the empty
// string an empty field. Every TSV reader that follows that convention (COPY FROM, pandas with
// escapechar, clickhouse TabSeparated) reads the values back exactly.

#include <emmintrin.h>

#include <memory>
#include <span>
#include <string_view>

#include "core/copy_scan.hpp"
#include "encode/encoder.hpp"

namespace sluice {
namespace {

// 16-byte stores may run this far past the bytes they keep.
constexpr std::size_t kSlack = 16;
// Long values are escaped in pieces so a huge one reserves about its own size, not 2x.
constexpr std::size_t kSegment = 64 * 1024;
// Room a field needs beyond its bytes on the fast path: `\N`, TAB or LF, and the slack.
constexpr std::size_t kFieldExtra = 4 + kSlack;

__m128i special_lanes(__m128i v) {
  __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')),
                           _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
  m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
  return _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\r')));
}

// Writes `len` bytes escaped. REQUIRES: room for 2 * len bytes.
char* escape(const char* src, std::size_t len, char* p) {
  for (std::size_t i = 0; i < len; ++i) {
    const char c = src[i];
    switch (c) {
      case '\t':
        *p++ = '\\';
        *p++ = 't';
        break;
      case '\n':
        *p++ = '\\';
        *p++ = 'n';
        break;
      case '\r':
        *p++ = '\\';
        *p++ = 'r';
        break;
      case '\\':
        *p++ = '\\';
        *p++ = '\\';
        break;
      default:
        *p++ = c;
    }
  }
  return p;
}

class TsvEncoder final : public Encoder {
 public:
  explicit TsvEncoder(const OutputOptions& options) : header_(options.header) {}

  void begin(std::span<const Column> columns, ByteBuffer& out) override {
    if (!header_ || columns.empty()) return;
    for (const Column& column : columns) {
      write_value(column.name, out);
      out.append("\t");
    }
    out.data()[out.size() - 1] = '\n';
  }

  void encode(const RowBatch& batch, ByteBuffer& out) override {
    const std::size_t rows = batch.rows();
    const std::size_t columns = batch.columns();
    if (rows == 0) return;
    // The usual batch (little escaping) fits one reservation; growing is checked per field.
    char* base = out.tail(batch.arena_bytes() + batch.arena_bytes() / 8 + 3 * rows * columns +
                          kSlack);
    char* p = base;
    char* end = out.data() + out.capacity();
    for (std::size_t row = 0; row < rows; ++row) {
      for (std::size_t col = 0; col < columns; ++col) {
        const Cell cell = batch.cell(row, col);
        const std::size_t len = cell.value.size();
        if (static_cast<std::size_t>(end - p) < len + kFieldExtra) {
          out.commit(static_cast<std::size_t>(p - base));
          base = p = out.tail(len + kFieldExtra);
          end = out.data() + out.capacity();
        }
        if (cell.null) {
          p[0] = '\\';
          p[1] = 'N';
          p += 2;
        } else if (len == 0) {
          // An empty field.
        } else if (!copy_scan::copy_and_scan(cell.value.data(), len, p, special_lanes)) {
          p += len;
        } else {
          out.commit(static_cast<std::size_t>(p - base));
          write_value(cell.value, out);
          base = p = out.tail(kFieldExtra);
          end = out.data() + out.capacity();
        }
        *p++ = '\t';
      }
      p[-1] = '\n';
    }
    out.commit(static_cast<std::size_t>(p - base));
  }

  void finish(ByteBuffer& /*out*/) override {}

 private:
  // The slow path: appends `value` escaped, in pieces.
  [[gnu::noinline]] static void write_value(std::string_view value, ByteBuffer& out) {
    for (std::size_t at = 0; at < value.size(); at += kSegment) {
      const std::size_t n = value.size() - at < kSegment ? value.size() - at : kSegment;
      char* tail = out.tail(2 * n);
      out.commit(static_cast<std::size_t>(escape(value.data() + at, n, tail) - tail));
    }
  }

  bool header_;
};

}  // namespace

std::unique_ptr<Encoder> make_tsv_encoder(const OutputOptions& options) {
  return std::make_unique<TsvEncoder>(options);
}

}  // namespace sluice
