#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>

namespace sluice {

struct DemoOptions {
  std::filesystem::path dir;  // working folder
  std::uint64_t rows = 2'000'000;
  std::string listen = "127.0.0.1:8080";
};

struct DemoSetup {
  std::filesystem::path config_file;  // dir/sluice.toml
  std::filesystem::path database;     // dir/orders.db
  std::filesystem::path objects;      // dir/objects: the object store archives read
  bool created = false;               // false when an existing folder was reused
  std::uint64_t rows = 0;             // rows in the orders table
};

// Creates (or reuses) the demo folder: a deterministic `orders` SQLite database (the same row
// count always gives the same content, including the CSV/JSON hard cases in `note`) and a
// sluice.toml serving it. A database is only reused when its completion marker is present, so
// an interrupted generation is rebuilt. Throws std::runtime_error with a clear message on
// failure.
DemoSetup prepare_demo(const DemoOptions& options, std::ostream& log);

}  // namespace sluice
