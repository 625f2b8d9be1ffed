#include "features/archives/zip_names.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(SanitizeZipPathTest, HostileNamesBecomeSafeRelativePaths) {
  const std::pair<std::string, std::string> cases[] = {
      {"a.jpg", "a.jpg"},
      {"/etc/passwd", "etc/passwd"},
      {"///x", "x"},
      {"../../evil.sh", "evil.sh"},
      {"a/./b/../c", "a/b/c"},
      {"C:\\Windows\\system32\\x.dll", "Windows/system32/x.dll"},
      {"c:evil.txt", "evil.txt"},
      {"\\\\server\\share\\f.txt", "server/share/f.txt"},
      {"dir\\sub/file.txt", "dir/sub/file.txt"},
      {"what?.txt", "what_.txt"},
      {"a<b>c:d|e*f\"g", "a_b_c_d_e_f_g"},
      {std::string("nul\0byte", 8), "nul_byte"},
      {"tab\there", "tab_here"},
      {"Überraschung/東京 📦.png", "Überraschung/東京 📦.png"},
      {"..", "file"},
      {"", "file"},
      {"./.", "file"},
  };
  for (const auto& [path, expected] : cases) EXPECT_EQ(sanitize_zip_path(path), expected) << path;
}

TEST(SanitizeZipPathTest, LongSegmentsAreCutAtACharacterBoundary) {
  std::string name;
  for (int i = 0; i < 100; ++i) name += "ü";  // 200 bytes
  name += "東京東京東京東京東京東京東京東京東京東京";  // +60 bytes: 260
  const std::string cut = sanitize_zip_path(name);
  EXPECT_LE(cut.size(), 255u);
  EXPECT_EQ(cut.size(), 254u);  // 200 + 18 three-byte characters
}

TEST(SanitizeZipPathTest, NamesThatReadWrongOrWindowsCannotCreate) {
  const std::pair<std::string, std::string> cases[] = {
      {"invoice\u202Egpj.exe", "invoice_gpj.exe"},           // RIGHT-TO-LEFT OVERRIDE
      {"a\u2066b\u2069c\u200Fd\u200Ee\u202Af", "a_b_c_d_e_f"},  // isolates, marks, embedding
      {"\u202D\u202C.txt", "__.txt"},
      {"CON", "_CON"},
      {"con.txt", "_con.txt"},
      {"dir/Nul.tar.gz", "dir/_Nul.tar.gz"},
      {"aux", "_aux"},
      {"PRN.", "_PRN_"},
      {"COM1", "_COM1"},
      {"lpt9.log", "_lpt9.log"},
      {"COM0", "COM0"},         // not a device
      {"CONSOLE.txt", "CONSOLE.txt"},
      {"con .txt", "_con .txt"},
      {"console", "console"},
      {"trailing.", "trailing_"},
      {"spaces  ", "spaces__"},
      {"dots.. .", "dots____"},
      {"folder./file", "folder_/file"},
      {"...", "___"},
      {"東京\u200B.png", "東京\u200B.png"},  // a zero-width space is not a bidi control
  };
  for (const auto& [path, expected] : cases) EXPECT_EQ(sanitize_zip_path(path), expected) << path;
}

TEST(ZipNameSetTest, ManyClashesStayLinear) {
  ZipNameSet names;
  EXPECT_EQ(names.add("same.jpg"), "same.jpg");
  std::string last;
  for (int i = 1; i < 20'000; ++i) last = names.add("same.jpg");
  EXPECT_EQ(last, "same (19999).jpg");
  // A number that is taken already is skipped, and the count goes on from there.
  EXPECT_EQ(names.add("same (20001).jpg"), "same (20001).jpg");
  EXPECT_EQ(names.add("same.jpg"), "same (20000).jpg");
  EXPECT_EQ(names.add("same.jpg"), "same (20002).jpg");
  ZipNameSet folders;
  EXPECT_EQ(folders.add("d"), "d");
  for (int i = 1; i <= 1000; ++i) {
    EXPECT_EQ(folders.add("d/" + std::to_string(i)), "d (1)/" + std::to_string(i));
  }
}

TEST(ZipNameSetTest, DuplicatesGetNumbers) {
  ZipNameSet names;
  EXPECT_EQ(names.add("a.jpg"), "a.jpg");
  EXPECT_EQ(names.add("a.jpg"), "a (1).jpg");
  EXPECT_EQ(names.add("A.JPG"), "A (2).JPG");  // case-insensitive, like Windows and macOS
  EXPECT_EQ(names.add("a (1).jpg"), "a (1) (1).jpg");
  EXPECT_EQ(names.add("dir/readme"), "dir/readme");
  EXPECT_EQ(names.add("dir/readme"), "dir/readme (1)");
  EXPECT_EQ(names.add(".profile"), ".profile");
  EXPECT_EQ(names.add(".profile"), ".profile (1)");
  EXPECT_EQ(names.add("x.tar.gz"), "x.tar.gz");
  EXPECT_EQ(names.add("x.tar.gz"), "x.tar (1).gz");
}

TEST(ZipNameSetTest, FilesAndFoldersNeverCollide) {
  ZipNameSet names;
  EXPECT_EQ(names.add("photos/a.jpg"), "photos/a.jpg");
  EXPECT_EQ(names.add("photos"), "photos (1)");  // a file cannot replace the folder
  ZipNameSet other;
  EXPECT_EQ(other.add("docs"), "docs");
  EXPECT_EQ(other.add("docs/b.txt"), "docs (1)/b.txt");  // the folder moves aside
  EXPECT_EQ(other.add("docs/c.txt"), "docs (1)/c.txt");
}

}  // namespace
}  // namespace sluice
