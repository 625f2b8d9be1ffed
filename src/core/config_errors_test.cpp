// check-config's reporting: every problem of a file at once, each as FILE:LINE: KEY: problem,
// "did you mean" for a mistyped key, and renames that `columns=` / `order=` could not address.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/config_test_dir.hpp"

namespace sluice {
namespace {

namespace fs = std::filesystem;

class ConfigErrorsTest : public ConfigDirTest {
 protected:
  void SetUp() override {
    ConfigDirTest::SetUp();
    file_ = dir_ / "sluice.toml";
  }

  // The lines of the error message; empty when the text parses.
  std::vector<std::string> problems(std::string_view text) {
    try {
      parse_config(text, file_);
    } catch (const ConfigError& error) {
      std::vector<std::string> lines;
      std::istringstream in(error.what());
      for (std::string line; std::getline(in, line);) lines.push_back(line);
      return lines;
    }
    return {};
  }

  std::string at(int line, std::string_view rest) const {
    return file_.string() + ":" + std::to_string(line) + ": " + std::string(rest);
  }

  fs::path file_;
};

TEST_F(ConfigErrorsTest, ReportsEveryProblemInTheOrderFound) {
  const std::vector<std::string> found = problems(R"toml([server]
listn = "127.0.0.1:8080"
threads = "four"

[sources.demo]
kind = "sqlite"
path = "orders.db"

[[datasets]]
name = "a"
source = "demo"
query = "q"
sortabel = ["id"]

[[datasets]]
name = "b"
source = "nowhere"
query = "q"

[[datasets]]
name = "c"
source = "demo"
query = ""
[datasets.columns.x]
rename = "a,b"
[datasets.columns.y]
rename = "-y"
)toml");
  const std::vector<std::string> expected{
      at(2, "server.listn: unknown key (expected one of: listen, threads, max_header_bytes, "
            "max_body_bytes, read_timeout_ms, idle_timeout_ms, write_timeout_ms, "
            "shutdown_grace_ms, stream_buffer_bytes, max_streams, max_connections, log_format, ops_listen, tls); "
            "did you mean \"listen\"?"),
      at(3, "server.threads: expected an integer, got a string"),
      at(13, "datasets[0].sortabel: unknown key (expected one of: name, source, query, "
             "file_name, description, filters, columns, sortable, order, output, "
             "version_query); did you mean \"sortable\"?"),
      at(17, "datasets[1].source: unknown source \"nowhere\" (not defined in [sources])"),
      at(23, "datasets[2].query: must not be empty"),
      at(25, "datasets[2].columns.x.rename: \"a,b\" contains a comma: `columns=` and `order=` "
             "could not name it"),
      at(27, "datasets[2].columns.y.rename: \"-y\" starts with '-': `order=` reads that as "
             "descending"),
  };
  ASSERT_EQ(found.size(), expected.size()) << found.back();
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(found[i], expected[i]) << i;
}

TEST_F(ConfigErrorsTest, EveryBadRenameIsReported) {
  const std::vector<std::string> found = problems(R"toml([sources.demo]
kind = "sqlite"
path = "orders.db"

[[datasets]]
name = "a"
source = "demo"
query = "q"
[datasets.columns.x]
rename = "a,b"
[datasets.columns.y]
rename = "-y"
[datasets.columns.z]
rename = "tab	z"
[datasets.columns.w]
rename = " w"
[datasets.columns.ok]
rename = "Order total (EUR)"
)toml");
  // The columns of one table come in key order: w, x, y, z.
  ASSERT_EQ(found.size(), 4u) << found.front();
  EXPECT_NE(found[0].find(":16: datasets[0].columns.w.rename: "), std::string::npos) << found[0];
  EXPECT_NE(found[0].find("space"), std::string::npos) << found[0];
  EXPECT_EQ(found[1], at(10, "datasets[0].columns.x.rename: \"a,b\" contains a comma: `columns=` "
                             "and `order=` could not name it"));
  EXPECT_EQ(found[2], at(12, "datasets[0].columns.y.rename: \"-y\" starts with '-': `order=` "
                             "reads that as descending"));
  EXPECT_NE(found[3].find(":14: datasets[0].columns.z.rename: "), std::string::npos) << found[3];
  EXPECT_NE(found[3].find("control character"), std::string::npos) << found[3];
}

TEST_F(ConfigErrorsTest, SuggestsOnlyCloseKeys) {
  // "root" is 4 edits from "path": no suggestion; "pth" is 1.
  // (the keys of one table come in key order)
  std::vector<std::string> found = problems("[storage]\npath = \".\"\nroot = 1\npth = 2\n");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], at(4, "storage.pth: unknown key (expected one of: kind, path, "
                            "link_secret_env); did you mean \"path\"?"));
  EXPECT_EQ(found[1], at(3, "storage.root: unknown key (expected one of: kind, path, "
                            "link_secret_env)"));
  found = problems("[sever]\nlisten = \"x\"\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0].find("did you mean \"server\"?"), std::string::npos) << found[0];
}

TEST_F(ConfigErrorsTest, AGoodFileStillParses) {
  EXPECT_TRUE(problems("[sources.demo]\nkind = \"sqlite\"\npath = \"orders.db\"\n").empty());
}

}  // namespace
}  // namespace sluice
