#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace sluice {

// sluice serve: serves `config` until SIGINT/SIGTERM. Prints "listening on http://HOST:PORT"
// to stdout once it accepts connections, followed by `banner` lines when given.
int serve_command(const Config& config, const std::optional<std::string>& listen,
                  const std::vector<std::string>& banner_paths = {},
                  const std::vector<std::string>& banner_lines = {});

// sluice worker: runs background jobs of [queue] (no HTTP) until SIGINT/SIGTERM; running jobs
// may finish within [server] shutdown_grace_ms, else they are handed back to the queue.
int worker_command(const std::filesystem::path& config_file, std::optional<unsigned> workers);

struct ExportOptions {
  std::filesystem::path config_file;
  std::string dataset;
  // csv, tsv, jsonl or json; when absent, the output name's suffix (orders.jsonl.gz), else csv.
  std::optional<std::string> format;
  std::vector<std::string> filters;             // "name=value" or "name.op=value"
  std::optional<std::string> columns;           // as `columns=`: output names, comma-separated
  std::optional<std::string> order;             // as `order=`: -created_at,id
  std::optional<std::uint64_t> limit;           // as `limit=`
  bool quiet = false;                           // no progress line, no summary
  std::optional<std::filesystem::path> output;  // stdout when absent
  // Into the object store of [storage] under this key instead (local folder or S3): the object
  // appears only when complete, and a failure leaves nothing (no partial upload either).
  std::optional<std::string> to_store;
  // Output options, applied like the HTTP query parameters of the same meaning.
  std::optional<std::string> delimiter;  // one character; "tab" or "\t" for TAB
  bool no_header = false;
  bool bom = false;
  bool lf = false;
  // "gzip", "zstd" or "none"; when absent, an output name ending .gz / .zst decides.
  std::optional<std::string> compress;
};
// sluice export: the same pipeline as the HTTP endpoint, into a file, stdout or the object
// store. A file is written under a temporary name and renamed only when complete; a stored
// object is committed only when complete.
int export_command(const ExportOptions& options);

struct DemoCommandOptions {
  std::filesystem::path dir = "sluice-demo";
  std::uint64_t rows = 2'000'000;
  std::string listen = "127.0.0.1:8080";
};
int demo_command(const DemoCommandOptions& options);

int check_config_command(const std::filesystem::path& file);

struct PresignOptions {
  std::string key;
  std::filesystem::path config_file = "sluice.toml";
  std::string expires = "1h";           // 30s, 15m, 1h, 7d (at most 7d)
  std::optional<std::string> base_url;  // default: http://<[server] listen>
};
// sluice presign: prints a presigned link to stored object `key` (GET /v1/files/{key}), signed
// with the secret in the environment variable named by [storage] link_secret_env.
int presign_command(const PresignOptions& options);

struct StoreOptions {
  std::filesystem::path config_file = "sluice.toml";
  std::string action;  // "put", "get", "ls", "rm"
  std::string key;     // put/get/rm: the object; ls: the prefix ("" = everything)
  std::string file;    // put: the file to upload; get: where to write ("-" = stdout)
};
// sluice store: copies a file into the [storage] object store or out of it, lists and deletes
// objects, through the same ObjectStore the server uses (S3: multipart uploads, ranged GETs).
// put makes the object visible only when complete; get writes FILE.partial and renames it.
int store_command(const StoreOptions& options);

struct CubeBuildOptions {
  std::filesystem::path config_file = "sluice.toml";
  std::string cube;  // one cube, or every cube of the config with `all`
  bool all = false;
  bool full = false;  // ignore changed_query: read and lay out everything
};
// sluice cube build: runs each cube's query, writes a new version into [storage] and switches
// the cube to it; prints one line per cube (rows, rate, files written and unchanged, bytes).
int cube_build_command(const CubeBuildOptions& options);
// The same for cubes of a loaded config, the lines written to `out`. Throws on the first failure.
void build_cubes(const Config& config, const std::vector<const CubeConfig*>& cubes, std::ostream& out,
                 bool full = false);

}  // namespace sluice
