// Fuzzes the decoders of PostgreSQL COPY data (binary and text): malformed messages must
// throw SourceError, never read out of bounds; every decoded row has one cell per column.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sources/source_error.hpp"
#include "sources/pg_binary_decoder.hpp"
#include "sources/pg_text_decoder.hpp"

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
  std::string_view messages = rest;
  while (!messages.empty()) {
    std::size_t cut = messages.find("\xFF\xFE");
    std::string_view message = messages.substr(0, cut);
    messages = cut == std::string_view::npos ? std::string_view() : messages.substr(cut + 2);
    try {
      binary.decode(message, batch);
    } catch (const SourceError&) {
      break;
    }
  }
  if (batch.rows() * columns != batch.rows() * batch.columns()) std::abort();
  for (std::size_t row = 0; row < batch.rows(); ++row) {
    for (std::size_t column = 0; column < columns; ++column) (void)batch.cell(row, column);
  }
  RowBatch text;
  text.reset(columns);
  try {
    decode_copy_text_row(rest, columns, text);
    if (text.rows() != 1) std::abort();
  } catch (const SourceError&) {
  }
  return 0;
}
