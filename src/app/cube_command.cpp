#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <iostream>

#include "app/commands.hpp"
#include "features/cubes/cube_builder.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "storage/open_object_store.hpp"

namespace sluice {

int cube_build_command(const CubeBuildOptions& options) {
  const Config config = load_config(options.config_file);
  if (!config.storage) throw std::runtime_error(config.file.string() + " has no [storage] section: cubes are stored there");
  std::vector<const CubeConfig*> cubes;
  if (options.all) {
    for (const CubeConfig& cube : config.cubes) cubes.push_back(&cube);
    if (cubes.empty()) throw std::runtime_error(config.file.string() + " has no [[cubes]]");
  } else {
    const CubeConfig* cube = config.find_cube(options.cube);
    if (cube == nullptr) {
      std::string names;
      for (const CubeConfig& c : config.cubes) names += (names.empty() ? "" : ", ") + c.name;
      throw std::runtime_error("no cube named '" + options.cube + "' in " + config.file.string() +
                               (names.empty() ? " (it has no [[cubes]])" : " (cubes: " + names + ")"));
    }
    cubes.push_back(cube);
  }
  build_cubes(config, cubes, std::cout, options.full);
  return 0;
}

void build_cubes(const Config& config, const std::vector<const CubeConfig*>& cubes, std::ostream& out,
                 bool full) {
  boost::asio::io_context io;  // before the catalog and the store: their connections close first
  DatasetCatalog catalog(config);
  std::unique_ptr<ObjectStore> store = open_object_store(*config.storage);
  for (const CubeConfig* cube : cubes) {
    std::exception_ptr failure;
    CubeBuildStats stats;
    boost::asio::co_spawn(io,
                          build_cube(*cube, *catalog.source(cube->source), *store,
                                     full ? CubeBuildMode::kFull : CubeBuildMode::kIncremental),
                          [&](std::exception_ptr error, CubeBuildStats result) {
                            failure = std::move(error);
                            stats = std::move(result);
                          });
    io.run();
    io.restart();
    if (failure) std::rethrow_exception(failure);
    if (stats.unchanged) {
      out << "cube " << cube->name << ": changed_query names no change: version " << stats.version
          << " stays\n";
      continue;
    }
    const double seconds = stats.query_seconds + stats.write_seconds;
    char line[512];
    std::snprintf(line, sizeof line,
                  "cube %s: published version %s%s: %llu rows in %.2f s (%.0f rows/s; query %.2f s, "
                  "files %.2f s), %llu cells in %llu files (%llu written, %llu unchanged), %llu bytes "
                  "stored, %u bytes per record",
                  cube->name.c_str(), stats.version.c_str(), stats.incremental ? " (incremental)" : "",
                  static_cast<unsigned long long>(stats.rows),
                  seconds, seconds > 0 ? static_cast<double>(stats.rows) / seconds : 0.0,
                  stats.query_seconds, stats.write_seconds, static_cast<unsigned long long>(stats.cells),
                  static_cast<unsigned long long>(stats.files),
                  static_cast<unsigned long long>(stats.files_written),
                  static_cast<unsigned long long>(stats.files - stats.files_written),
                  static_cast<unsigned long long>(stats.bytes_stored), stats.record_size);
    out << line;
    if (!stats.deleted_versions.empty()) out << "; deleted " << stats.deleted_versions.size() << " old version(s)";
    out << '\n';
  }
  store->close_idle();
  catalog.close();
}

}  // namespace sluice
