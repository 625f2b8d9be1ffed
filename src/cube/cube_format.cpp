#include "cube/cube_format.hpp"

#include <bit>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/crc32.hpp"
#include "core/log.hpp"

namespace sluice {
namespace {

namespace json = boost::json;

static_assert(std::endian::native == std::endian::little, "cube files are little-endian");

__extension__ using Uint128 = unsigned __int128;

constexpr std::uint64_t kMaxRecordSize = 16u << 20;
constexpr std::uint64_t kMaxRecords = std::uint64_t{1} << 40;

void put_uint(char* at, std::uint64_t value, std::uint32_t bytes) {
  for (std::uint32_t i = 0; i < bytes; ++i) at[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

std::uint64_t get_uint(const char* at, std::uint32_t bytes) {
  std::uint64_t value = 0;
  for (std::uint32_t i = 0; i < bytes; ++i) {
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(at[i])) << (8 * i);
  }
  return value;
}

// Bit strings in little-endian bit order: bit i of the string is bit (i % 8) of byte i / 8.
void put_bits(char* base, std::uint64_t at, std::uint64_t value, std::uint32_t bits) {
  while (bits > 0) {
    const std::uint32_t shift = at % 8;
    const std::uint32_t take = std::min<std::uint32_t>(bits, 8 - shift);
    const auto mask = static_cast<unsigned>(((1u << take) - 1) << shift);
    auto& byte = reinterpret_cast<unsigned char&>(base[at / 8]);
    byte = static_cast<unsigned char>((byte & ~mask) | ((static_cast<unsigned>(value) << shift) & mask));
    value = take == 64 ? 0 : value >> take;
    at += take;
    bits -= take;
  }
}

std::uint64_t get_bits(const char* base, std::uint64_t at, std::uint32_t bits) {
  std::uint64_t value = 0;
  std::uint32_t done = 0;
  while (done < bits) {
    const std::uint32_t shift = at % 8;
    const std::uint32_t take = std::min<std::uint32_t>(bits - done, 8 - shift);
    const unsigned byte = static_cast<unsigned char>(base[at / 8]);
    value |= static_cast<std::uint64_t>((byte >> shift) & ((1u << take) - 1)) << done;
    at += take;
    done += take;
  }
  return value;
}

std::uint32_t bits_for(std::uint64_t max_value) {
  return max_value == 0 ? 0 : static_cast<std::uint32_t>(std::bit_width(max_value));
}

template <typename T>
void append_number(std::string& out, T value) {
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  out.append(text, end);
}

std::string_view type_name(CubeMetricType type) {
  switch (type) {
    case CubeMetricType::kInt64: return "int64";
    case CubeMetricType::kFloat64: return "float64";
    case CubeMetricType::kDecimal: return "decimal";
    case CubeMetricType::kText: return "text";
  }
  return "int64";
}

// Typed reads of parsed JSON that fail with CubeFormatError naming the member.
const json::object& object_of(const json::value& value, std::string_view what) {
  if (!value.is_object()) throw CubeFormatError(std::string(what) + ": expected an object");
  return value.get_object();
}
const json::value& member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) throw CubeFormatError("missing member \"" + std::string(key) + "\"");
  return *value;
}
std::string string_member(const json::object& object, std::string_view key) {
  const json::value& value = member(object, key);
  if (!value.is_string()) throw CubeFormatError("\"" + std::string(key) + "\": expected a string");
  return std::string(value.get_string());
}
std::int64_t int_member(const json::object& object, std::string_view key, std::int64_t min,
                        std::int64_t max) {
  const json::value& value = member(object, key);
  std::int64_t number = 0;
  if (value.is_int64()) {
    number = value.get_int64();
  } else if (value.is_uint64() && value.get_uint64() <= static_cast<std::uint64_t>(max)) {
    number = static_cast<std::int64_t>(value.get_uint64());
  } else {
    throw CubeFormatError("\"" + std::string(key) + "\": expected an integer");
  }
  if (number < min || number > max) {
    throw CubeFormatError("\"" + std::string(key) + "\": out of range");
  }
  return number;
}
const json::array& array_member(const json::object& object, std::string_view key) {
  const json::value& value = member(object, key);
  if (!value.is_array()) throw CubeFormatError("\"" + std::string(key) + "\": expected an array");
  return value.get_array();
}
std::vector<std::string> strings_of(const json::array& array, std::string_view what) {
  std::vector<std::string> out;
  out.reserve(array.size());
  for (const json::value& item : array) {
    if (!item.is_string()) throw CubeFormatError(std::string(what) + ": expected strings");
    out.emplace_back(item.get_string());
  }
  return out;
}
json::array json_strings(const std::vector<std::string>& values) {
  json::array out;
  out.reserve(values.size());
  for (const std::string& value : values) out.emplace_back(value);
  return out;
}
json::value parse_json(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec) throw CubeFormatError(std::string(what) + " is not JSON: " + ec.message());
  return value;
}

