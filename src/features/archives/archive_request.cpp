#include "features/archives/archive_request.hpp"

#include <array>
#include <boost/json.hpp>

#include "core/api_error.hpp"
#include "core/duration_text.hpp"
#include "core/utf8.hpp"
#include "features/archives/zip_names.hpp"
#include "storage/object_key.hpp"

namespace sluice {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxNameBytes = 200;

[[noreturn]] void reject(const std::string& field, const std::string& problem) {
  throw ApiError(400, "invalid_archive", field + ": " + problem);
}

// An unknown member's name as the message names it: `""` for the empty name, which would
// otherwise leave the message naming no field (": unknown field").
std::string member_name(std::string_view name) {
  return name.empty() ? std::string("\"\"") : shown_text(name, 200);
}

const json::string& string_field(const json::value& value, const std::string& field) {
  if (!value.is_string()) reject(field, "must be a string");
  return value.get_string();
}

std::string checked_key(const json::value& value, const std::string& field) {
  std::string key(string_field(value, field));
  if (auto problem = key_problem(key)) reject(field, "the key '" + shown_text(key, 200) + "' " + *problem);
  if (is_reserved_key(key)) reject(field, "keys under '.sluice/' are reserved");
  return key;
}

std::string download_name(const json::value& value) {
  std::string name(string_field(value, "name"));
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".zip") == 0) name.resize(name.size() - 4);
  if (name.empty() || name.size() > kMaxNameBytes) {
    reject("name", "must be 1 to " + std::to_string(kMaxNameBytes) + " bytes");
  }
  for (char& c : name) {
    if (c == '/' || c == '\\') c = '_';
  }
  std::string safe = sanitize_zip_path(name, "archive");
  if (safe.size() > kMaxNameBytes) {
    // A device name's leading '_' ("CON.…" → "_CON.…") can take it one byte past the limit:
    // cut at a character boundary, then make the end safe again (no trailing dot or space).
    std::size_t cut = kMaxNameBytes;
    while (cut > 0 && (static_cast<unsigned char>(safe[cut]) & 0xC0) == 0x80) --cut;
    safe = sanitize_zip_path(safe.substr(0, cut), "archive");
  }
  return safe;
}

MethodChoice parse_method(const json::value& value) {
  const json::string& text = string_field(value, "method");
  if (text == "store") return MethodChoice::kStore;
  if (text == "deflate") return MethodChoice::kDeflate;
  if (text == "auto") return MethodChoice::kAuto;
  reject("method", "must be \"store\", \"deflate\" or \"auto\"");
}

std::int64_t parse_expires_in(const json::value& value) {
  std::optional<std::int64_t> seconds;
  if (value.is_int64()) {
    seconds = value.get_int64();
  } else if (value.is_uint64()) {
    seconds = kMaxExpiresInSeconds + 1;  // beyond int64: out of range below
  } else if (value.is_string()) {
    seconds = parse_duration_text(value.get_string());
    if (!seconds) {
      reject("expires_in",
             "expected seconds (a number) or text such as \"90s\", \"30m\", \"24h\", \"7d\"");
    }
  } else {
    reject("expires_in", "expected seconds (a number) or text such as \"24h\" or \"7d\"");
  }
  if (*seconds < 1 || *seconds > kMaxExpiresInSeconds) {
    reject("expires_in", "expected 1 to " + std::to_string(kMaxExpiresInSeconds) + " seconds");
  }
  return *seconds;
}

std::vector<RequestedEntry> parse_entries(const json::value& value, std::size_t max_entries) {
  if (!value.is_array()) reject("entries", "must be an array of {\"key\", \"path\"} objects");
  const json::array& array = value.get_array();
  if (array.size() > max_entries) throw too_many_entries("entries", max_entries);
  std::vector<RequestedEntry> entries;
  entries.reserve(array.size());
  for (std::size_t i = 0; i < array.size(); ++i) {
    const std::string at = "entries[" + std::to_string(i) + "]";
    if (!array[i].is_object()) reject(at, "must be an object with \"key\" and optional \"path\"");
    const json::object& object = array[i].get_object();
    RequestedEntry entry;
    for (const auto& [name, field] : object) {
      if (name == "key") {
        entry.key = checked_key(field, at + ".key");
      } else if (name == "path") {
        entry.path = std::string(string_field(field, at + ".path"));
        if (entry.path.size() > kMaxKeyBytes) reject(at + ".path", "is longer than 1024 bytes");
      } else {
        reject(at + "." + member_name(name), "unknown field; allowed: key, path");
      }
    }
    if (entry.key.empty()) reject(at + ".key", "is required");
    if (entry.path.empty()) entry.path = entry.key;
    entries.push_back(std::move(entry));
  }
  return entries;
}

