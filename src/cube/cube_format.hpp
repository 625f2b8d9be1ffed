#pragma once

// The cube file format and manifests (DESIGN.md "Cubes"): pure functions over bytes, no I/O.
//
// A version of a cube is one file per combination of its path dimensions plus a manifest. A
// file is a header, then fixed-width records; record i (the mixed-radix index of the file
// dimensions' value positions, the last varying fastest) starts at data_offset + i * record_size.
//
//   header:  "SLUICUBE" | u32 format | u32 data_offset | u32 record_size | u32 schema bytes |
//            u64 records | u32 crc32 of the records | u32 crc32 of the header (this field 0) |
//            schema JSON (cube, version, path values, dictionaries, metric layouts)
//   record:  head, then `slots` entries of entry_size bytes. The head says which entries hold
//            data, and is all zero for "no data" (distinct from any value, zero included):
//            without body dimensions one byte (1 = data); with them either a bitmap of the body
//            keys present (ceil(body_keys / 8) bytes; the entries follow in key order) or a
//            count (1-2 bytes) with each entry starting with its body key's position, whichever
//            is smaller for the build.
//   entry:   a bit string (little-endian bit order), zero-padded to whole bytes:
//            [body key position (slot_bits, count layout only)] [a NULL bit per metric that
//            has NULLs in the build] then each metric: int64 / decimal: value - base in `bits`
//            bits (0 bits when every value is the same); float64: its 64 IEEE-754 bits; text:
//            length in 8 or 16 bits, then the bytes, padded to the longest value of the build.
//
// Widths come from the data of each build (the fewest bits that hold its range), so a cube of
// quantities 1..99 spends 7 bits per value, and records hold only the body keys present
// (`slots` = the most any record of the build has), never padding of rendered JSON.

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config.hpp"

namespace sluice {

inline constexpr std::string_view kCubeMagic = "SLUICUBE";
inline constexpr std::uint32_t kCubeFormat = 1;
inline constexpr std::size_t kCubeFixedHeader = 40;

// Malformed cube bytes or JSON (a file or manifest that is not what this version writes).
class CubeFormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

// A dimension's values in order, with the position of each.
struct CubeDictionary {
  std::string name;
  std::vector<std::string> values;

  // Fills the positions and each value's JSON string; call after `values` changed.
  void index();
  std::optional<std::uint32_t> find(std::string_view value) const {
    auto it = positions_.find(value);
    if (it == positions_.end()) return std::nullopt;
    return it->second;
  }
  const std::string& json(std::uint32_t position) const { return json_[position]; }

 private:
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> positions_;
  std::vector<std::string> json_;  // "\"value\"", escaped
};

struct CubeMetricLayout {
  std::string name;
  CubeMetricType type = CubeMetricType::kInt64;
  int scale = 0;                   // decimal
  std::uint32_t bits = 0;          // in an entry (text: its length field included)
  std::int64_t base = 0;           // int64 / decimal: stored = value - base
  std::uint32_t length_bytes = 0;  // text: its length field, 1 or 2 bytes
  int null_bit = -1;               // bit in the entry's NULL bits; -1: never NULL in this build
};

// One value of a metric as the builder holds it.
struct CubeValue {
  bool null = true;
  std::int64_t integer = 0;  // int64, decimal (scaled)
  double real = 0;           // float64
  std::string_view text;     // text
};

struct CubeSchema {
  std::vector<std::string> path;       // names of the path dimensions
  std::vector<CubeDictionary> file;    // record position in a file
  std::vector<CubeDictionary> body;    // entry keys within a record
  std::vector<CubeMetricLayout> metrics;
  enum class BodyLayout : std::uint8_t { kNone, kBitmap, kCount };
  std::uint32_t slots = 1;        // entries per record (1 without body dimensions)
  BodyLayout layout = BodyLayout::kNone;  // chosen by finish_layout()
  std::uint32_t head_bytes = 1;   // the record's head (presence byte, bitmap or count)
  std::uint32_t slot_bits = 0;    // kCount: an entry's body key position
  std::uint32_t null_bits = 0;    // NULL bits per entry
  std::uint32_t entry_size = 0;   // bytes
  std::uint32_t record_size = 0;
  std::uint64_t records = 1;      // per file
  std::uint64_t body_keys = 1;    // combinations of the body dimensions