json::array dictionaries_json(const std::vector<CubeDictionary>& dictionaries) {
  json::array out;
  for (const CubeDictionary& dictionary : dictionaries) {
    out.emplace_back(json::object{{"name", dictionary.name}, {"values", json_strings(dictionary.values)}});
  }
  return out;
}
std::vector<CubeDictionary> dictionaries_from(const json::array& array) {
  std::vector<CubeDictionary> out;
  for (const json::value& item : array) {
    const json::object& object = object_of(item, "dimension");
    CubeDictionary dictionary;
    dictionary.name = string_member(object, "name");
    dictionary.values = strings_of(array_member(object, "values"), "values");
    if (dictionary.values.empty()) throw CubeFormatError("dimension without values");
    dictionary.index();
    if (dictionary.find(dictionary.values.back()) != dictionary.values.size() - 1) {
      throw CubeFormatError("duplicate values in dimension " + dictionary.name);
    }
    out.push_back(std::move(dictionary));
  }
  return out;
}

std::uint64_t product_of(const std::vector<CubeDictionary>& dictionaries, std::uint64_t limit) {
  std::uint64_t product = 1;
  for (const CubeDictionary& dictionary : dictionaries) {
    if (dictionary.values.empty() || product > limit / dictionary.values.size()) {
      throw CubeFormatError("too many combinations of the dimensions' values (more than " +
                            std::to_string(limit) + ")");
    }
    product *= dictionary.values.size();
  }
  return product;
}

// The digits of a mixed-radix position over `dictionaries` (the first is most significant).
void digits_of(std::uint64_t position, const std::vector<CubeDictionary>& dictionaries,
               std::vector<std::uint32_t>& digits) {
  digits.resize(dictionaries.size());
  for (std::size_t i = dictionaries.size(); i-- > 0;) {
    const std::uint64_t radix = dictionaries[i].values.size();
    digits[i] = static_cast<std::uint32_t>(position % radix);
    position /= radix;
  }
}

}  // namespace

void CubeDictionary::index() {
  positions_.clear();
  json_.clear();
  positions_.reserve(values.size());
  json_.reserve(values.size());
  for (std::uint32_t i = 0; i < values.size(); ++i) {
    positions_.emplace(values[i], i);
    std::string quoted;
    append_json_string(quoted, values[i]);
    json_.push_back(std::move(quoted));
  }
}

