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
