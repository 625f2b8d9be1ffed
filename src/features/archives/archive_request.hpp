#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "encode/zip_writer.hpp"

namespace sluice {

inline constexpr std::size_t kMaxArchiveEntries = 100'000;

// How entries are compressed: "store", "deflate", or "auto" (store what is already compressed,
// judged by the name's extension: jpg png mp4 zip pdf docx ...; deflate the rest).
enum class MethodChoice { kStore, kDeflate, kAuto };

struct RequestedEntry {
  std::string key;
  std::string path;  // the name wanted inside the archive (sanitised later); default: the key
};

// The body of POST /v1/archives, validated:
//   {"name": "album", "entries": [{"key": "album/a.jpg", "path": "a.jpg"}, ...], "method": "auto"}
//   {"name": "album", "prefix": "album/", "method": "store"}
struct ArchiveRequest {
  std::string name = "archive";  // download name without ".zip"
  std::vector<RequestedEntry> entries;
  std::optional<std::string> prefix;
  MethodChoice method = MethodChoice::kAuto;
};

// Parses and validates the body; throws ApiError 400 whose message names the field
// ("entries[3].key: ..."): malformed JSON, unknown fields, wrong types, both or neither of
// entries/prefix, invalid or reserved keys, more than kMaxArchiveEntries entries.
ArchiveRequest parse_archive_request(std::string_view body);

// The method for an entry named `name` under `choice`.
ZipMethod method_for(MethodChoice choice, std::string_view name);

}  // namespace sluice