void CubeSchema::finish_layout() {
  records = product_of(file, kMaxRecords);
  body_keys = product_of(body, std::numeric_limits<std::uint32_t>::max());
  if (body.empty()) slots = 1;
  if (slots == 0 || slots > 0xffff || slots > body_keys) {
    throw CubeFormatError("entries per record out of range: " + std::to_string(slots));
  }
  null_bits = 0;
  std::uint64_t value_bits = 0;
  for (const CubeMetricLayout& metric : metrics) {
    if (metric.null_bit >= 0) ++null_bits;
    value_bits += metric.bits;
  }
  for (const CubeMetricLayout& metric : metrics) {
    if (metric.null_bit >= static_cast<int>(null_bits)) throw CubeFormatError("NULL bit out of range");
  }
  auto entry_bytes = [&](std::uint64_t extra_bits) { return (extra_bits + null_bits + value_bits + 7) / 8; };
  std::uint64_t record = 0;
  if (body.empty()) {
    layout = BodyLayout::kNone;
    head_bytes = 1;
    slot_bits = 0;
    record = head_bytes + entry_bytes(0);
  } else {
    // A bitmap of the body keys, or a count and a position per entry: the smaller record.
    const std::uint64_t bitmap = (body_keys + 7) / 8 + slots * entry_bytes(0);
    const std::uint32_t count_bytes = slots < 0x100 ? 1 : 2;
    const std::uint32_t position_bits = bits_for(body_keys - 1);
    const std::uint64_t counted = count_bytes + slots * entry_bytes(position_bits);
    if (bitmap <= counted) {
      layout = BodyLayout::kBitmap;
      head_bytes = static_cast<std::uint32_t>((body_keys + 7) / 8);
      slot_bits = 0;
      record = bitmap;
    } else {
      layout = BodyLayout::kCount;
      head_bytes = count_bytes;
      slot_bits = position_bits;
      record = counted;
    }
  }
  if (record > kMaxRecordSize) {
    throw CubeFormatError("a record would take " + std::to_string(record) + " bytes (at most " +
                          std::to_string(kMaxRecordSize) + ")");
  }
  entry_size = static_cast<std::uint32_t>(entry_bytes(slot_bits));
  record_size = static_cast<std::uint32_t>(record);
}

void CubeSchema::write_record(char* at, std::span<const std::uint64_t> slots_used,
                              std::span<const CubeValue> values) const {
  switch (layout) {
    case BodyLayout::kNone: at[0] = 1; break;
    case BodyLayout::kBitmap:
      for (std::uint64_t slot : slots_used) at[slot / 8] = static_cast<char>(at[slot / 8] | (1 << (slot % 8)));
      break;
    case BodyLayout::kCount: put_uint(at, slots_used.size(), head_bytes); break;
  }
  char* entry = at + head_bytes;
  for (std::size_t e = 0; e < slots_used.size(); ++e, entry += entry_size) {
    std::uint64_t bit = 0;
    put_bits(entry, bit, slots_used[e], slot_bits);
    bit += slot_bits;
    const std::uint64_t nulls_at = bit;
    bit += null_bits;
    for (std::size_t m = 0; m < metrics.size(); ++m) {
      const CubeMetricLayout& metric = metrics[m];
      const CubeValue& value = values[e * metrics.size() + m];
      if (value.null) {
        put_bits(entry, nulls_at + static_cast<std::uint64_t>(metric.null_bit), 1, 1);
      } else {
        switch (metric.type) {
          case CubeMetricType::kInt64:
          case CubeMetricType::kDecimal:
            put_bits(entry, bit,
                     static_cast<std::uint64_t>(value.integer) - static_cast<std::uint64_t>(metric.base),
                     metric.bits);
            break;
          case CubeMetricType::kFloat64:
            put_bits(entry, bit, std::bit_cast<std::uint64_t>(value.real), 64);
            break;
          case CubeMetricType::kText: {
            put_bits(entry, bit, value.text.size(), metric.length_bytes * 8);
            std::uint64_t byte_at = bit + metric.length_bytes * 8;
            for (char c : value.text) {
              put_bits(entry, byte_at, static_cast<unsigned char>(c), 8);
              byte_at += 8;
            }
            break;
          }
        }
      }
      bit += metric.bits;
    }
  }
}

