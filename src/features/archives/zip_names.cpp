#include "features/archives/zip_names.hpp"

#include <vector>

namespace sluice {
namespace {

constexpr std::size_t kMaxSegmentBytes = 255;

bool is_forbidden(unsigned char c) {
  static constexpr std::string_view kWindowsReserved = "<>:\"|?*";
  return c < 0x20 || c == 0x7F || kWindowsReserved.find(static_cast<char>(c)) != std::string_view::npos;
}

// The bidirectional controls (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069) make a name read
// other than it is ("invoice\u202Egpj.exe" shows as "invoiceexe.jpg"): each becomes '_'. They
// are three bytes: E2 80 8E/8F/AA..AE, E2 81 A6..A9.
std::size_t bidi_control_at(const std::string& text, std::size_t i) {
  if (i + 2 >= text.size() || static_cast<unsigned char>(text[i]) != 0xE2) return 0;
  const auto second = static_cast<unsigned char>(text[i + 1]);
  const auto third = static_cast<unsigned char>(text[i + 2]);
  if (second == 0x80 && (third == 0x8E || third == 0x8F || (third >= 0xAA && third <= 0xAE))) {
    return 3;
  }
  if (second == 0x81 && third >= 0xA6 && third <= 0xA9) return 3;
  return 0;
}

// The C1 controls (U+0080..U+009F: NEL, CSI, ...) are control characters as much as the ASCII
// ones; two bytes: C2 80..9F.
std::size_t c1_control_at(const std::string& text, std::size_t i) {
  if (i + 1 >= text.size() || static_cast<unsigned char>(text[i]) != 0xC2) return 0;
  const auto second = static_cast<unsigned char>(text[i + 1]);
  return second >= 0x80 && second <= 0x9F ? 2 : 0;
}

void replace_unicode_controls(std::string& segment) {
  for (std::size_t i = 0; i < segment.size(); ++i) {
    std::size_t length = bidi_control_at(segment, i);
    if (length == 0) length = c1_control_at(segment, i);
    if (length != 0) segment.replace(i, length, "_");
  }
}

bool equals_ascii_folded(std::string_view text, std::string_view upper) {
  if (text.size() != upper.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c) != upper[i]) return false;
  }
  return true;
}

void replace_trailing_dots_and_spaces(std::string& segment) {
  for (std::size_t i = segment.size(); i > 0 && (segment[i - 1] == '.' || segment[i - 1] == ' ');
       --i) {
    segment[i - 1] = '_';
  }
}

// Windows cannot create CON, PRN, AUX, NUL, COM1..COM9, LPT1..LPT9 (any case, with any
// extension: "con.txt" too), nor a name that ends in a dot or a space: such a segment gets a
// leading '_' or its trailing dots and spaces become '_'.
void avoid_windows_reserved(std::string& segment) {
  // The device check sees the name as Windows does: up to the first dot, spaces trimmed.
  std::string_view stem = std::string_view(segment).substr(0, segment.find('.'));
  while (!stem.empty() && stem.back() == ' ') stem.remove_suffix(1);
  static constexpr std::string_view kDevices[] = {"CON", "PRN", "AUX", "NUL"};
  bool reserved = false;
  for (std::string_view device : kDevices) reserved = reserved || equals_ascii_folded(stem, device);
  if (stem.size() == 4 && stem[3] >= '1' && stem[3] <= '9') {
    reserved = reserved || equals_ascii_folded(stem.substr(0, 3), "COM") ||
               equals_ascii_folded(stem.substr(0, 3), "LPT");
  }
  if (reserved) segment.insert(0, "_");
  replace_trailing_dots_and_spaces(segment);
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
// segment (a leading dot is no extension: ".profile (1)"), or at its end for a folder
// ("photos.2024" → "photos.2024 (1)"). The segment stays within kMaxSegmentBytes: the part
// before the counter is cut at a character boundary ("<255 bytes>" → "<251 bytes> (1)"), and an
// extension too long to keep beside the counter is cut with it.
std::string numbered(const std::string& name, int n, bool file = true) {
  const std::size_t slash = name.rfind('/');
  const std::size_t base = slash == std::string::npos ? 0 : slash + 1;
  std::size_t dot = file ? name.rfind('.') : std::string::npos;
  if (dot == std::string::npos || dot <= base) dot = name.size();
  const std::string counter = " (" + std::to_string(n) + ")";
  std::string_view stem = std::string_view(name).substr(base, dot - base);
  std::string_view extension = std::string_view(name).substr(dot);
  if (stem.size() + counter.size() + extension.size() > kMaxSegmentBytes) {
    if (counter.size() + extension.size() >= kMaxSegmentBytes) {
      stem = std::string_view(name).substr(base);
      extension = {};
    }
    std::size_t cut = kMaxSegmentBytes - counter.size() - extension.size();
    while (cut > 0 && (static_cast<unsigned char>(stem[cut]) & 0xC0) == 0x80) --cut;
    stem = stem.substr(0, cut);
  }
  return name.substr(0, base) + std::string(stem) + counter + std::string(extension);
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
    replace_unicode_controls(segment);
    // Cut first, so that what Windows looks at is the end that stays: a cut can leave a dot or
    // a space last ("name<253 bytes>. more" → "name<253 bytes>.") or a device name before
    // spaces ("CON<300 spaces>x" → "CON<252 spaces>").
    truncate_segment(segment);
    avoid_windows_reserved(segment);
    if (segment.size() > kMaxSegmentBytes) {  // the device's leading '_' made it one too long
      truncate_segment(segment);
      replace_trailing_dots_and_spaces(segment);
    }
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
std::string ZipNameSet::free_folder_path(std::string name) {
  for (std::size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    const std::string folder = name.substr(0, slash);
    if (!taken_as_file(folder)) continue;
    // Every entry below this folder goes to the same renamed folder; the search starts where
    // the last one ended, which keeps many clashes linear.
    int& n = next_number_[fold(folder) + '/'];
    if (n == 0) n = 1;
    std::string renamed;
    while (taken_as_file(renamed = numbered(folder, n, /*file=*/false))) ++n;
    name = renamed + name.substr(slash);
    slash = renamed.size();
  }
  return name;
}

std::string ZipNameSet::add(std::string name) {
  name = free_folder_path(std::move(name));
  if (taken(name)) {
    // 20,000 entries of one name take 20,000 probes, not 200 million.
    int& n = next_number_[fold(name)];
    std::string candidate;
    while (taken(candidate = numbered(name, ++n))) {
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
