// Fuzzes the body of POST /v1/archives: parse_archive_request (features/archives/
// archive_request.hpp) on any bytes.
// Invariants:
// - the only exception is ApiError 400 `invalid_archive` whose message names a field
//   ("FIELD: problem"; an unknown member with an empty name is named too, not ": unknown
//   field" or "entries[0].: unknown field"); the message is UTF-8 without control characters
//   (client text is shown escaped: a NUL would cut what() short, a line break split it);
// - an accepted request has one of entries and prefix, never both, at most kMaxArchiveEntries
//   entries; every entry's key is a valid object key (key_problem) outside '.sluice/', its path
//   non-empty and at most kMaxKeyBytes bytes; a prefix is a valid prefix (prefix_problem) not
//   under '.sluice'; the download name is 1 to 200 bytes of valid UTF-8 without '/' or '\',
//   already a safe ZIP name (sanitize_zip_path leaves it unchanged);
// - parsing is deterministic (the same body gives the same request).
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "core/api_error.hpp"
#include "core/utf8.hpp"
#include "features/archives/archive_request.hpp"
#include "features/archives/zip_names.hpp"
#include "storage/object_key.hpp"

namespace {

[[noreturn]] void fail(const std::string& what, std::string_view body) {
  std::cerr << "invariant broken: " << what << "\nbody: [" << body.substr(0, 400) << "]\n";
  std::abort();
}

// The messages for a member with an empty name if it were shown as it is (": unknown field",
// "entries[12].: unknown field"), which name no field.
bool names_no_member(std::string_view message) {
  if (message ==
      ": unknown field; allowed: name, entries, prefix, method, expires_in, whole_store") {
    return true;
  }
  constexpr std::string_view kStart = "entries[";
  constexpr std::string_view kEnd = "].: unknown field; allowed: key, path";
  if (!message.starts_with(kStart) || !message.ends_with(kEnd)) return false;
  const std::string_view index =
      message.substr(kStart.size(), message.size() - kStart.size() - kEnd.size());
  return !index.empty() && index.find_first_not_of("0123456789") == std::string_view::npos;
}

bool same(const sluice::ArchiveRequest& a, const sluice::ArchiveRequest& b) {
  if (a.name != b.name || a.prefix != b.prefix || a.method != b.method ||
      a.expires_in != b.expires_in || a.whole_store != b.whole_store ||
      a.entries.size() != b.entries.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    if (a.entries[i].key != b.entries[i].key || a.entries[i].path != b.entries[i].path) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  ArchiveRequest request;
  try {
    request = parse_archive_request(body);
  } catch (const ApiError& error) {
    const bool expected = (error.status() == 400 && error.code() == "invalid_archive") ||
                          (error.status() == 413 && error.code() == "too_many_entries");
    if (!expected) {
      fail("ApiError " + std::to_string(error.status()) + " " + error.code(), body);
    }
    const std::string_view message = error.what();
    const std::size_t colon = message.find(": ");
    if (colon == std::string_view::npos || names_no_member(message)) {
      fail("the message names no field", body);
    }
    if (!valid_utf8(message)) fail("the message is not UTF-8", body);
    for (char c : message) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
        fail("a control character in the message", body);
      }
    }
    return 0;
  } catch (const std::exception& error) {
    fail(std::string("a non-ApiError escaped: ") + error.what(), body);
  } catch (...) {
    fail("something that is not an exception escaped", body);
  }

  // Exactly one form: a prefix leaves no entries ("entries": [] alone is an empty archive).
  if (request.prefix && !request.entries.empty()) fail("both entries and prefix", body);
  if (request.entries.size() > kMaxArchiveEntries) fail("too many entries", body);
  for (const RequestedEntry& entry : request.entries) {
    if (auto problem = key_problem(entry.key)) fail("an invalid key was accepted: " + *problem, body);
    if (is_reserved_key(entry.key)) fail("a reserved key was accepted", body);
    if (entry.path.empty() || entry.path.size() > kMaxKeyBytes) fail("a path of a bad size", body);
    if (!valid_utf8(entry.path)) fail("a path that is not UTF-8", body);
  }
  if (request.prefix) {
    if (auto problem = prefix_problem(*request.prefix)) {
      fail("an invalid prefix was accepted: " + *problem, body);
    }
    if (is_reserved_key(*request.prefix) || request.prefix->starts_with(".sluice")) {
      fail("a reserved prefix was accepted", body);
    }
  }
  const std::string& name = request.name;
  if (name.empty() || name.size() > 200) {
    fail("a download name of " + std::to_string(name.size()) + " bytes: [" + name + "]", body);
  }
  if (!valid_utf8(name)) fail("a download name that is not UTF-8", body);
  if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos) {
    fail("a download name with a slash", body);
  }
  if (sanitize_zip_path(name, "archive") != name) fail("a download name that is not safe", body);
  for (const RequestedEntry& entry : request.entries) (void)method_for(request.method, entry.path);

  if (!same(parse_archive_request(body), request)) fail("parsing is not deterministic", body);
  return 0;
}