bool CubeSchema::render_record(std::string_view record, std::string& out) const {
  if (record.size() != record_size) throw CubeFormatError("record of the wrong size");
  const char* head = record.data();
  std::uint64_t count = 0;
  switch (layout) {
    case BodyLayout::kNone:
      if (head[0] == 0) return false;
      if (head[0] != 1) throw CubeFormatError("record with an invalid presence byte");
      count = 1;
      break;
    case BodyLayout::kBitmap:
      for (std::uint32_t i = 0; i < head_bytes; ++i) count += std::popcount(static_cast<unsigned char>(head[i]));
      if (body_keys % 8 != 0 && (static_cast<unsigned char>(head[head_bytes - 1]) >> (body_keys % 8)) != 0) {
        throw CubeFormatError("record with body keys out of range");
      }
      break;
    case BodyLayout::kCount: count = get_uint(head, head_bytes); break;
  }
  if (count == 0) return false;
  if (count > slots) throw CubeFormatError("record with more entries than slots");
  auto render_entry = [&](const char* entry) {
    std::uint64_t bit = slot_bits;
    const std::uint64_t nulls_at = bit;
    bit += null_bits;
    out.push_back('{');
    for (std::size_t m = 0; m < metrics.size(); ++m) {
      const CubeMetricLayout& metric = metrics[m];
      if (m != 0) out.push_back(',');
      out.push_back('"');
      out += metric.name;
      out += "\":";
      if (metric.null_bit >= 0 && get_bits(entry, nulls_at + static_cast<std::uint64_t>(metric.null_bit), 1) != 0) {
        out += "null";
      } else {
        switch (metric.type) {
          case CubeMetricType::kInt64:
            append_number(out, static_cast<std::int64_t>(static_cast<std::uint64_t>(metric.base) +
                                                         get_bits(entry, bit, metric.bits)));
            break;
          case CubeMetricType::kDecimal:
            append_decimal(out,
                           static_cast<std::int64_t>(static_cast<std::uint64_t>(metric.base) +
                                                     get_bits(entry, bit, metric.bits)),
                           metric.scale);
            break;
          case CubeMetricType::kFloat64: {
            const auto real = std::bit_cast<double>(get_bits(entry, bit, 64));
            if (!std::isfinite(real)) throw CubeFormatError("a float64 value is not finite");
            append_number(out, real);
            break;
          }
          case CubeMetricType::kText: {
            const std::uint64_t length = get_bits(entry, bit, metric.length_bytes * 8);
            if (length > metric.bits / 8 - metric.length_bytes) throw CubeFormatError("text too long");
            std::string text(length, '\0');
            for (std::uint64_t i = 0; i < length; ++i) {
              text[i] = static_cast<char>(get_bits(entry, bit + metric.length_bytes * 8 + i * 8, 8));
            }
            append_json_string(out, text);
            break;
          }
        }
      }
      bit += metric.bits;
    }
    out.push_back('}');
  };
  const char* entries = head + head_bytes;
  if (layout == BodyLayout::kNone) {
    render_entry(entries);
    return true;
  }
  // Entries are in body key order: a map per body dimension, nested.
  const std::size_t levels = body.size();
  std::vector<std::uint32_t> digits;
  std::vector<std::uint32_t> previous;
  std::uint64_t last_slot = 0;
  std::uint64_t next_bit = 0;  // kBitmap: where to look for the next key
  out.push_back('{');
  for (std::uint64_t e = 0; e < count; ++e) {
    const char* entry = entries + e * entry_size;
    std::uint64_t slot = 0;
    if (layout == BodyLayout::kCount) {
      slot = get_bits(entry, 0, slot_bits);
    } else {
      while (get_bits(head, next_bit, 1) == 0) ++next_bit;  // count = the bits set
      slot = next_bit++;
    }
    if (slot >= body_keys || (e != 0 && slot <= last_slot)) {
      throw CubeFormatError("record with body keys out of order");
    }
    last_slot = slot;
    digits_of(slot, body, digits);
    std::size_t from = 0;
    if (e != 0) {
      while (digits[from] == previous[from]) ++from;  // slot > last_slot: some digit differs
      for (std::size_t level = from; level + 1 < levels; ++level) out.push_back('}');
      out.push_back(',');
    }
    for (std::size_t level = from; level < levels; ++level) {
      out += body[level].json(digits[level]);
      out.push_back(':');
      if (level + 1 < levels) out.push_back('{');
    }
    render_entry(entry);
    previous = digits;
  }
  for (std::size_t level = 0; level + 1 < levels; ++level) out.push_back('}');
  out.push_back('}');
  return true;
}

