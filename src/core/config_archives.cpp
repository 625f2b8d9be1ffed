// [archives]: lifetimes and limits of ZIP archives (features/archives). Every problem names the
// key and its line.

#include "core/config_reader.hpp"

namespace sluice::config_detail {
namespace {

constexpr std::int64_t kMaxLifetimeSeconds = 366LL * 86'400;
constexpr std::int64_t kMaxManifestBytes = 64 << 20;  // what the catalog reads back at most

}  // namespace

void read_archives(const Reader& reader, const toml::table& root, Config& config) {
  const auto* table = reader.optional<toml::table>(root, "", "archives");
  if (table == nullptr) return;
  if (!config.storage)
    reader.fail(*table, "archives", "archives are made of [storage]'s objects: add it");
  reader.check_keys(*table, "archives",
                    {"default_expires_in_s", "max_expires_in_s", "max_entries",
                     "max_manifest_bytes", "sweep_interval_s", "sweep_batch"});
  ArchivesConfig& archives = config.archives;
  archives.line = line_of(*table);
  if (auto value =
          reader.optional_int(*table, "archives", "default_expires_in_s", 1, kMaxLifetimeSeconds)) {
    archives.default_expires_in = std::chrono::seconds(*value);
  }
  if (auto value =
          reader.optional_int(*table, "archives", "max_expires_in_s", 1, kMaxLifetimeSeconds)) {
    archives.max_expires_in = std::chrono::seconds(*value);
  }
  if (archives.default_expires_in > archives.max_expires_in) {
    const toml::node* node = table->get("default_expires_in_s");
    if (node == nullptr) node = table;
    reader.fail(*node, "archives.default_expires_in_s",
                "must be at most max_expires_in_s (" +
                    std::to_string(archives.max_expires_in.count()) + ")");
  }
  if (auto value = reader.optional_int(*table, "archives", "max_entries", 1, 1'000'000)) {
    archives.max_entries = static_cast<std::size_t>(*value);
  }
  if (auto value =
          reader.optional_int(*table, "archives", "max_manifest_bytes", 1024, kMaxManifestBytes)) {
    archives.max_manifest_bytes = static_cast<std::size_t>(*value);
  }
  if (auto value = reader.optional_int(*table, "archives", "sweep_interval_s", 1, 86'400)) {
    archives.sweep_interval = std::chrono::seconds(*value);
  }
  if (auto value = reader.optional_int(*table, "archives", "sweep_batch", 1, 10'000)) {
    archives.sweep_batch = static_cast<std::size_t>(*value);
  }
}

}  // namespace sluice::config_detail
