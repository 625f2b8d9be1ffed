#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/config.hpp"

namespace sluice {
namespace {

class ConfigArchivesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / "sluice-config-archives-test";
    std::filesystem::create_directories(dir_);
  }

  Config parse(const std::string& archives) {
    return parse_config("[storage]\npath = \".\"\n\n[archives]\n" + archives, file());
  }

  std::string error_of(const std::string& text) {
    try {
      parse_config(text, file());
    } catch (const ConfigError& error) {
      return error.what();
    }
    return "no error";
  }

  std::string file() const { return (dir_ / "a.toml").string(); }

  std::filesystem::path dir_;
};

TEST_F(ConfigArchivesTest, DefaultsWithoutTheSection) {
  const Config config = parse_config("[storage]\npath = \".\"\n", file());
  EXPECT_EQ(config.archives.default_expires_in.count(), 86'400);
  EXPECT_EQ(config.archives.max_expires_in.count(), 7 * 86'400);
  EXPECT_EQ(config.archives.max_entries, 100'000u);
  EXPECT_EQ(config.archives.max_manifest_bytes, 16u << 20);
  EXPECT_EQ(config.archives.sweep_interval.count(), 60);
  EXPECT_EQ(config.archives.sweep_batch, 200u);
}

TEST_F(ConfigArchivesTest, EveryKey) {
  const Config config = parse(
      "default_expires_in_s = 3600\nmax_expires_in_s = 7200\nmax_entries = 20\n"
      "max_manifest_bytes = 4096\nsweep_interval_s = 5\nsweep_batch = 7\n");
  EXPECT_EQ(config.archives.default_expires_in.count(), 3600);
  EXPECT_EQ(config.archives.max_expires_in.count(), 7200);
  EXPECT_EQ(config.archives.max_entries, 20u);
  EXPECT_EQ(config.archives.max_manifest_bytes, 4096u);
  EXPECT_EQ(config.archives.sweep_interval.count(), 5);
  EXPECT_EQ(config.archives.sweep_batch, 7u);
  EXPECT_EQ(config.archives.line, 4);
}

TEST_F(ConfigArchivesTest, ErrorsNameFileLineAndKey) {
  const std::string head = "[storage]\npath = \".\"\n\n[archives]\n";
  EXPECT_EQ(error_of(head + "max_entries = 0\n"),
            file() + ":5: archives.max_entries: must be at least 1");
  EXPECT_EQ(error_of(head + "sweep_batch = \"many\"\n"),
            file() + ":5: archives.sweep_batch: expected an integer, got a string");
  EXPECT_EQ(error_of(head + "max_expires_in_s = 60\ndefault_expires_in_s = 61\n"),
            file() + ":6: archives.default_expires_in_s: must be at most max_expires_in_s (60)");
  EXPECT_EQ(error_of(head + "max_expires_in_s = 60\n"),
            file() + ":4: archives.default_expires_in_s: must be at most max_expires_in_s (60)");
  EXPECT_NE(error_of(head + "expiry = 1\n").find(":5: archives.expiry: unknown key"),
            std::string::npos);
  EXPECT_EQ(error_of("[archives]\nmax_entries = 5\n"),
            file() + ":1: archives: archives are made of [storage]'s objects: add it");
}

}  // namespace
}  // namespace sluice
