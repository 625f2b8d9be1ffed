// [queue]: where background jobs are kept and how workers treat them.

#include <array>

#include "core/config_reader.hpp"

namespace sluice::config_detail {
namespace {

// A duration key of [queue], in the unit its name ends with (_ms, _s), with its bounds.
template <typename Duration>
struct DurationKey {
  std::string_view key;
  Duration QueueConfig::*member;
  std::int64_t min;
  std::int64_t max;
};

constexpr std::array<DurationKey<std::chrono::milliseconds>, 5> kMillisKeys{{
    {"lease_ms", &QueueConfig::lease, 1'000, 86'400'000},
    {"progress_interval_ms", &QueueConfig::progress_interval, 50, 60'000},
    {"poll_interval_ms", &QueueConfig::poll_interval, 10, 600'000},
    {"sweep_interval_ms", &QueueConfig::sweep_interval, 100, 3'600'000},
    {"backoff_ms", &QueueConfig::backoff, 0, 3'600'000},
}};

constexpr std::array<DurationKey<std::chrono::seconds>, 3> kSecondsKeys{{
    {"result_ttl_s", &QueueConfig::result_ttl, 1, 366 * 86'400},
    {"max_result_ttl_s", &QueueConfig::max_result_ttl, 1, 366 * 86'400},
    {"retention_s", &QueueConfig::retention, 1, 3660 * 86'400},
}};

template <typename Duration, std::size_t N>
void read_durations(const Reader& reader, const toml::table& table,
                    const std::array<DurationKey<Duration>, N>& keys, QueueConfig& queue) {
  for (const DurationKey<Duration>& key : keys) {
    if (auto value = reader.optional_int(table, "queue", key.key, key.min, key.max)) {
      queue.*key.member = Duration(*value);
    }
  }
}

constexpr std::string_view kDefaultQueueFile = "sluice-jobs.db";

}  // namespace

QueueConfig default_queue(const std::filesystem::path& base_dir) {
  QueueConfig queue;
  queue.path = (base_dir / kDefaultQueueFile).lexically_normal();
  return queue;
}

QueueConfig read_queue(const Reader& reader, const toml::table& table,
                       const std::filesystem::path& base_dir) {
  std::vector<std::string_view> known{"kind",     "path",         "url",         "url_env",
                                      "pool_size", "workers",     "max_attempts"};
  for (const auto& key : kMillisKeys) known.push_back(key.key);
  for (const auto& key : kSecondsKeys) known.push_back(key.key);
  reader.check_keys(table, "queue", known);

  QueueConfig queue = default_queue(base_dir);
  queue.line = line_of(table);
  if (const auto* kind = reader.optional<TomlString>(table, "queue", "kind")) {
    if (kind->get() != "sqlite" && kind->get() != "postgres") {
      reader.fail(*kind, "queue.kind",
                  "unsupported kind " + quote_text(kind->get()) +
                      " (expected one of: sqlite, postgres)");
    }
    queue.kind = kind->get();
  }
  const auto* path = reader.optional<TomlString>(table, "queue", "path");
  const auto* url = reader.optional<TomlString>(table, "queue", "url");
  const auto* url_env = reader.optional<TomlString>(table, "queue", "url_env");
  if (queue.kind == "sqlite") {
    if (url != nullptr || url_env != nullptr) {
      reader.fail(url != nullptr ? static_cast<const toml::node&>(*url) : *url_env,
                  url != nullptr ? "queue.url" : "queue.url_env",
                  "a PostgreSQL setting, only with kind = \"postgres\"");
    }
    if (path != nullptr) {
      if (path->get().empty()) reader.fail(*path, "queue.path", "must not be empty");
      queue.path = (base_dir / std::filesystem::path(path->get())).lexically_normal();
      std::error_code ec;
      const std::filesystem::path folder = queue.path.parent_path();
      if (!std::filesystem::is_directory(folder, ec)) {
        reader.fail(*path, "queue.path",
                    "the folder " + folder.string() + " does not exist (the file is created, "
                    "its folder is not)");
      }
    }
  } else {
    if (path != nullptr) {
      reader.fail(*path, "queue.path", "a SQLite setting, only with kind = \"sqlite\"");
    }
    if ((url == nullptr) == (url_env == nullptr)) {
      reader.fail(table, "queue.url", "give exactly one of url and url_env");
    }
    queue.url = url != nullptr ? url->get() : reader.environment(*url_env, "queue.url_env");
    queue.path.clear();
  }
  if (auto size = reader.optional_int(table, "queue", "pool_size", 1, 1'000)) {
    queue.pool_size = static_cast<std::size_t>(*size);
  }
  if (auto workers = reader.optional_int(table, "queue", "workers", 0, 1'000)) {
    queue.workers = static_cast<unsigned>(*workers);
  }
  if (auto attempts = reader.optional_int(table, "queue", "max_attempts", 1, 100)) {
    queue.max_attempts = static_cast<int>(*attempts);
  }
  read_durations(reader, table, kMillisKeys, queue);
  read_durations(reader, table, kSecondsKeys, queue);
  if (queue.progress_interval * 2 > queue.lease) {
    reader.fail(table, "queue.lease_ms",
                "must be at least twice progress_interval_ms (the heartbeat renews the lease)");
  }
  if (queue.result_ttl > queue.max_result_ttl) {
    reader.fail(table, "queue.result_ttl_s", "must not exceed max_result_ttl_s");
  }
  return queue;
}

}  // namespace sluice::config_detail
