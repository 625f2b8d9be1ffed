#include "features/cubes/cube_feature.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/api_error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/utf8.hpp"
#include "cube/cube_format.hpp"
#include "features/files/file_headers.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr std::size_t kMaxPointerBytes = 1 << 20;
constexpr std::size_t kMaxManifestBytes = 256u << 20;
constexpr std::uint64_t kMaxSliceBytes = 16u << 20;  // records one slice reads, whatever max_slice says
constexpr std::size_t kMaxBodyBytes = 32u << 20;     // JSON one lookup renders

// A version ready to answer from: its manifest, and indexes of its path values.
struct CubeVersion {
  CubePointer pointer;
  CubeManifest manifest;
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> files;  // joined path
  std::vector<std::vector<std::string>> path_values;  // per path dimension, sorted
  std::vector<std::unordered_set<std::string, StringHash, std::equal_to<>>> path_sets;
  // GET /v1/cubes/{cube}, made once per version (its dictionaries may hold a million values).
  mutable std::once_flag described_once;
  mutable std::string described;
};

std::string joined_path(const std::vector<std::string>& values) {
  std::string joined;
  for (const std::string& value : values) {
    joined += value;
    joined.push_back('\0');
  }
  return joined;
}

std::shared_ptr<const CubeVersion> make_version(CubePointer pointer, CubeManifest manifest) {
  auto version = std::make_shared<CubeVersion>();
  version->pointer = std::move(pointer);
  version->manifest = std::move(manifest);
  const std::size_t dimensions = version->manifest.schema.path.size();
  version->path_sets.resize(dimensions);
  for (std::uint32_t i = 0; i < version->manifest.files.size(); ++i) {
    const CubeFileEntry& file = version->manifest.files[i];
    version->files.emplace(joined_path(file.path), i);
    for (std::size_t d = 0; d < dimensions; ++d) version->path_sets[d].insert(file.path[d]);
  }
  for (const auto& set : version->path_sets) {
    std::vector<std::string> values(set.begin(), set.end());
    std::ranges::sort(values);
    version->path_values.push_back(std::move(values));
  }
  return version;
}

struct CubeMetrics {
  Counter& lookups;
  Counter& not_found;
  Counter& store_errors;
  Counter& refreshes;
};

CubeMetrics& cube_metrics() {
  static CubeMetrics counters{
      metrics().counter("sluice_cube_lookups_total", "Cube lookups answered from a record (200, 304, no_data)."),
      metrics().counter("sluice_cube_not_found_total", "Cube lookups naming an unknown cube, path or value."),
      metrics().counter("sluice_cube_store_errors_total", "Cube lookups that failed to read the store (503)."),
      metrics().counter("sluice_cube_versions_loaded_total", "Cube versions loaded (at start and after builds)."),
  };
  return counters;
}

// One configured cube and its current version.
class CubeState {
 public:
  explicit CubeState(const CubeConfig& config) : config_(config) {}
  const CubeConfig& config() const { return config_; }
  std::shared_ptr<const CubeVersion> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }
  void set(std::shared_ptr<const CubeVersion> version) {
    std::lock_guard lock(mutex_);
    current_ = std::move(version);
  }
  // The last refresh's problem ("" when it worked): logged once; without a version, lookups
  // answer 503 with it rather than "never built".
  std::string failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }
  void set_failure(std::string problem) {
    std::lock_guard lock(mutex_);
    failure_ = std::move(problem);
  }

 private:
  const CubeConfig& config_;
  mutable std::mutex mutex_;
  std::shared_ptr<const CubeVersion> current_;
  std::string failure_;
};

ApiError unknown_value(const std::string& dimension, std::string_view value,
                       const std::vector<std::string>& allowed) {
  std::string listed;
  for (std::size_t i = 0; i < allowed.size() && i < 8; ++i) listed += (i ? ", " : "") + allowed[i];
  if (allowed.size() > 8) listed += ", ... (" + std::to_string(allowed.size()) + " values)";
  ApiError error(404, "unknown_value",
                 "dimension \"" + dimension + "\" has no value \"" + shown_text(value) + "\" (values: " + listed + ")",
                 {{"dimension", dimension}});
  return error;
}

