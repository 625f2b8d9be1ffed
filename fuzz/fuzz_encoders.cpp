// Fuzzes the encoders: a RowBatch built from the input (several columns of several types, NULLs,
// arbitrary bytes) is encoded as CSV with fuzzed options and parsed back with a strict RFC 4180
// parser, cell by cell, against the documented rules (invalid UTF-8 becomes U+FFFD, the formula
// guard's `'`); TSV is unescaped and compared the same way; JSON Lines and the JSON array must
// parse with Boost.JSON and hold one object per row.
//
// Input: byte 0 = columns (1..6); byte 1 = option bits; then one type byte per column; then
// cells, each a length byte (0xFF: NULL; bit 6: as_text; low 6 bits: length) and its bytes.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "encode/encoder.hpp"
#include "core/utf8.hpp"

namespace {

using namespace sluice;
using Field = std::optional<std::string>;

// Aborts (a finding) naming the failed condition's line.
void check_at(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_encoders.cpp:%d: check failed\n", line);
  std::abort();
}
#define check(condition) check_at((condition), __LINE__)

std::string repaired(std::string_view text) {
  std::string out(3 * text.size(), '\0');
  out.resize(static_cast<std::size_t>(write_repaired_utf8(text, out.data()) - out.data()));
  return out;
}

bool is_formula_start(char c) {
  return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

// A strict RFC 4180 reader: records end with CRLF (or LF), an empty unquoted field is NULL.
std::vector<std::vector<Field>> parse_csv(std::string_view text, char delimiter, bool crlf) {
  std::vector<std::vector<Field>> records;
  std::size_t i = 0;
  while (i < text.size()) {
    std::vector<Field> record;
    while (true) {
      Field field;
      if (i < text.size() && text[i] == '"') {
        std::string value;
        ++i;
        while (true) {
          check(i < text.size());  // unterminated quote
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              value += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          value += text[i++];
        }
        field = value;
      } else {
        std::size_t start = i;
        while (i < text.size() && text[i] != delimiter && text[i] != '\r' && text[i] != '\n') {
          check(text[i] != '"');
          ++i;
        }
        if (i > start) field = std::string(text.substr(start, i - start));
      }
      record.push_back(field);
      check(i < text.size());  // every record is terminated
      if (text[i] == delimiter) {
        ++i;
        continue;
      }
      if (crlf) {
        check(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n');
        i += 2;
      } else {
        check(text[i] == '\n');
        ++i;
      }
      break;
    }
    records.push_back(std::move(record));
  }
  return records;
}

// PostgreSQL text format: a raw field `\N` is NULL, else `\t` `\n` `\r` `\\` are unescaped.
Field tsv_field(std::string_view raw) {
  if (raw == "\\N") return std::nullopt;
  std::string value;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    check(raw[i] != '\r');
    if (raw[i] != '\\') {
      value += raw[i];
      continue;
    }
    check(i + 1 < raw.size());
    const char e = raw[++i];
    check(e == 't' || e == 'n' || e == 'r' || e == '\\');
    value += e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : '\\';
  }
  return value;
}

std::vector<std::vector<Field>> parse_tsv(std::string_view text) {
  std::vector<std::vector<Field>> records;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    check(end != std::string_view::npos);
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    std::vector<Field> record;
    while (true) {
      const std::size_t tab = line.find('\t');
      record.push_back(tsv_field(line.substr(0, tab)));
      if (tab == std::string_view::npos) break;
      line.remove_prefix(tab + 1);
    }
    records.push_back(std::move(record));
  }
  return records;
}

std::string encode(Format format, const OutputOptions& options, const std::vector<Column>& columns,
                   const RowBatch& batch) {
  auto encoder = make_encoder(format, options);
  ByteBuffer out;
  encoder->begin(columns, out);
  encoder->encode(batch, out);
  encoder->finish(out);
  return std::string(out.view());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t columns = 1 + data[0] % 6;
  const std::uint8_t bits = data[1];
  if (size < 2 + columns) return 0;
  static constexpr char kDelimiters[] = {',', ';', '\t', '|'};
  OutputOptions options;
  options.delimiter = kDelimiters[bits & 3];
  options.crlf = (bits & 4) != 0;
  options.formula_guard = (bits & 8) != 0;
  options.header = (bits & 16) != 0;
  options.bom = (bits & 32) != 0;
  std::vector<Column> cols;
  for (std::size_t c = 0; c < columns; ++c) {
    cols.push_back(Column{"c" + std::to_string(c), static_cast<LogicalType>(data[2 + c] % 9)});
  }
  // The cells, and what each must read back as.
  RowBatch batch;
  batch.reset(columns);
  std::vector<Field> expected_csv;
  std::vector<Field> expected_tsv;
  std::size_t at = 2 + columns;
  std::vector<std::pair<std::string, std::pair<bool, bool>>> cells;  // value, (null, as_text)
  while (at < size) {
    const std::uint8_t head = data[at++];
    if (head == 0xFF) {
      cells.push_back({std::string(), {true, false}});
      continue;
    }
    std::size_t len = head & 0x3F;
    if (len > size - at) len = size - at;
    cells.push_back({std::string(reinterpret_cast<const char*>(data + at), len),
                     {false, (head & 0x40) != 0}});
    at += len;
  }
  cells.resize(cells.size() / columns * columns);
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const auto& [value, flags] = cells[i];
    if (flags.first) {
      batch.add_null();
      expected_csv.emplace_back();
      expected_tsv.emplace_back();
      continue;
    }
    batch.add_value(value, flags.second);
    std::string text = repaired(value);
    expected_tsv.emplace_back(text);
    const LogicalType type = cols[i % columns].type;
    const bool numeric = type == LogicalType::kInt || type == LogicalType::kDecimal ||
                         type == LogicalType::kFloat;
    if (options.formula_guard && (!numeric || flags.second) && !text.empty() &&
        is_formula_start(text.front())) {
      text.insert(0, 1, '\'');
    }
    expected_csv.emplace_back(text);
  }
  const std::size_t rows = batch.rows();

