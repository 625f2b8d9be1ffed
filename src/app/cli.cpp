#include "app/cli.hpp"

#include <CLI/CLI.hpp>
#include <boost/version.hpp>
#include <iostream>
#include <sqlite3.h>
#include <string_view>

#include "app/commands.hpp"
#include "app/token_command.hpp"
#include "features/files/presigned_link.hpp"

namespace sluice {

namespace {

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif
#ifndef SLUICE_BUILD_TYPE
#define SLUICE_BUILD_TYPE ""
#endif

// "sluice 0.1.0 (Release build, g++ 12.2.0, Boost 1.81, SQLite 3.40.1)".
std::string version_text() {
  std::string text = "sluice " SLUICE_VERSION " (";
  if (!std::string_view(SLUICE_BUILD_TYPE).empty()) text += SLUICE_BUILD_TYPE " build, ";
#if defined(__clang__)
  text += "clang " __clang_version__;
#elif defined(__GNUC__)
  text += "g++ " __VERSION__;
#endif
  text += ", Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
          std::to_string(BOOST_VERSION / 100 % 1000) + ", SQLite " + sqlite3_libversion() + ")";
  return text;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"Sluice: large data, delivered on demand"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text());

  std::filesystem::path serve_config;
  std::optional<std::string> serve_listen;
  auto* serve = app.add_subcommand("serve", "Serve the datasets of a configuration over HTTP");
  serve->add_option("--config", serve_config, "Configuration file (TOML)")->required();
  serve->add_option("--listen", serve_listen, "HOST:PORT to listen on (overrides [server] listen)");

  std::filesystem::path worker_config;
  std::optional<unsigned> worker_slots;
  auto* worker = app.add_subcommand(
      "worker", "Run background export jobs of [queue] (no HTTP), until SIGINT/SIGTERM");
  worker->add_option("--config", worker_config, "Configuration file (TOML)")->required();
  worker->add_option("--workers", worker_slots, "Jobs at once (default: [queue] workers)")
      ->check(CLI::Range(1u, 1000u));

  DemoCommandOptions demo_options;
  auto* demo = app.add_subcommand(
      "demo", "Create (or reuse) a demo folder with a generated SQLite database and serve it");
  demo->add_option("--rows", demo_options.rows, "Rows in the orders table")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000'000}));
  demo->add_option("--dir", demo_options.dir, "Working folder (reused when it exists)");
  demo->add_option("--listen", demo_options.listen, "HOST:PORT to listen on");

  ExportOptions export_options;
  export_options.config_file = "sluice.toml";
  auto* export_cmd = app.add_subcommand("export", "Export a dataset to a file or stdout");
  export_cmd->add_option("dataset", export_options.dataset, "Dataset name")->required();
  export_cmd->add_option("--config", export_options.config_file, "Configuration file (TOML)");
  export_cmd
      ->add_option("--format", export_options.format,
                   "csv, tsv, jsonl or json (default: by the output's suffix, else csv)")
      ->check(CLI::IsMember({"csv", "tsv", "jsonl", "json"}));
  export_cmd->add_option("--columns", export_options.columns,
                         "Columns to write, in this order: a,b,c (output names)");
  export_cmd->add_option("--order", export_options.order,
                         "Sort by sortable columns: -created_at,id ('-': descending)");
  export_cmd->add_option("--limit", export_options.limit, "At most this many rows");
  export_cmd->add_flag("-q,--quiet", export_options.quiet,
                       "No progress line (shown when stderr is a terminal) and no summary");
  export_cmd->add_option("--delimiter", export_options.delimiter,
                         "CSV delimiter: one character, e.g. ';' ('tab' for TAB)");
  export_cmd->add_flag("--no-header", export_options.no_header, "CSV/TSV: no header row");
  export_cmd->add_flag("--bom", export_options.bom, "CSV: start with a UTF-8 BOM (for Excel)");
  export_cmd->add_flag("--lf", export_options.lf, "CSV: end records with LF instead of CRLF");
  export_cmd->add_option("--filter", export_options.filters,
                         "Filter as name=value or name.op=value (repeatable)");
  auto* output_option =
      export_cmd->add_option("-o,--output", export_options.output, "Output file (default: stdout)");
  export_cmd
      ->add_option("--to-store", export_options.to_store,
                   "Write into the [storage] object store under this key (S3: a multipart "
                   "upload, visible only when complete)")
      ->excludes(output_option);
  export_cmd
      ->add_option("--compress", export_options.compress,
                   "gzip, zstd or none (default: by the output's suffix .gz / .zst)")
      ->check(CLI::IsMember({"gzip", "zstd", "none"}));

