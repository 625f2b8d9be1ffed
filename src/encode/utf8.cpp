#include "encode/utf8.hpp"

#include <emmintrin.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "encode/encoder.hpp"

namespace sluice {
namespace {

// Length of the valid sequence starting at s[0], or 0 when it is invalid; then `bad` is the
// length of its maximal invalid subpart (at least 1), the bytes one U+FFFD replaces.
std::size_t sequence_length(const std::uint8_t* s, std::size_t n, std::size_t& bad) {
  const std::uint8_t lead = s[0];
  std::size_t need = 0;
  std::uint8_t low = 0x80;
  std::uint8_t high = 0xbf;
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    need = 1;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    need = 2;
    if (lead == 0xe0) low = 0xa0;   // overlong
    if (lead == 0xed) high = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 3;
    if (lead == 0xf0) low = 0x90;   // overlong
    if (lead == 0xf4) high = 0x8f;  // above U+10FFFF
  } else {
    bad = 1;
    return 0;
  }
  for (std::size_t i = 1; i <= need; ++i) {
    const std::uint8_t lo = i == 1 ? low : 0x80;
    const std::uint8_t hi = i == 1 ? high : 0xbf;
    if (i >= n || s[i] < lo || s[i] > hi) {
      bad = i;
      return 0;
    }
  }
  return need + 1;
}

bool cell_needs_check(const Cell& cell) { return !cell.null && !is_ascii(cell.value); }

// The decorator behind make_utf8_checked(): passes batches through untouched when they are all
// valid (the all-ASCII arena check makes that one fast pass), else hands the inner encoder a
// repaired copy built in a reused batch, so there is no allocation per row once warm.
class Utf8CheckedEncoder final : public Encoder {
 public:
  Utf8CheckedEncoder(std::unique_ptr<Encoder> inner, InvalidUtf8 mode, bool keep_bytes)
      : inner_(std::move(inner)), mode_(mode), keep_bytes_(keep_bytes) {}

  void begin(std::span<const Column> columns, ByteBuffer& out) override {
    columns_.assign(columns.begin(), columns.end());
    skip_.clear();
    for (Column& column : columns_) {
      skip_.push_back(keep_bytes_ && column.type == LogicalType::kBytes);
      if (valid_utf8(column.name)) continue;
      std::string repaired(3 * column.name.size(), '\0');
      repaired.resize(static_cast<std::size_t>(
          write_repaired_utf8(column.name, repaired.data()) - repaired.data()));
      column.name = std::move(repaired);
    }
    inner_->begin(columns_, out);
  }

  void encode(const RowBatch& batch, ByteBuffer& out) override {
    inner_->encode(checked(batch), out);
  }

  void finish(ByteBuffer& out) override { inner_->finish(out); }

 private:
  const RowBatch& checked(const RowBatch& batch) {
    if (arena_cells_valid(batch) || first_invalid(batch) == kNone) return batch;
    if (mode_ == InvalidUtf8::kFail) {
      const std::size_t at = first_invalid(batch);
      const std::size_t col = at % batch.columns();
      throw Utf8Error("invalid UTF-8 in column '" +
                      (col < columns_.size() ? columns_[col].name : std::string()) + "'");
    }
    repaired_.reset(batch.columns());
    for (std::size_t row = 0; row < batch.rows(); ++row) {
      for (std::size_t col = 0; col < batch.columns(); ++col) {
        const Cell cell = batch.cell(row, col);
        if (cell.null) {
          repaired_.add_null();
        } else if (skipped(col, cell) || valid_utf8(cell.value)) {
          repaired_.add_value(cell.value, cell.as_text);
        } else {
          char* at = repaired_.reserve_value(3 * cell.value.size());
          const char* end = write_repaired_utf8(cell.value, at);
          repaired_.commit_value(static_cast<std::size_t>(end - at), cell.as_text);
        }
      }
    }
    return repaired_;
  }

