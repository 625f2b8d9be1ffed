#pragma once

// How an export's bytes are laid out, beyond the format itself: set per dataset in
// `[datasets.output]` and narrowed per request (`?delimiter=;&bom=true`). Plain data, no
// dependencies, so the config (core) and the encoders (encode) share one definition.

namespace sluice {

enum class InvalidUtf8 : unsigned char {
  kReplace,  // each invalid sequence becomes U+FFFD
  kFail,     // the export fails (aborted mid-stream if bytes already went out)
};

struct OutputOptions {
  char delimiter = ',';       // CSV only; never '"', CR or LF
  bool header = true;         // CSV and TSV: a first row of column names
  bool crlf = true;           // CSV only: CRLF (RFC 4180) or LF after each record
  bool bom = false;           // CSV only: a UTF-8 byte order mark first (Excel reads UTF-8 then)
  bool formula_guard = true;  // CSV only: prefix `'` to text cells a spreadsheet would evaluate
  InvalidUtf8 invalid_utf8 = InvalidUtf8::kReplace;
};

// A delimiter the CSV encoder can produce and parsers can read back: TAB or printable ASCII
// other than '"' (a byte >= 0x80 would break UTF-8; CR and LF end records).
inline bool is_valid_delimiter(char c) { return c == '\t' || (c >= 0x20 && c < 0x7f && c != '"'); }

}  // namespace sluice
