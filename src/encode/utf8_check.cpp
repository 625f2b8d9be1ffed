#include "encode/utf8_check.hpp"

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/utf8.hpp"
#include "encode/csv_field.hpp"
#include "encode/encoder.hpp"

namespace sluice {
namespace {

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

std::optional<std::string> find_invalid_utf8(const RowBatch& batch, std::span<const Column> columns,
                                             bool keep_bytes, bool csv_records) {
  if (is_ascii(batch.arena())) return std::nullopt;
  if (csv_records) {
    for (std::size_t row = 0; row < batch.rows(); ++row) {
      const std::string_view record = batch.cell(row, 0).value;
      if (valid_utf8(record)) continue;
      std::size_t col = 0;
      for (std::size_t at = 0; at <= record.size(); ++col) {
        const std::size_t end = csv_field_end(record, at);
        if (!valid_utf8(record.substr(at, end - at))) {
          const std::string name = col < columns.size() ? columns[col].name : "?";
          return "column '" + name + "', row " + std::to_string(row + 1);
        }
        at = end + 1;
      }
      return "row " + std::to_string(row + 1);
    }
    return std::nullopt;
  }
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
