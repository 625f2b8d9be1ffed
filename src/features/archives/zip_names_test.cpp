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

// Found by fuzz/fuzz_zip_names.
TEST(SanitizeZipPathTest, C1ControlsBecomeUnderscores) {
  EXPECT_EQ(sanitize_zip_path("a\u0085b\u009Bc\u0080.txt"), "a_b_c_.txt");  // NEL, CSI, PAD
  EXPECT_EQ(sanitize_zip_path("\u00A0x\u00FF"), "\u00A0x\u00FF");  // not controls
}

// Found by fuzz/fuzz_zip_names: the 255-byte cut came after the trailing dot/space and device
// checks, so it could leave a dot or space last, or a device name before the spaces it cut.
TEST(SanitizeZipPathTest, TheCutSegmentIsCheckedForWindowsToo) {
  const std::string dotted = sanitize_zip_path(std::string(254, 'n') + ". more");
  EXPECT_EQ(dotted, std::string(254, 'n') + "_");
  const std::string spaces = sanitize_zip_path("CON" + std::string(300, ' ') + "x");
  EXPECT_EQ(spaces, "_CON" + std::string(251, '_'));
  EXPECT_EQ(spaces.size(), 255u);
  const std::string device = sanitize_zip_path("aux." + std::string(300, 'e'));
  EXPECT_EQ(device, "_aux." + std::string(250, 'e'));
  for (const std::string& name : {dotted, spaces, device}) {
    EXPECT_EQ(sanitize_zip_path(name), name);  // idempotent
  }
}

// Found by fuzz/fuzz_zip_names: " (1)" took a 255-byte name to 259 bytes, which no file system
// extracts; the part before the counter is cut instead.
TEST(ZipNameSetTest, NumberedNamesStayWithin255BytesPerSegment) {
  ZipNameSet names;
  const std::string long_name(255, 'a');
  EXPECT_EQ(names.add(long_name), long_name);
  EXPECT_EQ(names.add(long_name), std::string(251, 'a') + " (1)");
  EXPECT_EQ(names.add(long_name), std::string(251, 'a') + " (2)");
  const std::string photo = std::string(250, 'p') + ".jpeg";
  EXPECT_EQ(names.add(photo), photo);
  EXPECT_EQ(names.add(photo), std::string(246, 'p') + " (1).jpeg");
  const std::string long_extension = "x." + std::string(253, 'e');  // no room beside the counter
  EXPECT_EQ(names.add(long_extension), long_extension);
  EXPECT_EQ(names.add(long_extension), "x." + std::string(249, 'e') + " (1)");
  std::string umlauts;
  for (int i = 0; i < 127; ++i) umlauts += "\u00FC";  // 254 bytes
  EXPECT_EQ(names.add(umlauts), umlauts);
  EXPECT_EQ(names.add(umlauts), umlauts.substr(0, 250) + " (1)");  // cut between characters
  // A folder renamed because a file has its name.
  ZipNameSet folders;
  const std::string folder(255, 'd');
  EXPECT_EQ(folders.add(folder), folder);
  EXPECT_EQ(folders.add(folder + "/x"), std::string(251, 'd') + " (1)/x");
  EXPECT_EQ(folders.add(folder + "/y"), std::string(251, 'd') + " (1)/y");
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