  // A bytes cell is base64 in JSON, unless the source marked it as text (SQLite text in a BLOB
  // column): that one becomes a JSON string and must be valid UTF-8 like any other.
  bool skipped(std::size_t col, const Cell& cell) const {
    return col < skip_.size() && skip_[col] && !cell.as_text;
  }

  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  // The fast check: an all-ASCII arena, or a valid one in which no cell starts with a
  // continuation byte. Cells lie back to back in the arena, so then no sequence is split
  // between two cells and every cell is valid on its own.
  static bool arena_cells_valid(const RowBatch& batch) {
    if (is_ascii(batch.arena())) return true;
    if (!valid_utf8(batch.arena())) return false;
    for (std::size_t row = 0; row < batch.rows(); ++row) {
      for (std::size_t col = 0; col < batch.columns(); ++col) {
        const Cell cell = batch.cell(row, col);
        if (!cell.value.empty() && (static_cast<unsigned char>(cell.value[0]) & 0xc0) == 0x80) {
          return false;
        }
      }
    }
    return true;
  }

  // Index (row * columns + col) of the first invalid cell, or kNone.
  std::size_t first_invalid(const RowBatch& batch) const {
    for (std::size_t row = 0; row < batch.rows(); ++row) {
      for (std::size_t col = 0; col < batch.columns(); ++col) {
        const Cell cell = batch.cell(row, col);
        if (skipped(col, cell) || !cell_needs_check(cell)) continue;
        if (!valid_utf8(cell.value)) return row * batch.columns() + col;
      }
    }
    return kNone;
  }

  std::unique_ptr<Encoder> inner_;
  InvalidUtf8 mode_;
  bool keep_bytes_;
  std::vector<Column> columns_;
  std::vector<bool> skip_;
  RowBatch repaired_;
};

}  // namespace

bool is_ascii(std::string_view text) {
  const char* p = text.data();
  std::size_t n = text.size();
  __m128i any = _mm_setzero_si128();
  for (; n >= 64; p += 64, n -= 64) {
    __m128i a = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
    __m128i b = _mm_or_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48)));
    any = _mm_or_si128(any, _mm_or_si128(a, b));
    if (_mm_movemask_epi8(any) != 0) return false;
  }
  for (; n >= 16; p += 16, n -= 16) {
    any = _mm_or_si128(any, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  if (_mm_movemask_epi8(any) != 0) return false;
  for (; n > 0; ++p, --n) {
    if (static_cast<unsigned char>(*p) >= 0x80) return false;
  }
  return true;
}

std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  std::size_t bad = 0;
  return sequence_length(reinterpret_cast<const std::uint8_t*>(text.data()) + i, text.size() - i,
                         bad);
}

bool valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // Skip ASCII runs 16 bytes at a time.
    while (i + 16 <= n &&
           _mm_movemask_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))) == 0) {
      i += 16;
    }
    if (i >= n) break;
    std::size_t bad = 0;
    const std::size_t len = sequence_length(s + i, n - i, bad);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

char* write_repaired_utf8(std::string_view text, char* out) {
  const auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    std::size_t bad = 0;
    const std::size_t len = sequence_length(s + i, n - i, bad);
    if (len == 0) {
      std::memcpy(out, "\xef\xbf\xbd", 3);
      out += 3;
      i += bad;
      continue;
    }
    std::memcpy(out, s + i, len);
    out += len;
    i += len;
  }
  return out;
}

std::optional<std::string> find_invalid_utf8(const RowBatch& batch, std::span<const Column> columns,
                                             bool keep_bytes) {
  if (is_ascii(batch.arena())) return std::nullopt;
  for (std::size_t row = 0; row < batch.rows(); ++row) {
    for (std::size_t col = 0; col < batch.columns() && col < columns.size(); ++col) {
      const Cell cell = batch.cell(row, col);
      if (keep_bytes && columns[col].type == LogicalType::kBytes && !cell.as_text) continue;
      if (cell_needs_check(cell) && !valid_utf8(cell.value)) {
        return "column '" + columns[col].name + "', row " + std::to_string(row + 1);
      }
    }
  }
  return std::nullopt;
}

std::unique_ptr<Encoder> make_utf8_checked(std::unique_ptr<Encoder> inner, InvalidUtf8 mode,
                                           bool keep_bytes) {
  return std::make_unique<Utf8CheckedEncoder>(std::move(inner), mode, keep_bytes);
}

}  // namespace sluice
