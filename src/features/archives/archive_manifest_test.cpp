#include "features/archives/archive_manifest.hpp"

#include <gtest/gtest.h>

#include <set>

namespace sluice {
namespace {

TEST(ArchiveManifestTest, IdsAre128RandomBitsInHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = new_archive_id();
    EXPECT_EQ(id.size(), 32u);
    EXPECT_TRUE(is_archive_id(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(is_archive_id("0123456789ABCDEF0123456789abcdef"));
  EXPECT_FALSE(is_archive_id("0123456789abcdef0123456789abcde"));
}

TEST(ArchiveManifestTest, ManifestKeysNameTheirId) {
  const std::string id = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(manifest_key(id), ".sluice/archives/" + id + ".json");
  EXPECT_EQ(archive_id_of(manifest_key(id)), id);
  EXPECT_FALSE(archive_id_of(".sluice/archives/" + id + ".json.part").has_value());
  EXPECT_FALSE(archive_id_of(".sluice/archives/x.json").has_value());
  EXPECT_FALSE(archive_id_of(".sluice/cubes/" + id + ".json").has_value());
  EXPECT_FALSE(archive_id_of(id + ".json").has_value());
}

TEST(ArchiveManifestTest, ExpiryRoundTripsAndOlderManifestsHaveNone) {
  ArchiveManifest manifest;
  manifest.id = "0123456789abcdef0123456789abcdef";
  manifest.name = "album";
  manifest.created = 1'700'000'000;
  manifest.expires_at = 1'700'086'400;
  ManifestEntry entry;
  entry.key = "a.jpg";
  entry.name = "a.jpg";
  entry.size = 3;
  manifest.entries.push_back(entry);
  const ArchiveManifest back = manifest_from_json(manifest_to_json(manifest));
  EXPECT_EQ(back.expires_at, 1'700'086'400);
  EXPECT_EQ(back.created, 1'700'000'000);
  // As written before archives expired: no "expires_at" member.
  const ArchiveManifest older = manifest_from_json(
      R"({"version":1,"id":"0123456789abcdef0123456789abcdef","name":"a","created":5,)"
      R"("entries":[{"key":"a","name":"a","size":1,"mtime_ns":0,"method":"store"}]})");
  EXPECT_EQ(older.expires_at, 0);
  EXPECT_EQ(older.created, 5);
}

}  // namespace
}  // namespace sluice
