#include "sources/pg_binary_decoder.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

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
    std::make_unsigned_t<T> value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      value = static_cast<std::make_unsigned_t<T>>((value << 8) | static_cast<unsigned char>(bytes_[pos_ + i]));
    }
    pos_ += sizeof(T);
    return static_cast<T>(value);
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

// Civil date from days since 1970-01-01 (proleptic Gregorian; year 0 = 1 BC).
void civil_from_days(std::int64_t days, std::int64_t& year, int& month, int& day) {
  days += 719'468;
  std::int64_t era = (days >= 0 ? days : days - 146'096) / 146'097;
  auto day_of_era = static_cast<std::int64_t>(days - era * 146'097);
  std::int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  std::int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  std::int64_t mp = (5 * day_of_year + 2) / 153;
  day = static_cast<int>(day_of_year - (153 * mp + 2) / 5 + 1);
  month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  year = year_of_era + era * 400 + (month <= 2);
}

// "YYYY-MM-DD"; returns whether the year is BC (the caller appends " BC" where PG puts it).
char* put_date(char* out, std::int64_t days_since_2000, bool& bc) {
  std::int64_t year = 0;
  int month = 0;
  int day = 0;
  civil_from_days(days_since_2000 + kDaysFrom1970To2000, year, month, day);
  bc = year <= 0;
  out = put_padded(out, bc ? 1 - year : year, 4);
  *out++ = '-';
  out = put_padded(out, month, 2);
  *out++ = '-';
  return put_padded(out, day, 2);
}

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
  *out++ = ' ';
  out = put_padded(out, time / 3'600'000'000LL, 2);
  *out++ = ':';
  out = put_padded(out, time / 60'000'000 % 60, 2);
  *out++ = ':';
  out = put_padded(out, time / 1'000'000 % 60, 2);
  if (std::int64_t fraction = time % 1'000'000) {
    *out++ = '.';
    int width = 6;
    while (fraction % 10 == 0) {
      fraction /= 10;
      --width;
    }
    out = put_padded(out, fraction, width);
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
// display scale; rendered like numeric_out.
void add_numeric(Cursor cursor, RowBatch& batch) {
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
    batch.add_value(special);
    return;
  }
  std::string_view digits = cursor.take(static_cast<std::size_t>(ndigits) * 2);
  auto group = [&](int index) -> int {
    if (index < 0 || index >= ndigits) return 0;
    auto high = static_cast<unsigned char>(digits[static_cast<std::size_t>(index) * 2]);
    auto low = static_cast<unsigned char>(digits[static_cast<std::size_t>(index) * 2 + 1]);
    return (high << 8) | low;
  };
  std::size_t max_size = 8 + static_cast<std::size_t>(std::max(0, weight + 1)) * 4 + dscale + 4;
  char* out = batch.reserve_value(max_size);
  char* start = out;
  if (sign == 0x4000) *out++ = '-';
  if (weight < 0) {
    *out++ = '0';
  } else {
    out = std::to_chars(out, out + 8, group(0)).ptr;
    for (int i = 1; i <= weight; ++i) out = put_padded(out, group(i), 4);
  }
  if (dscale > 0) {
    *out++ = '.';
    int written = 0;
    for (int i = weight + 1; written < dscale; ++i) {
      char four[4];
      put_padded(four, group(i), 4);
      for (int k = 0; k < 4 && written < dscale; ++k, ++written) *out++ = four[k];
    }
  }
  batch.commit_value(static_cast<std::size_t>(out - start));
}

void add_hex(std::string_view prefix, std::string_view bytes, bool uuid, RowBatch& batch) {
  static constexpr char kHex[] = "0123456789abcdef";
  char* out = batch.reserve_value(prefix.size() + bytes.size() * 2 + 4);
  char* start = out;
  std::memcpy(out, prefix.data(), prefix.size());
  out += prefix.size();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (uuid && (i == 4 || i == 6 || i == 8 || i == 10)) *out++ = '-';
    auto byte = static_cast<unsigned char>(bytes[i]);
    *out++ = kHex[byte >> 4];
    *out++ = kHex[byte & 0xF];
  }
  batch.commit_value(static_cast<std::size_t>(out - start));
}

void expect_size(std::string_view bytes, std::size_t size) {
  if (bytes.size() != size) malformed("a field's size does not match its column type");
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

std::size_t PgBinaryDecoder::decode(std::string_view message, RowBatch& batch) {
  Cursor cursor(message);
  if (!header_read_) {
    if (cursor.take(kSignature.size()) != kSignature) malformed("bad signature");
    cursor.read<std::int32_t>();  // flags
    auto extension = cursor.read<std::int32_t>();
    if (extension < 0) malformed("header");
    cursor.take(static_cast<std::size_t>(extension));
    header_read_ = true;
    if (cursor.remaining() == 0) return 0;
  }
  auto fields = cursor.read<std::int16_t>();
  if (fields == -1) return 0;  // the trailer
  if (fields != static_cast<std::int16_t>(columns_.size())) {
    malformed("a row's field count does not match the columns");
  }
  for (PgWire type : columns_) {
    auto length = cursor.read<std::int32_t>();
    if (length == -1) {
      batch.add_null();
      continue;
    }
    if (length < 0) malformed("field length");
    decode_field(type, cursor.take(static_cast<std::size_t>(length)), batch);
  }
  if (cursor.remaining() != 0) malformed("trailing bytes after a row");
  return 1;
}

void PgBinaryDecoder::decode_field(PgWire type, std::string_view bytes, RowBatch& batch) const {
  Cursor cursor(bytes);
  char buffer[64];
  auto add_integer = [&](std::int64_t value) {
    batch.add_value(std::string_view(buffer, std::to_chars(buffer, buffer + 24, value).ptr - buffer));
  };
  switch (type) {
    case PgWire::kBool: expect_size(bytes, 1); batch.add_value(bytes[0] ? "t" : "f"); return;
    case PgWire::kInt2: expect_size(bytes, 2); add_integer(cursor.read<std::int16_t>()); return;
    case PgWire::kInt4: expect_size(bytes, 4); add_integer(cursor.read<std::int32_t>()); return;
    case PgWire::kInt8: expect_size(bytes, 8); add_integer(cursor.read<std::int64_t>()); return;
    case PgWire::kOid: expect_size(bytes, 4); add_integer(cursor.read<std::uint32_t>()); return;
    case PgWire::kFloat4: {
      expect_size(bytes, 4);
      auto bits = cursor.read<std::uint32_t>();
      float value = 0;
      std::memcpy(&value, &bits, sizeof value);
      batch.add_value(std::string_view(buffer, format_pg_float4(value, buffer)));
      return;
    }
    case PgWire::kFloat8: {
      expect_size(bytes, 8);
      auto bits = cursor.read<std::uint64_t>();
      double value = 0;
      std::memcpy(&value, &bits, sizeof value);
      batch.add_value(std::string_view(buffer, format_pg_float8(value, buffer)));
      return;
    }
    case PgWire::kNumeric: add_numeric(cursor, batch); return;
    case PgWire::kText: batch.add_value(bytes); return;
    case PgWire::kJsonb:
      if (bytes.empty() || bytes[0] != 1) malformed("unknown jsonb version");
      batch.add_value(bytes.substr(1));
      return;
    case PgWire::kDate:
      expect_size(bytes, 4);
      batch.add_value(std::string_view(buffer, format_date(cursor.read<std::int32_t>(), buffer)));
      return;
    case PgWire::kTimestamp:
    case PgWire::kTimestampTz:
      expect_size(bytes, 8);
      batch.add_value(std::string_view(
          buffer, format_timestamp(cursor.read<std::int64_t>(), type == PgWire::kTimestampTz, buffer)));
      return;
    case PgWire::kUuid: expect_size(bytes, 16); add_hex("", bytes, true, batch); return;
    case PgWire::kBytea: add_hex("\\x", bytes, false, batch); return;
  }
}

}  // namespace sluice
