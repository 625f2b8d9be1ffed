// [datasets.output]: the CSV layout, formula guard and UTF-8 policy of one dataset.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.hpp"
#include "core/config_test_dir.hpp"

namespace sluice {
namespace {

namespace fs = std::filesystem;

// The [datasets.output] table starts on line 8, so its keys are on lines 9, 10, ...
constexpr std::string_view kPrefix = R"([sources.demo]
kind = "sqlite"
path = "orders.db"
[[datasets]]
name = "a"
source = "demo"
query = "q"
[datasets.output]
)";

class ConfigOutputTest : public ConfigDirTest {
 protected:
  Config parse(std::string_view output) {
    return parse_config(std::string(kPrefix) + std::string(output), dir_ / "sluice.toml");
  }

  std::string error(std::string_view output) {
    try {
      parse(output);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(ConfigOutputTest, DefaultsAndEveryKey) {
  const OutputOptions defaults = parse("").datasets[0].output;
  EXPECT_EQ(defaults.delimiter, ',');
  EXPECT_TRUE(defaults.header && defaults.crlf && defaults.formula_guard && !defaults.bom);
  EXPECT_EQ(defaults.invalid_utf8, InvalidUtf8::kReplace);
  const OutputOptions set =
      parse("delimiter = \";\"\nheader = false\nline_ending = \"lf\"\nbom = true\n"
            "formula_guard = false\ninvalid_utf8 = \"fail\"\n")
          .datasets[0]
          .output;
  EXPECT_EQ(set.delimiter, ';');
  EXPECT_FALSE(set.header || set.crlf || set.formula_guard);
  EXPECT_TRUE(set.bom);
  EXPECT_EQ(set.invalid_utf8, InvalidUtf8::kFail);
  EXPECT_EQ(parse("delimiter = \"\\t\"\n").datasets[0].output.delimiter, '\t');
}

TEST_F(ConfigOutputTest, ErrorsNameKeyAndLine) {
  const std::string file = (dir_ / "sluice.toml").string();
  EXPECT_EQ(error("delimiter = \";;\"\n").rfind(file + ":9: datasets[0].output.delimiter:", 0), 0u)
      << error("delimiter = \";;\"\n");
  EXPECT_NE(error("header = true\ndelimiter = \"\\\"\"\n").find(":10: datasets[0].output.delimiter"),
            std::string::npos);
  EXPECT_NE(error("line_ending = \"cr\"\n").find("datasets[0].output.line_ending: expected one of: crlf, lf"),
            std::string::npos);
  EXPECT_NE(error("invalid_utf8 = \"drop\"\n").find("expected one of: replace, fail"),
            std::string::npos);
  EXPECT_NE(error("bom = \"yes\"\n").find("datasets[0].output.bom: expected a boolean"),
            std::string::npos);
  EXPECT_NE(error("quote = \"'\"\n").find(":9: datasets[0].output.quote: unknown key"),
            std::string::npos);
}

TEST_F(ConfigOutputTest, OutputParameterNamesAreReservedForFilters) {
  for (std::string name : {"header", "bom", "delimiter", "line_ending"}) {
    std::string text = std::string(kPrefix).substr(0, kPrefix.size() - 18) +
                       "[datasets.filters." + name + "]\ntype = \"text\"\n";
    try {
      parse_config(text, dir_ / "sluice.toml");
      ADD_FAILURE() << name << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("reserved"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace sluice