class CubeFeatureImpl final : public CubeFeature {
 public:
  CubeFeatureImpl(const Config& config, ObjectStore& store) : store_(store) {
    for (const CubeConfig& cube : config.cubes) cubes_.push_back(std::make_unique<CubeState>(cube));
  }
  ~CubeFeatureImpl() override { stop(); }

  void add_routes(Router& router) {
    router.add("GET", {"v1", "cubes"}, [this](const HttpRequest& request, HttpResponder& responder) {
      return list(request, responder);
    }, Access::needs("cubes"));
    router.add("GET", {"v1", "cubes", "*"}, [this](const HttpRequest& request, HttpResponder& responder) {
      return describe_or_lookup(request, responder);
    }, Access::needs("cubes:", 2));
    router.add("GET", {"v1", "cubes", "*", "**"}, [this](const HttpRequest& request, HttpResponder& responder) {
      return lookup(request, responder);
    }, Access::needs("cubes:", 2));
  }

  // Loads every cube's current version now (a server started after a build answers at once),
  // then looks for new ones on a thread of its own.
  void start() {
    for (auto& cube : cubes_) {
      auto refreshed = asio::co_spawn(io_, refresh(*cube), asio::use_future);
      io_.run();
      io_.restart();
      refreshed.get();
    }
    if (cubes_.empty()) return;
    auto loop = [this]() -> asio::awaitable<void> { co_await refresh_loop(); };
    asio::co_spawn(io_, loop, asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop() override {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      stopping_ = true;
      timer_.cancel();
    });
    thread_.join();
  }