json::object CubeSchema::to_json() const {
  json::array metric_list;
  for (const CubeMetricLayout& metric : metrics) {
    json::object item{{"name", metric.name}, {"type", type_name(metric.type)}, {"bits", metric.bits}};
    if (metric.type == CubeMetricType::kDecimal) item["scale"] = metric.scale;
    if (metric.type == CubeMetricType::kInt64 || metric.type == CubeMetricType::kDecimal) {
      item["base"] = metric.base;
    }
    if (metric.type == CubeMetricType::kText) item["length_bytes"] = metric.length_bytes;
    if (metric.null_bit >= 0) item["null_bit"] = metric.null_bit;
    metric_list.push_back(std::move(item));
  }
  return json::object{{"path", json_strings(path)},
                      {"file", dictionaries_json(file)},
                      {"body", dictionaries_json(body)},
                      {"metrics", std::move(metric_list)},
                      {"slots", slots},
                      {"record_size", record_size},
                      {"records", records}};
}

CubeSchema CubeSchema::from_json(const json::value& value) {
  const json::object& object = object_of(value, "schema");
  CubeSchema schema;
  schema.path = strings_of(array_member(object, "path"), "path");
  schema.file = dictionaries_from(array_member(object, "file"));
  schema.body = dictionaries_from(array_member(object, "body"));
  for (const json::value& item : array_member(object, "metrics")) {
    const json::object& m = object_of(item, "metric");
    CubeMetricLayout metric;
    metric.name = string_member(m, "name");
    const std::string type = string_member(m, "type");
    if (type == "int64") {
      metric.type = CubeMetricType::kInt64;
    } else if (type == "float64") {
      metric.type = CubeMetricType::kFloat64;
    } else if (type == "decimal") {
      metric.type = CubeMetricType::kDecimal;
    } else if (type == "text") {
      metric.type = CubeMetricType::kText;
    } else {
      throw CubeFormatError("unknown metric type " + type);
    }
    metric.bits = static_cast<std::uint32_t>(int_member(m, "bits", 0, 8 * (4096 + 2)));
    switch (metric.type) {
      case CubeMetricType::kDecimal:
        metric.scale = static_cast<int>(int_member(m, "scale", 0, 18));
        [[fallthrough]];
      case CubeMetricType::kInt64:
        metric.base = int_member(m, "base", std::numeric_limits<std::int64_t>::min(),
                                 std::numeric_limits<std::int64_t>::max());
        if (metric.bits > 64) throw CubeFormatError("integer wider than 64 bits");
        break;
      case CubeMetricType::kFloat64:
        if (metric.bits != 64) throw CubeFormatError("float64 not 64 bits wide");
        break;
      case CubeMetricType::kText:
        metric.length_bytes = static_cast<std::uint32_t>(int_member(m, "length_bytes", 1, 2));
        if (metric.bits % 8 != 0 || metric.bits < 8 * metric.length_bytes ||
            metric.bits / 8 - metric.length_bytes >= (1u << (8 * metric.length_bytes))) {
          throw CubeFormatError("text field of an invalid width");
        }
        break;
    }
    if (m.contains("null_bit")) metric.null_bit = static_cast<int>(int_member(m, "null_bit", 0, 0xffff));
    schema.metrics.push_back(std::move(metric));
  }
  if (schema.metrics.empty()) throw CubeFormatError("no metrics");
  std::vector<bool> bits(schema.metrics.size(), false);
  for (const CubeMetricLayout& metric : schema.metrics) {
    if (metric.null_bit < 0) continue;
    if (static_cast<std::size_t>(metric.null_bit) >= bits.size() || bits[metric.null_bit]) {
      throw CubeFormatError("NULL bits overlap");
    }
    bits[metric.null_bit] = true;
  }
  schema.slots = static_cast<std::uint32_t>(int_member(object, "slots", 1, 0xffff));
  schema.finish_layout();
  if (static_cast<std::int64_t>(schema.record_size) != int_member(object, "record_size", 0, std::numeric_limits<std::int64_t>::max()) ||
      static_cast<std::int64_t>(schema.records) != int_member(object, "records", 0, std::numeric_limits<std::int64_t>::max())) {
    throw CubeFormatError("record size or count do not match the layout");
  }
  return schema;
}

