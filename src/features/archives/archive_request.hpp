#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/api_error.hpp"
#include "encode/zip_writer.hpp"

namespace sluice {

// The default of [archives] max_entries.
inline constexpr std::size_t kMaxArchiveEntries = 100'000;
// The longest lifetime a request may write (the configured maximum is checked on creation).
inline constexpr std::int64_t kMaxExpiresInSeconds = 366LL * 86'400;

// How entries are compressed: "store", "deflate", or "auto" (store what is already compressed,
// judged by the name's extension: jpg png mp4 zip pdf docx ...; deflate the rest).
enum class MethodChoice { kStore, kDeflate, kAuto };

struct RequestedEntry {
  std::string key;
  std::string path;  // the name wanted inside the archive (sanitised later); default: the key
};

// The body of POST /v1/archives, validated:
//   {"name": "album", "entries": [{"key": "album/a.jpg", "path": "a.jpg"}, ...], "method": "auto"}
//   {"name": "album", "prefix": "album/", "method": "store", "expires_in": "7d"}
//   {"prefix": "", "whole_store": true}
struct ArchiveRequest {
  std::string name = "archive";  // download name without ".zip"
  std::vector<RequestedEntry> entries;
  std::optional<std::string> prefix;
  MethodChoice method = MethodChoice::kAuto;
  // The archive's lifetime in seconds: a number, or text "90s" / "30m" / "24h" / "7d"
  // (core/duration_text.hpp); nothing: [archives] default_expires_in_s.
  std::optional<std::int64_t> expires_in;
  bool whole_store = false;  // "whole_store": true, required with "prefix": ""
};

// Parses and validates the body; throws ApiError 400 whose message names the field
// ("entries[3].key: ..."): malformed JSON, unknown fields, wrong types, both or neither of
// entries/prefix, invalid or reserved keys, an expires_in that is not 1 s to 366 days; 413
// too_many_entries for more than `max_entries` entries.
ArchiveRequest parse_archive_request(std::string_view body,
                                     std::size_t max_entries = kMaxArchiveEntries);

// What a parsed request may select, judged before the store is read — the one place where a
// selection's scope is decided (an authorization check on the prefix belongs here too):
// "prefix": "" (the whole store) only with "whole_store": true (else 422 whole_store_required,
// naming the flag), "whole_store" only with that prefix (400), and no empty "entries" (422
// empty_selection). Throws ApiError.
void check_archive_selection(const ArchiveRequest& request);

// The ApiError for a selection over `limit` entries (413 too_many_entries, naming max_entries).
ApiError too_many_entries(std::string_view what, std::size_t limit);

// The method for an entry named `name` under `choice`.
ZipMethod method_for(MethodChoice choice, std::string_view name);

}  // namespace sluice