 private:
  asio::awaitable<void> refresh_loop() {
    std::chrono::milliseconds interval = std::chrono::milliseconds::max();
    for (const auto& cube : cubes_) interval = std::min(interval, cube->config().refresh);
    auto last = std::chrono::steady_clock::now();
    std::vector<std::chrono::steady_clock::time_point> due(cubes_.size(), last);
    while (!stopping_) {
      timer_.expires_after(interval);
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping_) break;
      const auto now = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < cubes_.size(); ++i) {
        if (now < due[i]) continue;
        due[i] = now + cubes_[i]->config().refresh;
        co_await refresh(*cubes_[i]);
      }
    }
    store_.close_idle();  // its connections belong to this thread's context
  }

  // Reads the cube's pointer; loads the manifest when the version changed. A failure keeps the
  // version in use (logged once until it recovers).
  asio::awaitable<void> refresh(CubeState& cube) {
    std::string problem;
    try {
      std::optional<std::string> text = co_await store_.get(cube_pointer_key(cube.config().name), kMaxPointerBytes);
      if (text) {
        CubePointer pointer = parse_cube_pointer(*text);
        std::shared_ptr<const CubeVersion> current = cube.current();
        if (!current || current->pointer.version != pointer.version) {
          std::optional<std::string> manifest = co_await store_.get(pointer.manifest_key, kMaxManifestBytes);
          if (!manifest) throw CubeFormatError("the manifest " + pointer.manifest_key + " is missing");
          CubeManifest parsed = parse_cube_manifest(*manifest);
          if (parsed.version != pointer.version || parsed.cube != cube.config().name) {
            throw CubeFormatError("the manifest " + pointer.manifest_key + " is of another version");
          }
          cube.set(make_version(std::move(pointer), std::move(parsed)));
          cube_metrics().refreshes.add();
          log_event("cube " + cube.config().name + ": serving version " + cube.current()->pointer.version);
        } else if (pointer.retired.size() != current->pointer.retired.size()) {
          cube.set(make_version(std::move(pointer), current->manifest));  // (the kept versions changed)
        }
      }
    } catch (const std::exception& error) {
      problem = error.what();
    }
    if (!problem.empty() && problem != cube.failure()) {
      log_event("cube " + cube.config().name + ": cannot load its current version: " + problem);
    }
    cube.set_failure(std::move(problem));
  }

  CubeState& find(const std::string& name) const {
    for (const auto& cube : cubes_) {
      if (cube->config().name == name) return *cube;
    }
    std::string names;
    for (const auto& cube : cubes_) names += (names.empty() ? "" : ", ") + cube->config().name;
    cube_metrics().not_found.add();
    throw ApiError(404, "unknown_cube",
                   "no cube named \"" + shown_text(name) + "\"" + (names.empty() ? "" : " (cubes: " + names + ")"));
  }

  std::shared_ptr<const CubeVersion> version_of(const CubeState& cube) const {
    std::shared_ptr<const CubeVersion> version = cube.current();
    if (!version && !cube.failure().empty()) {
      cube_metrics().store_errors.add();
      throw ApiError(503, "store_unavailable",
                     "cube \"" + cube.config().name + "\" cannot be loaded from the store yet (see the server log)")
          .with_header("Retry-After", "1");
    }
    if (!version) {
      throw ApiError(404, "cube_not_built",
                     "cube \"" + cube.config().name + "\" has no version yet (run: sluice cube build " +
                         cube.config().name + ")");
    }
    return version;
  }

  json::object summary(const CubeState& cube, bool full) const {
    const CubeConfig& config = cube.config();
    json::object out{{"name", config.name}};
    if (!config.description.empty()) out["description"] = config.description;
    std::string url = "/v1/cubes/" + config.name;
    for (const std::string& name : config.path) url += "/{" + name + "}";
    for (std::size_t i = 0; i < config.file.size(); ++i) {
      url += (i == 0 ? "?" : "&") + config.file[i].name + "={" + config.file[i].name + "}";
    }
    out["url"] = url;
    out["max_age_s"] = config.max_age.count();
    std::shared_ptr<const CubeVersion> version = cube.current();
    if (!version) {
      out["version"] = nullptr;
      return out;
    }
    const CubeManifest& manifest = version->manifest;
    const CubeSchema& schema = manifest.schema;
    out["version"] = manifest.version;
    out["built_at"] = rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(manifest.built_at_ms)));
    out["rows"] = manifest.rows;
    out["files"] = manifest.files.size();
    json::array path;
    for (std::size_t d = 0; d < schema.path.size(); ++d) {
      json::object item{{"name", schema.path[d]}, {"count", version->path_values[d].size()}};
      if (full) item["values"] = json::value_from(version->path_values[d]);
      path.push_back(std::move(item));
    }
    out["path"] = std::move(path);
    auto dictionaries = [&](const std::vector<CubeDictionary>& list) {
      json::array array;
      for (const CubeDictionary& dictionary : list) {
        json::object item{{"name", dictionary.name}, {"count", dictionary.values.size()}};
        if (full) item["values"] = json::value_from(dictionary.values);
        array.push_back(std::move(item));
      }
      return array;
    };
    out["file"] = dictionaries(schema.file);
    out["body"] = dictionaries(schema.body);
    json::array metric_list;
    for (const CubeMetricLayout& metric : schema.metrics) {
      json::object item{{"name", metric.name}};
      switch (metric.type) {
        case CubeMetricType::kInt64: item["type"] = "int64"; break;
        case CubeMetricType::kFloat64: item["type"] = "float64"; break;
        case CubeMetricType::kDecimal: item["type"] = "decimal"; item["scale"] = metric.scale; break;
        case CubeMetricType::kText: item["type"] = "text"; break;
      }
      metric_list.push_back(std::move(item));
    }
    out["metrics"] = std::move(metric_list);
    if (full) {
      out["record_size"] = schema.record_size;
      out["records_per_file"] = schema.records;
      out["max_slice"] = config.max_slice;
      json::array versions{json::object{{"version", version->pointer.version}, {"current", true}}};
      for (auto it = version->pointer.retired.rbegin(); it != version->pointer.retired.rend(); ++it) {
        versions.push_back(json::object{
            {"version", it->version},
            {"current", false},
            {"retired_at", rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(it->retired_at_ms)))}});
      }
      out["versions"] = std::move(versions);
    }
    return out;
  }

  asio::awaitable<void> send_json(HttpResponder& responder, const json::value& body) const {
    Headers headers{{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
    co_await responder.send(200, std::move(headers), json::serialize(body));
  }

  asio::awaitable<void> list(const HttpRequest&, HttpResponder& responder) {
    json::array cubes;
    for (const auto& cube : cubes_) cubes.push_back(summary(*cube, false));
    const json::value body = json::object{{"cubes", std::move(cubes)}};
    co_await send_json(responder, body);
  }

  asio::awaitable<void> describe_or_lookup(const HttpRequest& request, HttpResponder& responder) {
    CubeState& cube = find(request.segments[2]);
    if (!request.params.empty()) {  // a lookup (without path values when the cube has none)
      co_await lookup(request, responder);
      co_return;
    }
    std::shared_ptr<const CubeVersion> version = cube.current();
    if (!version) {
      const json::value body = summary(cube, true);
      co_await send_json(responder, body);
      co_return;
    }
    std::call_once(version->described_once, [&] { version->described = json::serialize(summary(cube, true)); });
    Headers headers{{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
    co_await responder.send(200, std::move(headers), version->described);
  }

  asio::awaitable<void> lookup(const HttpRequest& request, HttpResponder& responder) {
    CubeState& cube = find(request.segments[2]);
    const CubeConfig& config = cube.config();
    const std::shared_ptr<const CubeVersion> version = version_of(cube);
    const CubeManifest& manifest = version->manifest;
    const CubeSchema& schema = manifest.schema;

    // The file: one path segment per path dimension.
    const std::size_t given = request.segments.size() - 3;
    if (given != schema.path.size()) {
      std::string shape = "/v1/cubes/" + config.name;
      for (const std::string& name : schema.path) shape += "/{" + name + "}";
      throw ApiError(400, "wrong_path",
                     "expected " + std::to_string(schema.path.size()) + " path value(s): " + shape + ", got " +
                         std::to_string(given));
    }
    std::string joined;
    for (std::size_t d = 0; d < schema.path.size(); ++d) {
      const std::string& value = request.segments[3 + d];
      if (!version->path_sets[d].contains(value)) {
        cube_metrics().not_found.add();
        throw unknown_value(schema.path[d], value, version->path_values[d]);
      }
      joined += value;
      joined.push_back('\0');
    }

    // The record(s): every file dimension once; the last may be a range a..b.
    const std::size_t dimensions = schema.file.size();
    std::vector<std::uint32_t> position(dimensions, 0);
    std::vector<bool> seen(dimensions, false);
    std::uint32_t last_to = 0;
    bool slice = false;
    for (const auto& [name, value] : request.params) {
      std::size_t d = 0;
      while (d < dimensions && schema.file[d].name != name) ++d;
      if (d == dimensions) {
        std::string names;
        for (const CubeDictionary& dictionary : schema.file) names += (names.empty() ? "" : ", ") + dictionary.name;
        throw ApiError(400, "unknown_parameter",
                       "unknown parameter \"" + shown_text(name) + "\" (the file dimensions are: " +
                           (names.empty() ? "none" : names) + ")",
                       {{"parameter", name}});
      }
      if (seen[d]) {
        throw ApiError(400, "duplicate_parameter", "parameter \"" + name + "\" is given more than once",
                       {{"parameter", name}});
      }
      seen[d] = true;
      const CubeDictionary& dictionary = schema.file[d];
      const std::size_t dots = value.find("..");
      if (dots != std::string::npos && !dictionary.find(value)) {
        if (d + 1 != dimensions) {
          throw ApiError(400, "invalid_slice",
                         "only the last file dimension (" + schema.file.back().name +
                             ") takes a range a..b: its records lie side by side",
                         {{"parameter", name}});
        }
        const std::string from = value.substr(0, dots);
        const std::string to = value.substr(dots + 2);
        auto first = dictionary.find(from);
        if (!first) throw unknown_value(name, from, dictionary.values);
        auto last = dictionary.find(to);
        if (!last) throw unknown_value(name, to, dictionary.values);
        if (*last < *first) {
          throw ApiError(400, "invalid_slice", "the range " + shown_text(value) + " ends before it starts",
                         {{"parameter", name}});
        }
        if (*last - *first + 1 > config.max_slice ||
            (*last - *first + 1) * static_cast<std::uint64_t>(schema.record_size) > kMaxSliceBytes) {
          throw ApiError(400, "slice_too_large",
                         "the range " + shown_text(value) + " holds " + std::to_string(*last - *first + 1) +
                             " records; at most " +
                             std::to_string(std::min<std::uint64_t>(config.max_slice, kMaxSliceBytes / schema.record_size)) +
                             " at once",
                         {{"parameter", name}});
        }
        position[d] = *first;
        last_to = *last;  // (d is the last dimension)
        slice = true;
      } else {
        auto found = dictionary.find(value);
        if (!found) {
          cube_metrics().not_found.add();
          throw unknown_value(name, value, dictionary.values);
        }
        position[d] = *found;
        if (d + 1 == dimensions) last_to = *found;
      }
    }
    for (std::size_t d = 0; d < dimensions; ++d) {
      if (!seen[d]) {
        throw ApiError(400, "missing_parameter",
                       "parameter \"" + schema.file[d].name + "\" is required (a value, or a range a..b for the last)",
                       {{"parameter", schema.file[d].name}});
      }
    }
    std::uint64_t first = 0;
    for (std::size_t d = 0; d < dimensions; ++d) first = first * schema.file[d].values.size() + position[d];
    const std::uint64_t count = dimensions == 0 ? 1 : last_to - position[dimensions - 1] + 1;

    Headers headers{{"Content-Type", "application/json"},
                    {"Cache-Control", "public, max-age=" + std::to_string(config.max_age.count())}};
    auto file = version->files.find(joined);
    // A strong tag of the version and the record(s): it changes with every build.
    std::string etag = "\"" + manifest.version + "-" +
                       (file == version->files.end() ? std::string("x") : std::to_string(file->second)) + "-" +
                       std::to_string(first) + (slice ? "-" + std::to_string(count) : "") + "\"";
    headers.emplace_back("ETag", etag);
    cube_metrics().lookups.add();
    if (if_none_match_matches(request.header("If-None-Match"), etag)) {
      co_await responder.send(304, std::move(headers), {});
      co_return;
    }
    std::string body;
    if (file != version->files.end()) {
      const CubeFileEntry& entry = manifest.files[file->second];
      std::string records;
      std::exception_ptr failure;
      try {
        records = co_await store_.read_range(entry.key, entry.data_offset + first * schema.record_size,
                                             static_cast<std::size_t>(count * schema.record_size));
      } catch (const StorageError&) {
        failure = std::current_exception();
      }
      if (failure) {
        cube_metrics().store_errors.add();
        try {
          std::rethrow_exception(failure);
        } catch (const StorageError& error) {
          // Never a cacheable answer: the next try may succeed. (The object's key stays in the log.)
          log_event("cube " + config.name + ": " + request.request_id + ": reading the store failed: " + error.what());
          throw ApiError(503, "store_unavailable", "the cube's store failed; try again (request " +
                                                       request.request_id + " in the server log)")
              .with_header("Retry-After", "1");
        }
      }
      const std::string_view bytes(records);
      if (!slice) {
        if (!schema.render_record(bytes.substr(0, schema.record_size), body)) body.clear();
      } else {
        const CubeDictionary& last = schema.file.back();
        body.push_back('{');
        for (std::uint64_t i = 0; i < count; ++i) {
          if (i != 0) body.push_back(',');
          body += last.json(static_cast<std::uint32_t>(position[dimensions - 1] + i));
          body.push_back(':');
          if (!schema.render_record(bytes.substr(i * schema.record_size, schema.record_size), body)) body += "null";
          if (body.size() > kMaxBodyBytes) {
            throw ApiError(400, "slice_too_large",
                           "the answer would pass 32 MiB of JSON after " + std::to_string(i + 1) +
                               " records: ask for a shorter range");
          }
        }
        body.push_back('}');
      }
    } else if (slice) {
      body = "{";  // no file for this path: every cell of the slice is without data
      for (std::uint64_t i = 0; i < count; ++i) {
        body += (i ? ",": "") + schema.file.back().json(static_cast<std::uint32_t>(position[dimensions - 1] + i)) + ":null";
      }
      body += "}";
    }
    if (body.empty()) {
      // No data is an answer of this version, as cacheable as a record; not an error of Sluice.
      headers.emplace_back("X-Cube-Version", manifest.version);
      // (No request id in it: a CDN serves this body to everyone.)
      co_await responder.send(404, std::move(headers),
                              R"({"error":{"code":"no_data","message":"this cell has no data"}})");
      co_return;
    }
    co_await responder.send(200, std::move(headers), std::move(body));
  }

  ObjectStore& store_;
  std::vector<std::unique_ptr<CubeState>> cubes_;
  asio::io_context io_;
  asio::steady_timer timer_{io_};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<CubeFeature> make_cube_feature(const Config& config, ObjectStore& store, Router& router) {
  auto feature = std::make_unique<CubeFeatureImpl>(config, store);
  feature->add_routes(router);
  feature->start();
  return feature;
}

}  // namespace sluice