std::optional<std::int64_t> parse_cube_int(std::string_view text) {
  // An integral float ("3.0", SQLite's REAL sums of integers) is the integer.
  if (const std::size_t point = text.find('.'); point != std::string_view::npos &&
      point + 1 < text.size() && text.find_first_not_of('0', point + 1) == std::string_view::npos) {
    text = text.substr(0, point);
  }
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) return value;
  return std::nullopt;
}

std::optional<std::int64_t> parse_cube_decimal(std::string_view text, int scale) {
  std::size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) negative = text[i++] == '-';
  // Digits as one integer and the position of the point; __int128 holds any overflow check.
  Uint128 digits = 0;
  int fraction = 0;  // digits after the point
  bool any = false;
  bool point = false;
  int dropped = 0;  // digits beyond what 128 bits hold (they only matter for rounding)
  int round_digit = -1;
  constexpr Uint128 kLimit = static_cast<Uint128>(1) << 120;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.' && !point) {
      point = true;
      continue;
    }
    if (c < '0' || c > '9') break;
    any = true;
    if (digits < kLimit / 10) {
      digits = digits * 10 + static_cast<unsigned>(c - '0');
      if (point) ++fraction;
    } else {
      if (!point) ++dropped;
      else if (round_digit < 0) round_digit = c - '0';
    }
  }
  if (!any) return std::nullopt;
  int exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    auto [end, ec] = std::from_chars(text.data() + i + (i < text.size() && text[i] == '+' ? 1 : 0),
                                     text.data() + text.size(), exponent);
    if (ec != std::errc() || end != text.data() + text.size() || exponent > 400 || exponent < -400) {
      return std::nullopt;
    }
    i = text.size();
  }
  if (i != text.size()) return std::nullopt;
  // value = digits * 10^(dropped + exponent - fraction); wanted: value * 10^scale.
  int shift = dropped + exponent - fraction + scale;
  bool round_up = false;
  if (shift < 0) {
    while (shift < -1 && digits != 0) {
      digits /= 10;
      ++shift;
    }
    if (shift < -1) digits = 0;
    if (shift == -1) {
      round_up = digits % 10 >= 5;
      digits /= 10;
    }
    shift = 0;
  } else if (shift == 0 && round_digit >= 5) {
    round_up = true;
  }
  for (; shift > 0; --shift) {
    if (digits > kLimit / 10) return std::nullopt;
    digits *= 10;
  }
  if (round_up) ++digits;
  constexpr auto kMax = static_cast<Uint128>(999'999'999'999'999'999);  // 18 digits
  if (digits > kMax) return std::nullopt;
  const auto magnitude = static_cast<std::int64_t>(digits);
  return negative ? -magnitude : magnitude;
}

