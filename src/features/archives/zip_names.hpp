#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace sluice {

// The name an entry gets inside the ZIP, from a client's path: safe to extract anywhere.
// `\` becomes `/`; a drive letter ("C:") and leading slashes go; empty, "." and ".." segments
// are dropped (never resolved: "a/../b" is "a/b"); control characters, bidirectional controls
// (U+202E ...) and the characters Windows forbids in file names (<>:"|?*) become '_'; a Windows
// device name (CON, NUL, COM1, "aux.txt" ...) gets a leading '_' and trailing dots and spaces
// become '_'; a segment is cut to 255 bytes at a UTF-8 boundary. What is left empty becomes
// `fallback`. REQUIRES: `path` is valid UTF-8.
// Thread-safe.
std::string sanitize_zip_path(std::string_view path, std::string_view fallback = "file");

// Makes names unique within one archive, as file managers do: "a.jpg", "a (1).jpg",
// "a (2).jpg". Compared without ASCII case (Windows and macOS extract "A.jpg" over "a.jpg"),
// and a file never takes the name of a folder another entry needs, nor the other way round.
// Linear in the number of names, however many of them clash.
// Not thread-safe.
class ZipNameSet {
 public:
  // Returns `name`, or the first free variant of it; remembers the result.
  std::string add(std::string name);

 private:
  bool taken_as_file(const std::string& name) const;
  bool taken(const std::string& name) const;
  std::string free_folder_path(std::string name);

  std::unordered_set<std::string> files_;    // folded names of files
  std::unordered_set<std::string> folders_;  // folded names of folders that files need
  // The last number given to a folded name ("a.jpg" → 3 once "a (3).jpg" is taken); a folder's
  // key ends in '/'.
  std::unordered_map<std::string, int> next_number_;
};

}  // namespace sluice
