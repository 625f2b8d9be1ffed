#pragma once

#include <string_view>

#include "core/row_batch.hpp"

namespace sluice {

// Decodes one row of PostgreSQL's COPY text format (one CopyData message: fields separated by
// tabs, `\N` for NULL, backslash escapes, a final newline) into `batch`. PostgreSQL renders
// every value as its text output function does, so every type is right by construction.
// Throws SourceError when the row does not have `columns` fields.
void decode_copy_text_row(std::string_view row, std::size_t columns, RowBatch& batch);

}  // namespace sluice