json::object parse_object(std::string_view body) {
  boost::system::error_code ec;
  json::value root = json::parse(body, ec);
  if (ec) reject("body", "is not valid JSON (" + ec.message() + ")");
  if (!root.is_object()) reject("body", "must be a JSON object");
  return std::move(root.get_object());
}

}  // namespace

ApiError too_many_entries(std::string_view what, std::size_t limit) {
  return ApiError(413, "too_many_entries",
                  std::string(what) + ": more than " + std::to_string(limit) +
                      " entries (the limit max_entries)",
                  {{"limit", "max_entries"}, {"max", std::to_string(limit)}});
}

ArchiveRequest parse_archive_request(std::string_view body, std::size_t max_entries) {
  const json::object root = parse_object(body);
  ArchiveRequest request;
  bool has_entries = false;
  for (const auto& [name, value] : root) {
    if (name == "name") {
      request.name = download_name(value);
    } else if (name == "entries") {
      request.entries = parse_entries(value, max_entries);
      has_entries = true;
    } else if (name == "prefix") {
      std::string prefix(string_field(value, "prefix"));
      if (auto problem = prefix_problem(prefix)) reject("prefix", "'" + shown_text(prefix, 200) + "' " + *problem);
      if (is_reserved_key(prefix) || prefix.rfind(".sluice", 0) == 0) {
        reject("prefix", "keys under '.sluice/' are reserved");
      }
      request.prefix = std::move(prefix);
    } else if (name == "method") {
      request.method = parse_method(value);
    } else if (name == "expires_in") {
      request.expires_in = parse_expires_in(value);
    } else if (name == "whole_store") {
      if (!value.is_bool()) reject("whole_store", "must be true or false");
      request.whole_store = value.get_bool();
    } else {
      reject(member_name(name),
             "unknown field; allowed: name, entries, prefix, method, expires_in, whole_store");
    }
  }
  if (has_entries == request.prefix.has_value()) {
    reject("entries", "give either \"entries\" or \"prefix\", not both or neither");
  }
  return request;
}

void check_archive_selection(const ArchiveRequest& request) {
  if (request.prefix && request.prefix->empty() && !request.whole_store) {
    throw ApiError(
        422, "whole_store_required",
        "prefix: \"\" selects every object of the store; say so with \"whole_store\": true",
        {{"field", "whole_store"}});
  }
  if (request.whole_store && (!request.prefix || !request.prefix->empty())) {
    reject("whole_store", "only with \"prefix\": \"\" (the whole store)");
  }
  if (!request.prefix && request.entries.empty()) {
    throw ApiError(422, "empty_selection", "entries: the list is empty; name at least one object",
                   {{"field", "entries"}});
  }
}

ZipMethod method_for(MethodChoice choice, std::string_view name) {
  if (choice == MethodChoice::kStore) return ZipMethod::kStore;
  if (choice == MethodChoice::kDeflate) return ZipMethod::kDeflate;
  static constexpr std::array<std::string_view, 33> kCompressed = {
      "jpg", "jpeg", "png",  "gif", "webp", "heic", "heif", "avif", "jxl", "mp4", "m4v",
      "mov", "mkv",  "webm", "avi", "mp3",  "m4a",  "aac",  "ogg",  "opus", "flac", "zip",
      "gz",  "tgz",  "bz2",  "xz",  "zst",  "7z",   "rar",  "pdf",  "docx", "xlsx", "pptx"};
  const std::size_t dot = name.rfind('.');
  const std::size_t slash = name.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
    return ZipMethod::kDeflate;
  }
  std::string extension(name.substr(dot + 1));
  for (char& c : extension) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  for (std::string_view known : kCompressed) {
    if (extension == known) return ZipMethod::kStore;
  }
  return ZipMethod::kDeflate;
}

}  // namespace sluice
