#include "sources/pg_binary_decoder.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/csv_quote.hpp"
#include "sources/pg_wire_bytes.hpp"
#include "sources/source_error.hpp"

namespace sluice {
namespace {

constexpr std::string_view kSignature("PGCOPY\n\377\r\n\0", 11);
constexpr std::int64_t kMicrosPerDay = 86'400'000'000LL;
constexpr std::int32_t kDaysFrom1970To2000 = 10'957;

[[noreturn]] void malformed(const char* what) {
  throw SourceError(std::string("malformed binary COPY data: ") + what);
}

// Big-endian reads from a bounded cursor.
class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : bytes_(bytes) {}
  std::size_t remaining() const { return bytes_.size() - pos_; }
  template <typename T>
  T read() {
    if (remaining() < sizeof(T)) malformed("truncated");
    T value = load_big_endian<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
    return value;
  }
  std::string_view take(std::size_t n) {
    if (remaining() < n) malformed("truncated");
    std::string_view part = bytes_.substr(pos_, n);
    pos_ += n;
    return part;
  }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
};

// Shortest round-trip digits in PostgreSQL's layout: fixed notation while the decimal exponent
// is in [-4, fixed_limit), else d.ddde±XX.
std::size_t layout_float(const char* scientific, std::size_t length, int fixed_limit, char* out) {
  std::string_view text(scientific, length);
  char* start = out;
  if (text.front() == '-') {
    *out++ = '-';
    text.remove_prefix(1);
  }
  std::size_t e = text.find('e');
  std::string_view mantissa = text.substr(0, e);
  int exponent = 0;
  std::from_chars(text.data() + e + 1 + (text[e + 1] == '+'), text.data() + text.size(), exponent);
  char digits[32];
  std::size_t count = 0;
  for (char c : mantissa) {
    if (c != '.') digits[count++] = c;
  }
  if (exponent < -4 || exponent >= fixed_limit) {
    *out++ = digits[0];
    if (count > 1) {
      *out++ = '.';
      std::memcpy(out, digits + 1, count - 1);
      out += count - 1;
    }
    *out++ = 'e';
    *out++ = exponent < 0 ? '-' : '+';
    int magnitude = exponent < 0 ? -exponent : exponent;
    if (magnitude < 10) *out++ = '0';
    out = std::to_chars(out, out + 4, magnitude).ptr;
  } else if (exponent < 0) {
    *out++ = '0';
    *out++ = '.';
    for (int i = -1; i > exponent; --i) *out++ = '0';
    std::memcpy(out, digits, count);
    out += count;
  } else {
    std::size_t integer_digits = static_cast<std::size_t>(exponent) + 1;
    for (std::size_t i = 0; i < integer_digits; ++i) *out++ = i < count ? digits[i] : '0';
    if (count > integer_digits) {
      *out++ = '.';
      std::memcpy(out, digits + integer_digits, count - integer_digits);
      out += count - integer_digits;
    }
  }
  return static_cast<std::size_t>(out - start);
}

template <typename Float>
std::size_t format_float(Float value, int fixed_limit, char* out) {
  if (std::isnan(value)) return std::memcpy(out, "NaN", 3), 3;
  if (std::isinf(value)) {
    std::string_view text = value > 0 ? "Infinity" : "-Infinity";
    std::memcpy(out, text.data(), text.size());
    return text.size();
  }
  if (value == 0) {
    std::string_view text = std::signbit(value) ? "-0" : "0";
    std::memcpy(out, text.data(), text.size());
    return text.size();
  }
  char scientific[40];
  char* end = std::to_chars(scientific, scientific + sizeof scientific, value,
                            std::chars_format::scientific).ptr;
  return layout_float(scientific, static_cast<std::size_t>(end - scientific), fixed_limit, out);
}

char* put_padded(char* out, std::int64_t value, int width) {
  char digits[24];
  char* end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  for (int pad = width - static_cast<int>(end - digits); pad > 0; --pad) *out++ = '0';
  std::memcpy(out, digits, static_cast<std::size_t>(end - digits));
  return out + (end - digits);
}

constexpr std::array<char, 200> kDigitPairs = [] {
  std::array<char, 200> pairs{};
  for (std::size_t i = 0; i < 100; ++i) {
    pairs[2 * i] = static_cast<char>('0' + i / 10);
    pairs[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return pairs;
}();

// Two digits of `value`. REQUIRES: value < 100.
char* put2(char* out, unsigned value) {
  std::memcpy(out, &kDigitPairs[2 * value], 2);
  return out + 2;
}
// Four digits of `value`, zero-padded. REQUIRES: value < 10000.
char* put4(char* out, unsigned value) { return put2(put2(out, value / 100), value % 100); }

constexpr std::array<std::uint64_t, 20> kPowersOf10 = [] {
  std::array<std::uint64_t, 20> powers{};
  std::uint64_t power = 1;
  for (std::uint64_t& each : powers) {
    each = power;
    power *= 10;
  }
  return powers;
}();

// The decimal digits of `value` (what std::to_chars writes), inline: the digit count from the
// bit width, then two digits per step from the end.
char* put_decimal(char* out, std::uint64_t value) {
  if (value < 10) {
    *out = static_cast<char>('0' + value);
    return out + 1;
  }
  const auto estimate = static_cast<std::size_t>(std::bit_width(value) * 1233 >> 12);
  char* const end = out + estimate + (value >= kPowersOf10[estimate] ? 1 : 0);
  char* p = end;
  for (; value >= 100; value /= 100) {
    p -= 2;
    put2(p, static_cast<unsigned>(value % 100));
  }
  if (value >= 10) {
    put2(p - 2, static_cast<unsigned>(value));
  } else {
    p[-1] = static_cast<char>('0' + value);
  }
  return end;
}

char* put_integer(char* out, std::int64_t value) {
  if (value >= 0) return put_decimal(out, static_cast<std::uint64_t>(value));
  *out = '-';
  return put_decimal(out + 1, 0 - static_cast<std::uint64_t>(value));
}

// Civil date from days since 1970-01-01 (proleptic Gregorian; year 0 = 1 BC).
void civil_from_days(std::int64_t days, std::int64_t& year, unsigned& month, unsigned& day) {
  // Neri and Schneider, "Euclidean affine functions and their application to calendar
  // algorithms" (2022): 32-bit multiplications instead of 64-bit divisions, for days that
  // shifted by whole 400-year eras stay below 2^30 (32,000 BC to 2.9 million AD, every
  // timestamp PostgreSQL stores).
  constexpr std::int64_t kEras = 82;
  constexpr std::int64_t kShift = 719'468 + 146'097 * kEras;
  if (days >= -kShift && days < (std::int64_t{1} << 30) - kShift) {
    const auto shifted = static_cast<std::uint32_t>(days + kShift);
    const std::uint32_t n1 = 4 * shifted + 3;
    const std::uint32_t century = n1 / 146'097;
    const std::uint32_t n2 = n1 % 146'097 / 4 * 4 + 3;
    const std::uint64_t p2 = std::uint64_t{2'939'745} * n2;
    const auto year_of_century = static_cast<std::uint32_t>(p2 >> 32);
    const std::uint32_t day_of_year = static_cast<std::uint32_t>(p2) / 2'939'745 / 4;
    const std::uint32_t n3 = 2141 * day_of_year + 197'913;
    const bool january_or_february = day_of_year >= 306;
    year = static_cast<std::int64_t>(100 * century + year_of_century) - 400 * kEras +
           (january_or_february ? 1 : 0);
    month = january_or_february ? n3 / 65'536 - 12 : n3 / 65'536;
    day = n3 % 65'536 / 2141 + 1;
    return;
  }
  days += 719'468;
  std::int64_t era = (days >= 0 ? days : days - 146'096) / 146'097;
  auto day_of_era = static_cast<std::int64_t>(days - era * 146'097);
  std::int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  std::int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  std::int64_t mp = (5 * day_of_year + 2) / 153;
  day = static_cast<unsigned>(day_of_year - (153 * mp + 2) / 5 + 1);
  month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  year = year_of_era + era * 400 + (month <= 2);
}

// "YYYY-MM-DD"; returns whether the year is BC (the caller appends " BC" where PG puts it).
char* put_date(char* out, std::int64_t days_since_2000, bool& bc) {
  std::int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  civil_from_days(days_since_2000 + kDaysFrom1970To2000, year, month, day);
  bc = year <= 0;
  const std::int64_t shown_year = bc ? 1 - year : year;
  out = shown_year < 10'000 ? put4(out, static_cast<unsigned>(shown_year))
                            : put_padded(out, shown_year, 4);
  *out++ = '-';
  out = put2(out, month);
  *out++ = '-';
  return put2(out, day);
}

// Longest rendering of a date or timestamp (a 7-digit year, 6 fraction digits, zone and BC).
constexpr std::size_t kMaxTimestampText = 48;

std::size_t format_timestamp(std::int64_t micros, bool with_zone, char* out) {
  if (micros == std::numeric_limits<std::int64_t>::max()) return std::memcpy(out, "infinity", 8), 8;
  if (micros == std::numeric_limits<std::int64_t>::min()) return std::memcpy(out, "-infinity", 9), 9;
  std::int64_t days = micros / kMicrosPerDay;
  std::int64_t time = micros % kMicrosPerDay;
  if (time < 0) {
    time += kMicrosPerDay;
    --days;
  }
  char* start = out;
  bool bc = false;
  out = put_date(out, days, bc);
  const auto seconds = static_cast<unsigned>(time / 1'000'000);
  const auto fraction = static_cast<unsigned>(time % 1'000'000);
  *out++ = ' ';
  out = put2(out, seconds / 3600);
  *out++ = ':';
  out = put2(out, seconds / 60 % 60);
  *out++ = ':';
  out = put2(out, seconds % 60);
  if (fraction != 0) {
    // Six digits, then PostgreSQL drops the trailing zeros (a nonzero digit stops the loop).
    *out++ = '.';
    out = put2(put2(put2(out, fraction / 10'000), fraction / 100 % 100), fraction % 100);
    while (out[-1] == '0') --out;
  }
  if (with_zone) out = static_cast<char*>(std::memcpy(out, "+00", 3)) + 3;
  if (bc) out = static_cast<char*>(std::memcpy(out, " BC", 3)) + 3;
  return static_cast<std::size_t>(out - start);
}

std::size_t format_date(std::int32_t days, char* out) {
  if (days == std::numeric_limits<std::int32_t>::max()) return std::memcpy(out, "infinity", 8), 8;
  if (days == std::numeric_limits<std::int32_t>::min()) return std::memcpy(out, "-infinity", 9), 9;
  bool bc = false;
  char* end = put_date(out, days, bc);
  if (bc) end = static_cast<char*>(std::memcpy(end, " BC", 3)) + 3;
  return static_cast<std::size_t>(end - out);
}

// numeric's wire form: base-10000 digits with a weight (position of the first group) and a
// display scale; rendered like numeric_out. A digit of 10000 or more is refused, as
// numeric_recv refuses it.
template <typename Out>
void put_numeric(Cursor cursor, Out& out) {
  auto ndigits = cursor.read<std::int16_t>();
  auto weight = cursor.read<std::int16_t>();
  auto sign = cursor.read<std::uint16_t>();
  auto dscale = cursor.read<std::int16_t>();
  if (ndigits < 0 || dscale < 0 || cursor.remaining() != static_cast<std::size_t>(ndigits) * 2) {
    malformed("numeric");
  }
  std::string_view special = sign == 0xC000 ? "NaN" : sign == 0xD000 ? "Infinity"
                           : sign == 0xF000 ? "-Infinity" : "";
  if (!special.empty()) {
    out.add(special);
    return;
  }
  std::string_view digits = cursor.take(static_cast<std::size_t>(ndigits) * 2);
  for (int i = 0; i < ndigits; ++i) {
    if (load_big_endian<std::uint16_t>(digits.data() + 2 * i) >= 10'000) malformed("numeric digit");
  }
  auto group = [&](int index) -> unsigned {
    if (index < 0 || index >= ndigits) return 0;
    return load_big_endian<std::uint16_t>(digits.data() + static_cast<std::size_t>(index) * 2);
  };
  // Sign, integer groups, '.', the scale rounded up to whole groups.
  std::size_t max_size = 8 + static_cast<std::size_t>(std::max(0, weight + 1)) * 4 + dscale + 4;
  char* start = out.room(max_size);
  char* p = start;
  if (sign == 0x4000) *p++ = '-';
  if (weight < 0) {
    *p++ = '0';
  } else {
    p = put_decimal(p, group(0));
    for (int i = 1; i <= weight; ++i) p = put4(p, group(i));
  }
  if (dscale > 0) {
    // Whole groups (missing ones are zeros), then cut to the display scale.
    *p++ = '.';
    char* fraction = p;
    for (int i = weight + 1; p - fraction < dscale; ++i) p = put4(p, group(i));
    p = fraction + dscale;
  }
  out.commit(static_cast<std::size_t>(p - start));
}

template <typename Out>
void put_hex(std::string_view prefix, std::string_view bytes, bool uuid, Out& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  char* start = out.room(prefix.size() + bytes.size() * 2 + 4);
  char* p = start;
  std::memcpy(p, prefix.data(), prefix.size());
  p += prefix.size();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (uuid && (i == 4 || i == 6 || i == 8 || i == 10)) *p++ = '-';
    auto byte = static_cast<unsigned char>(bytes[i]);
    *p++ = kHex[byte >> 4];
    *p++ = kHex[byte & 0xF];
  }
  out.commit(static_cast<std::size_t>(p - start));
}

// Text is copied as it is. A short value with 16 readable bytes from its start (the rest of
// its message) is copied as one 16-byte load and store, without a call to memcpy: the arena's
// tail has room for them and only the value's own bytes are committed.
void add_text(std::string_view bytes, const char* readable_end, RowBatch& batch) {
  constexpr std::size_t kBlock = 16;
  if (bytes.size() <= kBlock && static_cast<std::size_t>(readable_end - bytes.data()) >= kBlock) {
    char* out = batch.reserve_value(kBlock);
    std::memcpy(out, bytes.data(), kBlock);
    batch.commit_value(bytes.size());
    return;
  }
  batch.add_value(bytes);
}

// Where a rendered value goes: room(n) gives room for n bytes, commit(n) keeps the n written.
// A cell of its own ...
struct CellOut {
  RowBatch& batch;
  char* room(std::size_t n) { return batch.reserve_value(n); }
  void commit(std::size_t n) { batch.commit_value(n); }
  void add(std::string_view text) { batch.add_value(text); }
};

// ... or the CSV record being written: a raw position in the arena's reserved tail, so the
// fields of a row cost a compare each for room. Grows (when a field needs more than the row's
// first reservation: quoted text, hex bytea, a long numeric) by keeping what is written and
// reserving again.
class RecordOut {
 public:
  RecordOut(RowBatch& batch, std::size_t room) : batch_(batch) {
    base_ = p_ = batch.piece_room(room);
    end_ = base_ + room;
  }
  // Room for n bytes at the returned position (and csv_quote::kSlack after them).
  char* room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n + csv_quote::kSlack) grow(n);
    last_room_ = p_;
    return p_;
  }
  // Where the last room() began: where a rendering began (each asks for room once).
  char* last_room() const { return last_room_; }
  void commit(std::size_t n) { p_ += n; }
  void add(std::string_view text) {
    std::memcpy(room(text.size()), text.data(), text.size());
    p_ += text.size();
  }
  // REQUIRES: room for it.
  void put(char c) { *p_++ = c; }
  char* position() const { return p_; }
  void finish() { batch_.commit_piece(static_cast<std::size_t>(p_ - base_)); }

 private:
  [[gnu::noinline]] void grow(std::size_t n) {
    finish();
    const std::size_t room = n + csv_quote::kSlack + 4096;
    base_ = p_ = batch_.piece_room(room);
    end_ = base_ + room;
  }

  RowBatch& batch_;
  char* base_;
  char* p_;
  char* end_;
  char* last_room_ = nullptr;
};

using csv_quote::is_formula_start;

// Text as a CSV field (csv_quote.hpp), as the CSV encoder writes it: copied while scanned,
// quoted with '"' doubled only when it holds ',', '"', CR or LF; "" when empty, so it differs
// from NULL's empty field; after a `'` when `guard` and it starts like a formula.
void put_csv_text(std::string_view bytes, const char* readable_end, bool guard, RecordOut& out) {
  const __m128i comma = _mm_set1_epi8(',');
  const std::size_t len = bytes.size();
  if (len == 0) {
    char* p = out.room(2);
    p[0] = '"';
    p[1] = '"';
    out.commit(2);
    return;
  }
  const std::size_t mark = guard && is_formula_start(bytes[0]) ? 1 : 0;
  char* p = out.room(len + 1);
  p[0] = '\'';
  const bool quote = len <= 16 && readable_end - bytes.data() >= 16
                         ? csv_quote::copy16_and_scan(bytes.data(), len, p + mark, comma)
                         : csv_quote::copy_and_scan(bytes.data(), len, p + mark, comma);
  if (!quote) {
    out.commit(len + mark);
    return;
  }
  // Written again, quoted, in pieces (csv_quote::kQuotePiece; room() may move the arena:
  // nothing above is kept).
  p = out.room(2);
  p[0] = '"';
  p[1] = '\'';
  out.commit(1 + mark);
  for (std::size_t at = 0; at < len; at += csv_quote::kQuotePiece) {
    const std::size_t n = std::min(len - at, csv_quote::kQuotePiece);
    char* segment = out.room(2 * n);
    out.commit(static_cast<std::size_t>(
        csv_quote::double_quotes(bytes.data() + at, n, segment) - segment));
  }
  out.room(1);
  out.put('"');
}

void expect_size(std::string_view bytes, std::size_t size) {
  if (bytes.size() != size) malformed("a field's size does not match its column type");
}

// jsonb's wire form: a version byte (1), then the JSON text.
std::string_view jsonb_text(std::string_view bytes) {
  if (bytes.empty() || bytes[0] != 1) malformed("unknown jsonb version");
  return bytes.substr(1);
}

}  // namespace

std::size_t format_pg_float8(double value, char* out) { return format_float(value, 15, out); }
std::size_t format_pg_float4(float value, char* out) { return format_float(value, 6, out); }

std::optional<PgWire> pg_wire_type(std::uint32_t oid) {
  switch (oid) {
    case 16: return PgWire::kBool;
    case 21: return PgWire::kInt2;
    case 23: return PgWire::kInt4;
    case 20: return PgWire::kInt8;
    case 26: return PgWire::kOid;
    case 700: return PgWire::kFloat4;
    case 701: return PgWire::kFloat8;
    case 1700: return PgWire::kNumeric;
    case 25: case 1043: case 1042: case 19: case 114: return PgWire::kText;
    case 3802: return PgWire::kJsonb;
    case 1082: return PgWire::kDate;
    case 1114: return PgWire::kTimestamp;
    case 1184: return PgWire::kTimestampTz;
    case 2950: return PgWire::kUuid;
    case 17: return PgWire::kBytea;
    default: return std::nullopt;
  }
}

namespace {

// The text of a non-NULL field of `type` (not kText: the callers copy text themselves).
template <typename Out>
void render_field(PgWire type, std::string_view bytes, Out& out) {
  Cursor cursor(bytes);
  // Fixed-size renderings are written straight into the batch's arena.
  auto put_int = [&](std::int64_t value) {
    char* start = out.room(24);
    out.commit(static_cast<std::size_t>(put_integer(start, value) - start));
  };
  auto put_formatted = [&](std::size_t max_size, auto format) {
    out.commit(format(out.room(max_size)));
  };
  switch (type) {
    case PgWire::kBool: expect_size(bytes, 1); out.add(bytes[0] ? "t" : "f"); return;
    case PgWire::kInt2: expect_size(bytes, 2); put_int(cursor.read<std::int16_t>()); return;
    case PgWire::kInt4: expect_size(bytes, 4); put_int(cursor.read<std::int32_t>()); return;
    case PgWire::kInt8: expect_size(bytes, 8); put_int(cursor.read<std::int64_t>()); return;
    case PgWire::kOid: expect_size(bytes, 4); put_int(cursor.read<std::uint32_t>()); return;
    case PgWire::kFloat4: {
      expect_size(bytes, 4);
      auto bits = cursor.read<std::uint32_t>();
      float value = 0;
      std::memcpy(&value, &bits, sizeof value);
      put_formatted(32, [value](char* p) { return format_pg_float4(value, p); });
      return;
    }
    case PgWire::kFloat8: {
      expect_size(bytes, 8);
      auto bits = cursor.read<std::uint64_t>();
      double value = 0;
      std::memcpy(&value, &bits, sizeof value);
      put_formatted(32, [value](char* p) { return format_pg_float8(value, p); });
      return;
    }
    case PgWire::kNumeric: put_numeric(cursor, out); return;
    case PgWire::kText: out.add(bytes); return;
    case PgWire::kJsonb: out.add(jsonb_text(bytes)); return;
    case PgWire::kDate: {
      expect_size(bytes, 4);
      const auto days = cursor.read<std::int32_t>();
      put_formatted(kMaxTimestampText, [days](char* p) { return format_date(days, p); });
      return;
    }
    case PgWire::kTimestamp:
    case PgWire::kTimestampTz: {
      expect_size(bytes, 8);
      const auto micros = cursor.read<std::int64_t>();
      const bool zone = type == PgWire::kTimestampTz;
      put_formatted(kMaxTimestampText,
                    [micros, zone](char* p) { return format_timestamp(micros, zone, p); });
      return;
    }
    case PgWire::kUuid: expect_size(bytes, 16); put_hex("", bytes, true, out); return;
    case PgWire::kBytea: put_hex("\\x", bytes, false, out); return;
  }
}

}  // namespace

bool PgBinaryDecoder::row_start(std::string_view message, std::size_t& at) {
  Cursor cursor(message);
  if (!header_read_) {
    if (cursor.take(kSignature.size()) != kSignature) malformed("bad signature");
    cursor.read<std::int32_t>();  // flags
    auto extension = cursor.read<std::int32_t>();
    if (extension < 0) malformed("header");
    cursor.take(static_cast<std::size_t>(extension));
    header_read_ = true;
    if (cursor.remaining() == 0) return false;
  }
  auto fields = cursor.read<std::int16_t>();
  if (fields == -1) return false;  // the trailer
  if (fields != static_cast<std::int16_t>(columns_.size())) {
    malformed("a row's field count does not match the columns");
  }
  at = message.size() - cursor.remaining();
  return true;
}

std::size_t PgBinaryDecoder::decode(std::string_view message, RowBatch& batch) {
  std::size_t at = 0;
  if (!row_start(message, at)) return 0;
  Cursor cursor(message.substr(at));
  for (PgWire type : columns_) {
    auto length = cursor.read<std::int32_t>();
    if (length == -1) {
      batch.add_null();
      continue;
    }
    if (length < 0) malformed("field length");
    const std::string_view bytes = cursor.take(static_cast<std::size_t>(length));
    if (type == PgWire::kText) {
      add_text(bytes, message.data() + message.size(), batch);
    } else {
      CellOut out{batch};
      render_field(type, bytes, out);
    }
  }
  if (cursor.remaining() != 0) malformed("trailing bytes after a row");
  return 1;
}

std::size_t PgBinaryDecoder::decode_csv_record(std::string_view message, RowBatch& batch) {
  std::size_t at = 0;
  if (!row_start(message, at)) return 0;
  Cursor cursor(message.substr(at));
  const std::size_t start = batch.piece_start();
  const char* const readable_end = message.data() + message.size();
  // Room for the usual row (text unquoted, numbers and dates up to 64 bytes each); a field
  // that needs more (quoted text, hex bytea, a numeric's long run of zeros) asks for it.
  RecordOut out(batch, message.size() + 64 * columns_.size() + 64);
  for (std::size_t col = 0; col < columns_.size(); ++col) {
    if (col != 0) out.put(',');
    const PgWire type = columns_[col];
    const bool guard = col < style_.guarded.size() && style_.guarded[col];
    auto length = cursor.read<std::int32_t>();
    if (length == -1) continue;  // NULL: an empty, unquoted field
    if (length < 0) malformed("field length");
    const std::string_view bytes = cursor.take(static_cast<std::size_t>(length));
    if (type == PgWire::kText) {
      put_csv_text(bytes, readable_end, guard, out);
    } else if (type == PgWire::kJsonb) {
      put_csv_text(jsonb_text(bytes), readable_end, guard, out);
    } else {
      // No rendering but text's is empty or holds a byte that needs quoting (digits, signs,
      // '.', ':', ' ', letters, '\\x'); "-infinity" of a date or timestamp is the one that
      // starts like a formula.
      render_field(type, bytes, out);
      char* const field = out.last_room();
      if (guard && out.position() != field && is_formula_start(*field)) {
        const auto size = static_cast<std::size_t>(out.position() - field);
        // room() left csv_quote::kSlack bytes after the rendering: the `'` fits.
        std::memmove(field + 1, field, size);
        *field = '\'';
        out.commit(1);
      }
    }
  }
  if (cursor.remaining() != 0) malformed("trailing bytes after a row");
  out.room(2);
  if (style_.crlf) out.put('\r');
  out.put('\n');
  out.finish();
  if (batch.piece_start() - start > RowBatch::kMaxCellBytes) {
    throw SourceError("a row's CSV text exceeds 1 GiB");
  }
  batch.end_pieces(start);
  return 1;
}

}  // namespace sluice
