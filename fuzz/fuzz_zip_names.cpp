// Fuzzes the names entries get inside a ZIP (features/archives/zip_names.hpp).
// Input: lines of UTF-8 (sanitize_zip_path REQUIRES valid UTF-8: other inputs are skipped).
// Each line, and the whole input, is sanitised; then the sanitised lines go through one
// ZipNameSet, as archive_catalog.cpp names the entries of one archive.
// Invariants of sanitize_zip_path's result:
// - non-empty, valid UTF-8, relative (no leading '/'), no backslash, no empty segment (no "//",
//   no trailing '/'), no "." or ".." segment;
// - no control character (C0, DEL, C1 U+0080..U+009F), no bidirectional control (U+200E,
//   U+200F, U+202A..U+202E, U+2066..U+2069), none of <>:"|?*;
// - no segment that Windows reads as a device (CON PRN AUX NUL COM1-9 LPT1-9, any case, with
//   or without an extension: the part before the first dot, trailing spaces ignored);
// - no segment ending in a dot or a space; every segment at most 255 bytes;
// - idempotent: sanitising the result again returns it unchanged.
// Invariants of ZipNameSet::add: every name it returns is distinct from the others ignoring
// ASCII case; no returned name is (ignoring ASCII case) a folder of another one; a name
// without a clash comes back unchanged; every returned name still passes the checks above.
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/utf8.hpp"
#include "features/archives/zip_names.hpp"

namespace {

[[noreturn]] void fail(const std::string& what, std::string_view path, std::string_view out) {
  std::cerr << "invariant broken: " << what << "\ninput:  [" << path << "]\noutput: [" << out
            << "]\n";
  std::abort();
}

std::string fold(std::string_view text) {
  std::string folded(text);
  for (char& c : folded) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return folded;
}

bool is_device(std::string_view segment) {
  std::string_view stem = segment.substr(0, segment.find('.'));
  while (!stem.empty() && stem.back() == ' ') stem.remove_suffix(1);
  const std::string upper = [&] {
    std::string text(stem);
    for (char& c : text) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return text;
  }();
  if (upper == "CON" || upper == "PRN" || upper == "AUX" || upper == "NUL") return true;
  return upper.size() == 4 && (upper.starts_with("COM") || upper.starts_with("LPT")) &&
         upper[3] >= '1' && upper[3] <= '9';
}

// Code points of `text` (valid UTF-8).
std::vector<char32_t> code_points(std::string_view text) {
  std::vector<char32_t> points;
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const std::size_t length = byte < 0x80 ? 1 : byte < 0xE0 ? 2 : byte < 0xF0 ? 3 : 4;
    char32_t point = length == 1 ? byte : length == 2 ? byte & 0x1F : length == 3 ? byte & 0x0F : byte & 0x07;
    for (std::size_t k = 1; k < length; ++k) {
      point = (point << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    points.push_back(point);
    i += length;
  }
  return points;
}

// Why `out` is not a safe name, or "" when it is.
std::string problem_of(std::string_view out) {
  if (out.empty()) return "empty";
  if (!sluice::valid_utf8(out)) return "not valid UTF-8";
  if (out.front() == '/') return "absolute";
  if (out.find('\\') != std::string_view::npos) return "a backslash";
  for (char32_t point : code_points(out)) {
    if (point < 0x20 || point == 0x7F || (point >= 0x80 && point <= 0x9F)) {
      return "a control character U+" + std::to_string(static_cast<unsigned>(point));
    }
    if (point == 0x200E || point == 0x200F || (point >= 0x202A && point <= 0x202E) ||
        (point >= 0x2066 && point <= 0x2069)) {
      return "a bidirectional control";
    }
    if (point < 0x80 && std::string_view("<>:\"|?*").find(static_cast<char>(point)) !=
                            std::string_view::npos) {
      return "a character Windows forbids";
    }
  }
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = out.find('/', start);
    const std::string_view segment =
        out.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (segment.empty()) return "an empty segment";
    if (segment == "." || segment == "..") return "a '.' or '..' segment";
    if (segment.back() == '.' || segment.back() == ' ') return "a segment ending in a dot or space";
    if (segment.size() > 255) return "a segment over 255 bytes";
    if (is_device(segment)) return "a Windows device name";
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return "";
}

void check_sanitized(std::string_view path, std::string_view fallback) {
  const std::string out = sluice::sanitize_zip_path(path, fallback);
  if (std::string problem = problem_of(out); !problem.empty()) fail(problem, path, out);
  const std::string again = sluice::sanitize_zip_path(out, fallback);
  if (again != out) fail("not idempotent: again [" + again + "]", path, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (!sluice::valid_utf8(input)) return 0;  // REQUIRES: valid UTF-8 (keys and JSON strings are)
  check_sanitized(input, "file");
  check_sanitized(input, "archive");

  sluice::ZipNameSet names;
  std::unordered_set<std::string> files;    // folded
  std::unordered_set<std::string> folders;  // folded
  std::vector<std::string> given;
  std::size_t start = 0;
  while (start <= input.size()) {
    std::size_t newline = input.find('\n', start);
    if (newline == std::string_view::npos) newline = input.size();
    const std::string_view line = input.substr(start, newline - start);
    start = newline + 1;
    check_sanitized(line, "file");
    const std::string safe = sluice::sanitize_zip_path(line);
    std::string folded_safe = fold(safe);
    bool clash = files.count(folded_safe) != 0 || folders.count(folded_safe) != 0;
    for (std::size_t slash = safe.find('/'); slash != std::string::npos; slash = safe.find('/', slash + 1)) {
      clash = clash || files.count(fold(safe.substr(0, slash))) != 0;
    }
    const std::string name = names.add(safe);
    if (!clash && name != safe) fail("a name without a clash was changed", safe, name);
    if (std::string problem = problem_of(name); !problem.empty()) {
      fail("a numbered name is not safe: " + problem, safe, name);
    }
    const std::string folded = fold(name);
    if (files.count(folded) != 0) fail("two entries with one name", safe, name);
    if (folders.count(folded) != 0) fail("a file takes the name of a folder", safe, name);
    for (std::size_t slash = name.find('/'); slash != std::string::npos;
         slash = name.find('/', slash + 1)) {
      const std::string folder = folded.substr(0, slash);
      if (files.count(folder) != 0) fail("a folder takes the name of a file", safe, name);
      folders.insert(folder);
    }
    files.insert(folded);
  }
  return 0;
}
