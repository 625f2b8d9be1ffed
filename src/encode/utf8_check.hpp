#pragma once

// UTF-8 checks of row batches for the encoders (the scalar rules are in core/utf8.hpp): every
// format we write is declared UTF-8, so bytes that are not (a Latin-1 column, a truncated
// multi-byte sequence) are either replaced with U+FFFD or refused, never passed on to break a
// client's decoder.

#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include "core/row_batch.hpp"

namespace sluice {

// Thrown by a UTF-8-checked encoder in InvalidUtf8::kFail mode.
class Utf8Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Describes the first cell of `batch` that is not valid UTF-8 ("column 'c', row 3"), skipping
// kBytes columns when `keep_bytes`; nullopt when there is none. For checks before any byte of
// the response is sent. `csv_records`: each row is one cell holding the database's CSV record
// (PostgreSQL's COPY CSV passed through); the column is found by splitting it.
std::optional<std::string> find_invalid_utf8(const RowBatch& batch, std::span<const Column> columns,
                                             bool keep_bytes, bool csv_records = false);

}  // namespace sluice
