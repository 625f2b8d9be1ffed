#include "features/archives/zip_names.hpp"

#include <vector>

namespace sluice {
namespace {

constexpr std::size_t kMaxSegmentBytes = 255;

bool is_forbidden(unsigned char c) {
  static constexpr std::string_view kWindowsReserved = "<>:\"|?*";
  return c < 0x20 || c == 0x7F || kWindowsReserved.find(static_cast<char>(c)) != std::string_view::npos;
}

// Cuts `segment` to at most kMaxSegmentBytes without splitting a UTF-8 sequence.
void truncate_segment(std::string& segment) {
  if (segment.size() <= kMaxSegmentBytes) return;
  std::size_t cut = kMaxSegmentBytes;
  while (cut > 0 && (static_cast<unsigned char>(segment[cut]) & 0xC0) == 0x80) --cut;
  segment.resize(cut);
}

std::string fold(std::string_view name) {
  std::string folded(name);
  for (char& c : folded) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return folded;
}

// "a/b.tar" + 2 → "a/b (2).tar"; the counter goes before the last extension of the last
// segment (a leading dot is no extension: ".profile (1)").
std::string numbered(const std::string& name, int n) {
  const std::size_t slash = name.rfind('/');
  const std::size_t base = slash == std::string::npos ? 0 : slash + 1;
  std::size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot <= base) dot = name.size();
  return name.substr(0, dot) + " (" + std::to_string(n) + ")" + name.substr(dot);
}

}  // namespace

std::string sanitize_zip_path(std::string_view path, std::string_view fallback) {
  std::string text(path);
  for (char& c : text) {
    if (c == '\\') c = '/';
  }
  // A drive letter: "C:" or "C:/..." (after backslashes became slashes).
  if (text.size() >= 2 && text[1] == ':' &&
      ((text[0] >= 'A' && text[0] <= 'Z') || (text[0] >= 'a' && text[0] <= 'z'))) {
    text.erase(0, 2);
  }
  std::string out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('/', start);
    if (end == std::string::npos) end = text.size();
    std::string segment = text.substr(start, end - start);
    start = end + 1;
    if (segment.empty() || segment == "." || segment == "..") continue;
    for (char& c : segment) {
      if (is_forbidden(static_cast<unsigned char>(c))) c = '_';
    }
    truncate_segment(segment);
    if (!out.empty()) out += '/';
    out += segment;
  }
  return out.empty() ? std::string(fallback) : out;
}

bool ZipNameSet::taken_as_file(const std::string& name) const {
  return files_.count(fold(name)) != 0;
}

bool ZipNameSet::taken(const std::string& name) const {
  const std::string folded = fold(name);
  return files_.count(folded) != 0 || folders_.count(folded) != 0;
}

// Renames the first folder of `name` that is already a file ("a" then "a/b" → "a (1)/b").
std::string ZipNameSet::free_folder_path(std::string name) const {
  for (std::size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    const std::string folder = name.substr(0, slash);
    if (!taken_as_file(folder)) continue;
    std::string renamed;
    for (int n = 1; taken_as_file(renamed = folder + " (" + std::to_string(n) + ")"); ++n) {
    }
    name = renamed + name.substr(slash);
    slash = renamed.size();
  }
  return name;
}

std::string ZipNameSet::add(std::string name) {
  name = free_folder_path(std::move(name));
  if (taken(name)) {
    std::string candidate;
    for (int n = 1; taken(candidate = numbered(name, n)); ++n) {
    }
    name = std::move(candidate);
  }
  files_.insert(fold(name));
  for (std::size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    folders_.insert(fold(name.substr(0, slash)));
  }
  return name;
}

}  // namespace sluice
