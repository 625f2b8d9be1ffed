#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/byte_buffer.hpp"

namespace sluice {

// The logical type of a result column: decides how encoders render a cell (JSON numbers
// unquoted, booleans as true/false, ...). Sources map their native types onto these.
enum class LogicalType : std::uint8_t {
  kInt,
  kDecimal,
  kFloat,
  kBool,
  kText,
  kTimestamp,
  kDate,
  kJson,
  kBytes,
};

std::string_view to_string(LogicalType type);
std::optional<LogicalType> parse_logical_type(std::string_view name);

// Whether cells of `type` hold numbers (int, decimal, float).
inline bool is_numeric(LogicalType type) {
  return type == LogicalType::kInt || type == LogicalType::kDecimal || type == LogicalType::kFloat;
}

// The spellings of true and false that sources write (SQLite 1/0, PostgreSQL t/f, text
// true/false in three cases); nullopt for anything else.
inline std::optional<bool> parse_bool(std::string_view value) {
  if (value == "1" || value == "t" || value == "true" || value == "TRUE" || value == "True") {
    return true;
  }
  if (value == "0" || value == "f" || value == "false" || value == "FALSE" || value == "False") {
    return false;
  }
  return std::nullopt;
}

struct Column {
  std::string name;
  LogicalType type = LogicalType::kText;
  std::uint32_t source_type = 0;  // the source's own type id (a PostgreSQL OID); 0 when none
};

// One cell as encoders see it. `value` is the text rendering of the value (numbers in their
// canonical decimal form, booleans as "0"/"1" or "true"/"false", bytes as raw bytes).
// `as_text` marks a cell whose value does not fit its column's logical type (SQLite stores any
// value in any column): encoders must render it as a string, never as a bare JSON number.
struct Cell {
  std::string_view value;
  bool null = false;
  bool as_text = false;
};

// Many rows of a result, row-major: every cell is a slice of one arena plus flags.
// Reused batch after batch (reset() keeps capacity), so the hot path does not allocate per row
// or per cell once a stream has warmed up.
// Not thread-safe; a batch is handed between threads whole, never shared.
class RowBatch {
 public:
  // Empties the batch for `columns` columns, keeping the memory.
  void reset(std::size_t columns) {
    columns_ = columns;
    cells_.clear();
    arena_.clear();
  }

  std::size_t columns() const { return columns_; }
  std::size_t rows() const { return columns_ == 0 ? 0 : cells_.size() / columns_; }
  // Bytes of cell values held (the figure that byte budgets count).
  std::size_t arena_bytes() const { return arena_.size(); }
  // Every cell value back to back (lets a check skip a batch that is all ASCII in one pass).
  std::string_view arena() const { return {arena_.data(), arena_.size()}; }
  // The figure read budgets count: the bytes of its values or of its cell index, whichever is
  // larger (a batch of NULLs holds no value bytes but still takes memory).
  std::size_t budget_bytes() const {
    return std::max(arena_.size(), cells_.size() * sizeof(CellRef));
  }
  // Approximate memory held by this batch including its cell index.
  std::size_t memory_bytes() const {
    return arena_.capacity() + cells_.capacity() * sizeof(CellRef);
  }

  // Appends one cell to the row being built; rows are complete after `columns()` cells.
  void add_value(std::string_view value, bool as_text = false) {
    std::size_t offset = arena_.size();
    arena_.append(value);
    cells_.push_back(CellRef{static_cast<std::uint32_t>(offset),
                             static_cast<std::uint32_t>(value.size()) | (as_text ? kTextBit : 0)});
  }
  void add_null() { cells_.push_back(CellRef{0, kNullBit}); }

  // Appends a cell written in place (decoders that unescape): write at most `max_size` bytes at
  // the returned pointer, then commit_value() with the bytes written. Valid until the next add.
  char* reserve_value(std::size_t max_size) { return arena_.tail(max_size); }
  void commit_value(std::size_t size, bool as_text = false) {
    cells_.push_back(commit_reserved(size, as_text));
  }

