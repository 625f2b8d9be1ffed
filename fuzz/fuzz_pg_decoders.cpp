// Fuzzes the decoders of PostgreSQL COPY data (binary and text): malformed messages must
// throw SourceError, never read out of bounds; each successful decode adds the rows it reports
// (0 or 1) and nothing more, every cell is NULL or a slice of the batch's arena; a text row has
// one cell per column, and its plain fields (no backslash) arrive unchanged. The binary
// decoder's CSV records (decode_csv_record) fail where decode() fails and otherwise are the
// bytes the CSV encoder writes for decode()'s cells.
#include <cstdint>
#include <cstdlib>
#include <vector>
#include <string_view>

#include "encode/encoder.hpp"
#include "sources/source_error.hpp"
#include "sources/pg_binary_decoder.hpp"
#include "sources/pg_text_decoder.hpp"

namespace {

// Every cell of the first `rows` rows is NULL or a slice of the batch's arena.
void check_cells(const sluice::RowBatch& batch, std::size_t rows) {
  const std::string_view arena = batch.arena();
  for (std::size_t row = 0; row < rows; ++row) {
    for (std::size_t column = 0; column < batch.columns(); ++column) {
      const sluice::Cell cell = batch.cell(row, column);
      if (cell.null) continue;
      if (cell.value.empty()) continue;
      if (cell.value.data() < arena.data() ||
          cell.value.data() + cell.value.size() > arena.data() + arena.size()) {
        std::abort();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  if (size < 2) return 0;
  // First byte: how many columns (1..8); next bytes: their layouts; the rest: messages split
  // at 0xFF 0xFE markers (the first one should be the COPY header).
  const std::size_t columns = 1 + data[0] % 8;
  if (size < 1 + columns) return 0;
  std::vector<PgWire> layout;
  for (std::size_t i = 0; i < columns; ++i) {
    layout.push_back(static_cast<PgWire>(data[1 + i] % (static_cast<int>(PgWire::kBytea) + 1)));
  }
  std::string_view rest(reinterpret_cast<const char*>(data) + 1 + columns, size - 1 - columns);
  PgBinaryDecoder binary(layout);
  RowBatch batch;
  batch.reset(columns);
  // The records' style from the layout bytes' high bits: the line ending, and the guard on
  // columns that are not numbers (as the CSV encoder decides it from the logical types).
  OutputOptions options;
  options.header = false;
  options.crlf = (data[1] & 0x80) != 0;
  options.formula_guard = (data[1] & 0x40) != 0;
  CsvRecordStyle style{options.crlf, {}};
  std::vector<Column> logical;
  for (PgWire wire : layout) {
    const bool number = wire == PgWire::kInt2 || wire == PgWire::kInt4 || wire == PgWire::kInt8 ||
                        wire == PgWire::kOid || wire == PgWire::kFloat4 ||
                        wire == PgWire::kFloat8 || wire == PgWire::kNumeric;
    logical.push_back(Column{"c", number ? LogicalType::kInt : LogicalType::kText});
    style.guarded.push_back(options.formula_guard && !number);
  }
  PgBinaryDecoder records(layout, style);
  RowBatch record_batch;
  record_batch.reset(1);
  auto csv = make_csv_encoder(options);
  ByteBuffer expected;
  csv->begin(logical, expected);
  // Rows completed by successful decode() calls: each adds what it returns (0 for the header
  // or the trailer, else 1 tuple), nothing else. A failed call may leave a partial row; the
  // reader abandons the batch then, so decoding stops there.
  std::size_t decoded_rows = 0;
  std::string_view messages = rest;
  while (!messages.empty()) {
    std::size_t cut = messages.find("\xFF\xFE");
    std::string_view message = messages.substr(0, cut);
    messages = cut == std::string_view::npos ? std::string_view() : messages.substr(cut + 2);
    const std::size_t rows_before = batch.rows();
    const std::size_t arena_before = batch.arena_bytes();
    std::size_t added = 0;
    std::size_t record_added = 0;
    bool record_failed = false;
    try {
      record_added = records.decode_csv_record(message, record_batch);
    } catch (const SourceError&) {
      record_failed = true;
    }
    try {
      added = binary.decode(message, batch);
    } catch (const SourceError&) {
      if (!record_failed) std::abort();
      break;  // (the batch may now hold a partial or unchecked row: not looked at)
    }
    if (record_failed || record_added != added) std::abort();
    if (added == 1) {
      RowBatch row;
      row.reset(columns);
      row.add_row_from(batch, rows_before);
      expected.clear();
      csv->encode(row, expected);
      if (record_batch.cell(record_batch.rows() - 1, 0).value != expected.view()) std::abort();
    }
    if (added > 1) std::abort();
    if (batch.rows() != rows_before + added) std::abort();  // a row is `columns` cells, whole
    if (added == 0 && batch.arena_bytes() != arena_before) std::abort();
    decoded_rows += added;
  }
  if (batch.rows() < decoded_rows) std::abort();
  check_cells(batch, decoded_rows);
  RowBatch text;
  text.reset(columns);
  try {
    decode_copy_text_row(rest, columns, text);
    if (text.rows() != 1) std::abort();
    check_cells(text, 1);
    // A field without a backslash and other than \N arrives as it was sent.
    std::string_view row = rest;
    if (!row.empty() && row.back() == '\n') row.remove_suffix(1);
    for (std::size_t column = 0; column < columns; ++column) {
      const std::size_t tab = row.find('\t');
      const std::string_view field = row.substr(0, tab);
      const Cell cell = text.cell(0, column);
      if (field == "\\N") {
        if (!cell.null) std::abort();
      } else if (field.find('\\') == std::string_view::npos) {
        if (cell.null || cell.value != field) std::abort();
      }
      row = tab == std::string_view::npos ? std::string_view() : row.substr(tab + 1);
    }
  } catch (const SourceError&) {
  }
  return 0;
}