  // Computes the layout above from the dictionaries, the metrics' bits, their NULL bits and
  // `slots`; throws CubeFormatError when a file or record would be too large to address.
  void finish_layout();

  // Writes a record at `at` (record_size bytes, zeroed by the caller) from its entries in body
  // key order: `slots_used[e]` is entry e's body key position (0 without body dimensions),
  // `values` holds metrics.size() values per entry.
  // REQUIRES: 1 <= slots_used.size() <= slots, positions strictly increasing, values in range.
  void write_record(char* at, std::span<const std::uint64_t> slots_used,
                    std::span<const CubeValue> values) const;
  // Appends the record's JSON to `out` ({"metric": value, ...}, nested maps keyed by the body
  // values with body dimensions); returns false, appending nothing, for "no data".
  // Throws CubeFormatError when the record is malformed (a count beyond `slots`, a body key out
  // of range, a text length beyond its field).
  bool render_record(std::string_view record, std::string& out) const;

  boost::json::object to_json() const;
  static CubeSchema from_json(const boost::json::value& json);  // throws CubeFormatError
};

// The metric value parsers of the build: text as the source renders it (SQLite, PostgreSQL)
// to the stored value; nothing when it is not one (or out of range).
std::optional<std::int64_t> parse_cube_int(std::string_view text);
// Exact: "123.456" at scale 2 is 12346 (half away from zero); "1e3" is accepted. Nothing beyond
// 18 digits once scaled (±999999999999999999: 9999999999999999.99 at scale 2).
std::optional<std::int64_t> parse_cube_decimal(std::string_view text, int scale);
std::optional<double> parse_cube_float(std::string_view text);  // finite values only
// The JSON of a scaled decimal: 12345 at scale 2 is 123.45; -5 at scale 2 is -0.05.
void append_decimal(std::string& out, std::int64_t scaled, int scale);

// The file header (see the top of this file).
struct CubeFileHeader {
  std::uint32_t data_offset = 0;
  std::uint32_t record_size = 0;
  std::uint64_t records = 0;
  std::uint32_t records_crc = 0;
  std::string schema_json;  // the bytes after the fixed part
};
std::string write_cube_file_header(std::string_view schema_json, std::uint32_t record_size,
                                   std::uint64_t records, std::uint32_t records_crc);
// Throws CubeFormatError naming what is wrong (magic, format, checksum, sizes).
CubeFileHeader parse_cube_file_header(std::string_view bytes);

// One file of a version.
struct CubeFileEntry {
  std::vector<std::string> path;  // the path dimensions' values
  std::string key;                // in the store; may belong to an earlier version (unchanged)
  std::uint64_t size = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t cells = 0;        // records with data
  std::uint64_t rows = 0;         // the query's rows laid out in it
  std::string sha256;             // of the whole file, hex
};

struct CubeManifest {
  std::string cube;
  std::string version;
  std::int64_t built_at_ms = 0;
  std::uint64_t rows = 0;         // rows the query returned
  CubeSchema schema;
  std::vector<CubeFileEntry> files;
};
std::string cube_manifest_json(const CubeManifest& manifest);
CubeManifest parse_cube_manifest(std::string_view json);  // throws CubeFormatError

// The one pointer a build switches: which version is current, and the versions it replaced
// that are kept (for readers still on them) until `keep_versions` after `retired_at_ms`.
struct CubeRetired {
  std::string version;
  std::string manifest_key;
  std::int64_t retired_at_ms = 0;
};
struct CubePointer {
  std::string version;
  std::string manifest_key;
  std::int64_t published_at_ms = 0;
  std::vector<CubeRetired> retired;
};
std::string cube_pointer_json(const CubePointer& pointer);
CubePointer parse_cube_pointer(std::string_view json);  // throws CubeFormatError

// Where a cube's objects live in the store (reserved keys, hidden from listings).
std::string cube_prefix(std::string_view cube);                 // ".sluice/cubes/{cube}/"
std::string cube_pointer_key(std::string_view cube);            // ... "current.json"
std::string cube_version_prefix(std::string_view cube, std::string_view version);
// A new version id: time-ordered ("v" + 12 hex digits of ms + 8 random hex digits).
std::string new_cube_version(std::int64_t now_ms);

}  // namespace sluice
