#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstring>
#include <vector>

#include "core/csv_quote.hpp"
#include "encode/csv_field.hpp"
#include "encode/encoder.hpp"

namespace sluice {
namespace {

using csv_quote::is_formula_start;

#if defined(__SSE2__)
// Lanes of `now` holding a formula byte right after a ',' or a '"' (the lanes of `before`).
inline __m128i formula_after_separator(__m128i now, __m128i before) {
  __m128i formula = _mm_or_si128(_mm_cmpeq_epi8(now, _mm_set1_epi8('=')),
                                 _mm_cmpeq_epi8(now, _mm_set1_epi8('+')));
  formula = _mm_or_si128(formula, _mm_cmpeq_epi8(now, _mm_set1_epi8('-')));
  formula = _mm_or_si128(formula, _mm_cmpeq_epi8(now, _mm_set1_epi8('@')));
  formula = _mm_or_si128(formula, _mm_cmpeq_epi8(now, _mm_set1_epi8('\t')));
  formula = _mm_or_si128(formula, _mm_cmpeq_epi8(now, _mm_set1_epi8('\r')));
  const __m128i starts = _mm_or_si128(_mm_cmpeq_epi8(before, _mm_set1_epi8(',')),
                                      _mm_cmpeq_epi8(before, _mm_set1_epi8('"')));
  return _mm_and_si128(formula, starts);
}
#endif

// Copies `record` to `p` and tells whether it may need the guard: some formula byte starts the
// record or follows a ',' or a '"' (every byte the guard puts a `'` before does). A quoted
// field's inner "" or a ',' inside quotes can make this true for a record that needs nothing;
// copy_guarded() then decides exactly. One pass, without splitting the record into fields.
// REQUIRES: room for record.size() bytes at `p`.
bool copy_and_check_guard(std::string_view record, char* p) {
  const char* s = record.data();
  const std::size_t n = record.size();
  if (n == 0) return false;
  bool found = is_formula_start(s[0]);
#if defined(__SSE2__)
  if (n > 16) {
    // 16 bytes at a time: each block's `before` is the same bytes one back (the first block's
    // lane 0 has none: the record's first byte was checked above).
    __m128i now = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), now);
    __m128i hits = formula_after_separator(now, _mm_slli_si128(now, 1));
    std::size_t i = 16;
    for (; i + 16 <= n; i += 16) {
      now = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i), now);
      const __m128i before = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i - 1));
      hits = _mm_or_si128(hits, formula_after_separator(now, before));
    }
    if (i < n) {  // the last 16 bytes, overlapping copied ones (n > 16 keeps `before` inside)
      now = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + n - 16));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + n - 16), now);
      const __m128i before = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + n - 17));
      hits = _mm_or_si128(hits, formula_after_separator(now, before));
    }
    return found || _mm_movemask_epi8(hits) != 0;
  }
#endif
  std::memcpy(p, s, n);
  for (std::size_t i = 1; i < n && !found; ++i) {
    found = is_formula_start(s[i]) && (s[i - 1] == ',' || s[i - 1] == '"');
  }
  return found;
}

// Rows that are already CSV records made by the database (PostgreSQL's COPY CSV quotes exactly
// as RFC 4180 and our CSV encoder do) pass through; the LF that ends each record becomes CRLF
// unless LF was asked for, and the formula guard puts its `'` in front of the first byte of a
// text field (after the opening quote of a quoted one), so the download is the same bytes
// whichever path made it.
class CsvRecordsEncoder final : public Encoder {
 public:
  CsvRecordsEncoder(const OutputOptions& options, CsvRecords records)
      : options_(options), header_(make_csv_encoder(options)), records_(records) {}

  void begin(std::span<const Column> columns, ByteBuffer& out) override {
    guarded_.clear();
    guarded_count_ = 0;
    for (const Column& column : columns) {
      const bool numeric = column.type == LogicalType::kInt ||
                           column.type == LogicalType::kDecimal ||
                           column.type == LogicalType::kFloat;
      guarded_.push_back(options_.formula_guard && !numeric);
      guarded_count_ += guarded_.back() ? 1 : 0;
    }
    header_->begin(columns, out);
  }

  void encode(const RowBatch& batch, ByteBuffer& out) override {
    if (records_ == CsvRecords::kFinished) {
      for (std::size_t row = 0; row < batch.rows(); ++row) out.append(batch.cell(row, 0).value);
      return;
    }
    const std::size_t end_size = options_.crlf ? 2 : 1;
    for (std::size_t row = 0; row < batch.rows(); ++row) {
      std::string_view record = batch.cell(row, 0).value;
      if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
      char* tail = out.tail(record.size() + guarded_count_ + end_size);
      char* p = guarded_count_ == 0                       ? copy(record, tail)
                : !copy_and_check_guard(record, tail) ? tail + record.size()
                                                      : copy_guarded(record, tail);
      if (options_.crlf) *p++ = '\r';
      *p++ = '\n';
      out.commit(static_cast<std::size_t>(p - tail));
    }
  }

  void finish(ByteBuffer& /*out*/) override {}

 private:
  static char* copy(std::string_view bytes, char* p) {
    std::memcpy(p, bytes.data(), bytes.size());
    return p + bytes.size();
  }

  // Copies `record`, adding `'` where a guarded column's field starts with a formula byte.
  char* copy_guarded(std::string_view record, char* p) const {
    std::size_t copied = 0;
    std::size_t at = 0;
    for (std::size_t col = 0; col < guarded_.size(); ++col) {
      const std::size_t first = at < record.size() && record[at] == '"' ? at + 1 : at;
      if (guarded_[col] && first < record.size() && is_formula_start(record[first])) {
        p = copy(record.substr(copied, first - copied), p);
        *p++ = '\'';
        copied = first;
      }
      at = csv_field_end(record, at);
      if (at >= record.size()) break;
      ++at;  // the ','
    }
    return copy(record.substr(copied), p);
  }

  OutputOptions options_;
  std::unique_ptr<Encoder> header_;
  CsvRecords records_;
  std::vector<bool> guarded_;
  std::size_t guarded_count_ = 0;
};

}  // namespace

std::unique_ptr<Encoder> make_csv_records_encoder(const OutputOptions& options,
                                                  Utf8Check check, CsvRecords records) {
  auto raw = std::make_unique<CsvRecordsEncoder>(options, records);
  if (check == Utf8Check::kTrusted) return raw;
  return make_utf8_checked(std::move(raw), options.invalid_utf8, false);
}

}  // namespace sluice