  // CSV.
  std::string csv = encode(Format::kCsv, options, cols, batch);
  std::string_view body(csv);
  if (options.bom) {
    check(body.starts_with("\xef\xbb\xbf"));
    body.remove_prefix(3);
  }
  check(valid_utf8(body));
  auto records = parse_csv(body, options.delimiter, options.crlf);
  std::size_t first = 0;
  if (options.header) {
    check(!records.empty() && records[0].size() == columns);
    for (std::size_t c = 0; c < columns; ++c) check(records[0][c] == cols[c].name);
    first = 1;
  }
  check(records.size() == first + rows);
  for (std::size_t r = 0; r < rows; ++r) {
    check(records[first + r].size() == columns);
    for (std::size_t c = 0; c < columns; ++c) {
      check(records[first + r][c] == expected_csv[r * columns + c]);
    }
  }

  // TSV.
  std::string tsv = encode(Format::kTsv, options, cols, batch);
  check(valid_utf8(tsv));
  auto tsv_records = parse_tsv(tsv);
  check(tsv_records.size() == (options.header ? 1 : 0) + rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const auto& record = tsv_records[(options.header ? 1 : 0) + r];
    check(record.size() == columns);
    for (std::size_t c = 0; c < columns; ++c) check(record[c] == expected_tsv[r * columns + c]);
  }

  // JSON Lines and the JSON array.
  std::string jsonl = encode(Format::kJsonLines, options, cols, batch);
  std::size_t lines = 0;
  for (std::size_t start = 0; start < jsonl.size(); ++lines) {
    const std::size_t end = jsonl.find('\n', start);
    check(end != std::string::npos);
    boost::system::error_code ec;
    const std::string_view line = std::string_view(jsonl).substr(start, end - start);
    boost::json::value value = boost::json::parse(line, ec);
    if (ec || !value.is_object() || value.as_object().size() != columns) {
      std::fprintf(stderr, "bad JSON Lines line (%s): %.*s\n", ec.message().c_str(),
                   static_cast<int>(line.size()), line.data());
    }
    check(!ec && value.is_object() && value.as_object().size() == columns);
    start = end + 1;
  }
  check(lines == rows);
  std::string array = encode(Format::kJson, options, cols, batch);
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(array, ec);
  check(!ec && value.is_array() && value.as_array().size() == rows);
  return 0;
}