std::optional<double> parse_cube_float(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

void append_decimal(std::string& out, std::int64_t scaled, int scale) {
  char digits[24];
  const bool negative = scaled < 0;
  std::uint64_t magnitude = negative ? 0 - static_cast<std::uint64_t>(scaled) : static_cast<std::uint64_t>(scaled);
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, magnitude);
  std::string_view text(digits, static_cast<std::size_t>(end - digits));
  if (negative) out.push_back('-');
  if (scale == 0) {
    out += text;
    return;
  }
  const auto places = static_cast<std::size_t>(scale);
  if (text.size() <= places) {
    out += "0.";
    out.append(places - text.size(), '0');
    out += text;
  } else {
    out += text.substr(0, text.size() - places);
    out.push_back('.');
    out += text.substr(text.size() - places);
  }
}

std::string write_cube_file_header(std::string_view schema_json, std::uint32_t record_size,
                                   std::uint64_t records, std::uint32_t records_crc) {
  std::string header(kCubeFixedHeader, '\0');
  std::memcpy(header.data(), kCubeMagic.data(), kCubeMagic.size());
  put_uint(header.data() + 8, kCubeFormat, 4);
  put_uint(header.data() + 12, kCubeFixedHeader + schema_json.size(), 4);
  put_uint(header.data() + 16, record_size, 4);
  put_uint(header.data() + 20, schema_json.size(), 4);
  put_uint(header.data() + 24, records, 8);
  put_uint(header.data() + 32, records_crc, 4);
  header += schema_json;
  put_uint(header.data() + 36, crc32_update(0, header), 4);
  return header;
}

CubeFileHeader parse_cube_file_header(std::string_view bytes) {
  if (bytes.size() < kCubeFixedHeader || bytes.substr(0, kCubeMagic.size()) != kCubeMagic) {
    throw CubeFormatError("not a cube file (no SLUICUBE header)");
  }
  const char* p = bytes.data();
  if (get_uint(p + 8, 4) != kCubeFormat) {
    throw CubeFormatError("cube file format " + std::to_string(get_uint(p + 8, 4)) +
                          " (this version reads format " + std::to_string(kCubeFormat) + ")");
  }
  CubeFileHeader header;
  header.data_offset = static_cast<std::uint32_t>(get_uint(p + 12, 4));
  header.record_size = static_cast<std::uint32_t>(get_uint(p + 16, 4));
  const std::uint64_t schema_bytes = get_uint(p + 20, 4);
  header.records = get_uint(p + 24, 8);
  header.records_crc = static_cast<std::uint32_t>(get_uint(p + 32, 4));
  if (header.data_offset != kCubeFixedHeader + schema_bytes || bytes.size() < header.data_offset) {
    throw CubeFormatError("cube header: inconsistent or truncated (" + std::to_string(bytes.size()) +
                          " bytes)");
  }
  std::string copy(bytes.substr(0, header.data_offset));
  put_uint(copy.data() + 36, 0, 4);
  if (crc32_update(0, copy) != get_uint(p + 36, 4)) throw CubeFormatError("cube header: checksum mismatch");
  header.schema_json = copy.substr(kCubeFixedHeader);
  return header;
}

std::string cube_manifest_json(const CubeManifest& manifest) {
  json::array files;
  files.reserve(manifest.files.size());
  for (const CubeFileEntry& file : manifest.files) {
    files.push_back(json::object{{"path", json_strings(file.path)},
                                 {"key", file.key},
                                 {"size", file.size},
                                 {"data_offset", file.data_offset},
                                 {"cells", file.cells},
                                 {"rows", file.rows},
                                 {"sha256", file.sha256}});
  }
  return json::serialize(json::object{{"format", kCubeFormat},
                                      {"cube", manifest.cube},
                                      {"version", manifest.version},
                                      {"built_at_ms", manifest.built_at_ms},
                                      {"rows", manifest.rows},
                                      {"schema", manifest.schema.to_json()},
                                      {"files", std::move(files)}});
}