  // Appends a cell written in pieces (a decoder that renders a whole CSV record): note
  // piece_start(), write each piece at piece_room(n) and keep it with commit_piece(n), then
  // end_pieces(start) makes the bytes since `start` one cell. piece_room() may move the arena:
  // a pointer into an uncommitted piece is invalid after it.
  std::size_t piece_start() const { return arena_.size(); }
  char* piece_room(std::size_t max_size) { return arena_.tail(max_size); }
  void commit_piece(std::size_t size) { arena_.commit(size); }
  void end_pieces(std::size_t start) {
    cells_.push_back(CellRef{static_cast<std::uint32_t>(start),
                             static_cast<std::uint32_t>(arena_.size() - start)});
  }

  // Appends a copy of row `row` of `other` (its values, NULLs and text marks).
  // REQUIRES: other.columns() == columns(), row < other.rows().
  void add_row_from(const RowBatch& other, std::size_t row) {
    for (std::size_t column = 0; column < other.columns_; ++column) {
      const Cell cell = other.cell(row, column);
      if (cell.null) {
        add_null();
      } else {
        add_value(cell.value, cell.as_text);
      }
    }
  }

  // Makes this batch a copy of `other` (same cells, same values), keeping this batch's memory.
  void copy_from(const RowBatch& other) {
    columns_ = other.columns_;
    cells_.assign(other.cells_.begin(), other.cells_.end());
    arena_.clear();
    arena_.append(other.arena());
  }
  // Points cell (row, column) at `size` bytes written at reserve_value()'s pointer.
  // REQUIRES: row < rows(), column < columns().
  void replace_value(std::size_t row, std::size_t column, std::size_t size, bool as_text = false) {
    cells_[row * columns_ + column] = commit_reserved(size, as_text);
  }
  // Points cell (row, column) at a copy of `value`, which must not point into this batch.
  void replace_with(std::size_t row, std::size_t column, std::string_view value,
                    bool as_text = false) {
    char* out = reserve_value(value.size());
    if (!value.empty()) std::memcpy(out, value.data(), value.size());
    replace_value(row, column, value.size(), as_text);
  }
  // Keeps the first `size` bytes of a non-NULL cell's value. REQUIRES: size <= its size.
  void shorten_value(std::size_t row, std::size_t column, std::size_t size) {
    CellRef& ref = cells_[row * columns_ + column];
    ref.size_and_flags = (ref.size_and_flags & ~kSizeMask) | static_cast<std::uint32_t>(size);
  }
  // Marks a non-NULL cell as text that does not fit its column's type (see Cell::as_text).
  void mark_text(std::size_t row, std::size_t column) {
    CellRef& ref = cells_[row * columns_ + column];
    if (!(ref.size_and_flags & kNullBit)) ref.size_and_flags |= kTextBit;
  }

  // REQUIRES: row < rows(), column < columns().
  Cell cell(std::size_t row, std::size_t column) const {
    const CellRef& ref = cells_[row * columns_ + column];
    if (ref.size_and_flags & kNullBit) return Cell{{}, true, false};
    return Cell{std::string_view(arena_.data() + ref.offset, ref.size_and_flags & kSizeMask), false,
                (ref.size_and_flags & kTextBit) != 0};
  }

  // Releases memory after an unusually large batch so a stream's footprint returns to normal.
  void shrink_to(std::size_t arena_keep, std::size_t cells_keep) {
    arena_.shrink_to(arena_keep);
    if (cells_.capacity() > cells_keep && cells_.size() <= cells_keep) {
      std::vector<CellRef> smaller;
      smaller.reserve(cells_keep);
      smaller.assign(cells_.begin(), cells_.end());
      cells_.swap(smaller);
    }
  }

  // The largest single cell a batch can hold (the arena offsets are 32-bit).
  static constexpr std::size_t kMaxCellBytes = (1u << 30) - 1;

 private:
  static constexpr std::uint32_t kNullBit = 1u << 31;
  static constexpr std::uint32_t kTextBit = 1u << 30;
  static constexpr std::uint32_t kSizeMask = kTextBit - 1;

  struct CellRef {
    std::uint32_t offset;
    std::uint32_t size_and_flags;
  };

  // Commits `size` bytes written at reserve_value()'s pointer; the ref that points at them.
  CellRef commit_reserved(std::size_t size, bool as_text) {
    const std::size_t offset = arena_.size();
    arena_.commit(size);
    return CellRef{static_cast<std::uint32_t>(offset),
                   static_cast<std::uint32_t>(size) | (as_text ? kTextBit : 0)};
  }

  std::size_t columns_ = 0;
  std::vector<CellRef> cells_;
  ByteBuffer arena_;
};

}  // namespace sluice