  std::filesystem::path check_file;
  auto* check = app.add_subcommand("check-config", "Validate a configuration file");
  check->add_option("file", check_file, "Configuration file (TOML)")->required();

  PresignOptions presign_options;
  auto* presign = app.add_subcommand(
      "presign", "Print a presigned link (GET /v1/files/KEY) to a stored object of [storage]");
  presign->add_option("key", presign_options.key, "Object key, e.g. album/2024/photo.jpg")
      ->required();
  presign->add_option("--config", presign_options.config_file, "Configuration file (TOML)");
  presign
      ->add_option("--expires", presign_options.expires,
                   "How long the link is valid: 30s, 15m, 1h, 7d (default 1h, at most 7d)")
      ->check(CLI::Validator([](std::string& text) { return parse_link_lifetime(text).error; },
                             "DURATION"));
  presign->add_option("--base-url", presign_options.base_url,
                      "Scheme, host and port the link starts with (default: http://LISTEN of "
                      "[server] listen)");

  StoreOptions store_options;
  auto* store = app.add_subcommand(
      "store", "Copy files into or out of the [storage] object store, list or delete objects");
  store->require_subcommand(1);
  store->add_option("--config", store_options.config_file, "Configuration file (TOML)");
  auto* store_put = store->add_subcommand("put", "Upload FILE as object KEY");
  store_put->add_option("file", store_options.file, "File to upload")->required();
  store_put->add_option("key", store_options.key, "Object key")->required();
  auto* store_get = store->add_subcommand("get", "Download object KEY into FILE ('-': stdout)");
  store_get->add_option("key", store_options.key, "Object key")->required();
  store_get->add_option("file", store_options.file, "Target file, or - for stdout")->required();
  auto* store_ls = store->add_subcommand("ls", "List objects under PREFIX (size, key)");
  store_ls->add_option("prefix", store_options.key, "Key prefix (default: everything)");
  auto* store_rm = store->add_subcommand("rm", "Delete object KEY");
  store_rm->add_option("key", store_options.key, "Object key")->required();
  for (auto* action : {store_put, store_get, store_ls, store_rm})
    action->fallthrough();  // --config after

  CubeBuildOptions cube_options;
  auto* cube = app.add_subcommand("cube", "Precomputed cubes of [[cubes]]");
  cube->require_subcommand(1);
  auto* cube_build = cube->add_subcommand(
      "build", "Run a cube's query, store a new version and switch the cube to it");
  auto* cube_name = cube_build->add_option("name", cube_options.cube, "Cube name");
  cube_build->add_flag("--all", cube_options.all, "Build every cube of the configuration")
      ->excludes(cube_name);
  cube_build->add_flag("--full", cube_options.full,
                       "Read everything, even when the cube has a changed_query");
  cube_build->add_option("--config", cube_options.config_file, "Configuration file (TOML)");

  TokenCreateOptions token_options;
  auto* token = app.add_subcommand("token", "API tokens of [auth]")->require_subcommand(1);
  auto* token_create = token->add_subcommand("create", "Print a new API token and its TOML lines");
  token_create->add_option("--name", token_options.name, "Token name (logged, never the token)")->required();
  token_create->add_option("--scope", token_options.scopes, "Scope (repeatable): datasets:orders*, jobs, ...")->required();
  token_create->add_option("--expires", token_options.expires, "Lifetime: 30d, 12h, 90m (default: none)");

  CLI11_PARSE(app, argc, argv);
  try {
    if (serve->parsed()) return serve_command(load_config(serve_config), serve_listen);
    if (demo->parsed()) return demo_command(demo_options);
    if (worker->parsed()) return worker_command(worker_config, worker_slots);
    if (export_cmd->parsed()) return export_command(export_options);
    if (check->parsed()) return check_config_command(check_file);
    if (presign->parsed()) return presign_command(presign_options);
    if (token_create->parsed()) return token_create_command(token_options);
    if (cube_build->parsed()) {
      if (!cube_options.all && cube_options.cube.empty()) {
        throw std::runtime_error("cube build: give a cube name or --all");
      }
      return cube_build_command(cube_options);
    }
    if (store->parsed()) {
      for (auto* action : {store_put, store_get, store_ls, store_rm}) {
        if (action->parsed()) store_options.action = action->get_name();
      }
      return store_command(store_options);
    }
  } catch (const std::exception& error) {
    // One line per problem (check-config reports every problem of a file).
    std::string_view text = error.what();
    for (std::size_t end = text.find('\n'); ; end = text.find('\n')) {
      std::cerr << "sluice: " << text.substr(0, end) << '\n';
      if (end == std::string_view::npos) break;
      text.remove_prefix(end + 1);
    }
    return 1;
  }
  return 2;
}

}  // namespace sluice