CubeManifest parse_cube_manifest(std::string_view text) {
  const json::value value = parse_json(text, "cube manifest");
  const json::object& object = object_of(value, "cube manifest");
  if (int_member(object, "format", 0, std::numeric_limits<std::int64_t>::max()) != kCubeFormat) {
    throw CubeFormatError("cube manifest of another format");
  }
  CubeManifest manifest;
  manifest.cube = string_member(object, "cube");
  manifest.version = string_member(object, "version");
  manifest.built_at_ms = int_member(object, "built_at_ms", 0, std::numeric_limits<std::int64_t>::max());
  manifest.rows = static_cast<std::uint64_t>(int_member(object, "rows", 0, std::numeric_limits<std::int64_t>::max()));
  manifest.schema = CubeSchema::from_json(member(object, "schema"));
  for (const json::value& item : array_member(object, "files")) {
    const json::object& f = object_of(item, "file");
    CubeFileEntry file;
    file.path = strings_of(array_member(f, "path"), "path");
    if (file.path.size() != manifest.schema.path.size()) {
      throw CubeFormatError("a file's path has the wrong number of values");
    }
    file.key = string_member(f, "key");
    file.size = static_cast<std::uint64_t>(int_member(f, "size", 0, std::numeric_limits<std::int64_t>::max()));
    file.data_offset = static_cast<std::uint64_t>(int_member(f, "data_offset", 0, std::numeric_limits<std::int64_t>::max()));
    file.cells = static_cast<std::uint64_t>(int_member(f, "cells", 0, std::numeric_limits<std::int64_t>::max()));
    file.rows = static_cast<std::uint64_t>(int_member(f, "rows", 0, std::numeric_limits<std::int64_t>::max()));
    file.sha256 = string_member(f, "sha256");
    if (file.size != file.data_offset + manifest.schema.records * manifest.schema.record_size) {
      throw CubeFormatError("a file's size does not match its records");
    }
    manifest.files.push_back(std::move(file));
  }
  return manifest;
}

std::string cube_pointer_json(const CubePointer& pointer) {
  json::array retired;
  for (const CubeRetired& old : pointer.retired) {
    retired.push_back(json::object{{"version", old.version},
                                   {"manifest", old.manifest_key},
                                   {"retired_at_ms", old.retired_at_ms}});
  }
  return json::serialize(json::object{{"format", kCubeFormat},
                                      {"version", pointer.version},
                                      {"manifest", pointer.manifest_key},
                                      {"published_at_ms", pointer.published_at_ms},
                                      {"retired", std::move(retired)}});
}

CubePointer parse_cube_pointer(std::string_view text) {
  const json::value value = parse_json(text, "cube pointer");
  const json::object& object = object_of(value, "cube pointer");
  if (int_member(object, "format", 0, std::numeric_limits<std::int64_t>::max()) != kCubeFormat) {
    throw CubeFormatError("cube pointer of another format");
  }
  CubePointer pointer;
  pointer.version = string_member(object, "version");
  pointer.manifest_key = string_member(object, "manifest");
  pointer.published_at_ms = int_member(object, "published_at_ms", 0, std::numeric_limits<std::int64_t>::max());
  for (const json::value& item : array_member(object, "retired")) {
    const json::object& r = object_of(item, "retired version");
    pointer.retired.push_back(CubeRetired{string_member(r, "version"), string_member(r, "manifest"),
                                          int_member(r, "retired_at_ms", 0, std::numeric_limits<std::int64_t>::max())});
  }
  return pointer;
}

std::string cube_prefix(std::string_view cube) { return ".sluice/cubes/" + std::string(cube) + "/"; }

std::string cube_pointer_key(std::string_view cube) { return cube_prefix(cube) + "current.json"; }

std::string cube_version_prefix(std::string_view cube, std::string_view version) {
  return cube_prefix(cube) + std::string(version) + "/";
}

std::string new_cube_version(std::int64_t now_ms) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  char text[32];
  const int length = std::snprintf(text, sizeof text, "v%012llx%08x",
                                   static_cast<unsigned long long>(now_ms) & 0xffffffffffffULL,
                                   static_cast<unsigned>(random() & 0xffffffffu));
  return {text, static_cast<std::size_t>(length)};
}

}  // namespace sluice
