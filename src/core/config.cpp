#include "core/config.hpp"

#include "core/config_reader.hpp"
#include "core/file_name_template.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>

namespace sluice {
namespace config_detail {
namespace {

namespace fs = std::filesystem;

struct SizeKey {
  std::string_view key;
  std::size_t ServerConfig::*member;
  std::int64_t min;
};

struct DurationKey {
  std::string_view key;
  std::chrono::milliseconds ServerConfig::*member;
  std::int64_t min;
};

constexpr std::array<SizeKey, 5> kSizeKeys{{
    {"max_header_bytes", &ServerConfig::max_header_bytes, 1024},
    {"max_body_bytes", &ServerConfig::max_body_bytes, 0},
    {"stream_buffer_bytes", &ServerConfig::stream_buffer_bytes, 65536},
    {"max_streams", &ServerConfig::max_streams, 1},
    {"max_connections", &ServerConfig::max_connections, 0},
}};

constexpr std::array<DurationKey, 4> kDurationKeys{{
    {"read_timeout_ms", &ServerConfig::read_timeout, 1},
    {"idle_timeout_ms", &ServerConfig::idle_timeout, 1},
    {"write_timeout_ms", &ServerConfig::write_timeout, 1},
    {"shutdown_grace_ms", &ServerConfig::shutdown_grace, 0},
}};

ServerConfig read_server(const Reader& reader, const toml::table& table, const fs::path& base_dir) {
  reader.check_keys(table, "server",
                    {"listen", "threads", "max_header_bytes", "max_body_bytes", "read_timeout_ms",
                     "idle_timeout_ms", "write_timeout_ms", "shutdown_grace_ms",
                     "stream_buffer_bytes", "max_streams", "max_connections", "log_format",
                     "ops_listen", "tls"});
  ServerConfig server;
  if (const auto* format = reader.optional<TomlString>(table, "server", "log_format")) {
    if (format->get() != "text" && format->get() != "json") {
      reader.fail(*format, "server.log_format",
                  "expected one of: text, json, got " + quote_text(format->get()));
    }
    server.log_format = format->get();
  }
  if (const auto* listen = reader.optional<TomlString>(table, "server", "listen")) {
    std::string_view problem = listen_problem(listen->get());
    if (!problem.empty()) {
      reader.fail(
          *listen, "server.listen",
          "expected HOST:PORT, got " + quote_text(listen->get()) + ": " + std::string(problem));
    }
    server.listen = listen->get();
  }
  read_server_tls(reader, table, base_dir, server);
  if (auto threads = reader.optional_int(table, "server", "threads", 0, kMaxUnsigned)) {
    server.threads = static_cast<unsigned>(*threads);
  }
  for (const SizeKey& size : kSizeKeys) {
    if (auto value = reader.optional_int(table, "server", size.key, size.min, kMaxInt)) {
      server.*size.member = static_cast<std::size_t>(*value);
    }
  }
  for (const DurationKey& duration : kDurationKeys) {
    if (auto value = reader.optional_int(table, "server", duration.key, duration.min, kMaxInt)) {
      server.*duration.member = std::chrono::milliseconds(*value);
    }
  }
  return server;
}

// Resolves a database path against the config file's folder; the file must already exist
// because sources are opened read-only and must not create an empty database by accident.
fs::path read_database_path(const Reader& reader, const toml::table& table, std::string_view path,
                            const fs::path& base_dir) {
  const auto& value = reader.required<TomlString>(table, path, "path");
  std::string key = key_child(path, "path");
  if (value.get().empty()) reader.fail(value, key, "must not be empty");
  fs::path resolved = (base_dir / fs::path(value.get())).lexically_normal();
  std::string problem = database_file_problem(resolved);
  if (!problem.empty()) reader.fail(value, key, problem);
  return resolved;
}

// The URL comes from `url` or, to keep passwords out of the file, from the environment
// variable named by `url_env`.
void read_postgres_source(const Reader& reader, const toml::table& table, std::string_view path,
                          SourceConfig& source) {
  reader.check_keys(table, path,
                    {"kind", "url", "url_env", "pool_size", "pool_timeout_ms", "connect_timeout_ms",
                     "statement_timeout_ms", "copy_format"});
  if (const auto* format = reader.optional<TomlString>(table, path, "copy_format")) {
    if (format->get() != "auto" && format->get() != "text" && format->get() != "csv") {
      reader.fail(*format, key_child(path, "copy_format"),
                  "expected one of: auto, text, csv, got " + quote_text(format->get()));
    }
    source.copy_format = format->get();
  }
  const auto* url = reader.optional<TomlString>(table, path, "url");
  const auto* url_env = reader.optional<TomlString>(table, path, "url_env");
  if ((url == nullptr) == (url_env == nullptr)) {
    reader.fail(table, key_child(path, "url"), "give exactly one of url and url_env");
  }
  if (url != nullptr) {
    source.url = url->get();
  } else {
    source.url = reader.environment(*url_env, key_child(path, "url_env"));
  }
  if (auto size = reader.optional_int(table, path, "pool_size", 1, 10'000)) {
    source.pool_size = static_cast<std::size_t>(*size);
  }
  auto millis = [&](std::string_view key, std::chrono::milliseconds& out, std::int64_t min) {
    if (auto value = reader.optional_int(table, path, key, min, kMaxInt)) {
      out = std::chrono::milliseconds(*value);
    }
  };
  millis("pool_timeout_ms", source.pool_timeout, 0);
  millis("connect_timeout_ms", source.connect_timeout, 1);
  millis("statement_timeout_ms", source.statement_timeout, 0);
}

SourceConfig read_source(const Reader& reader, const toml::table& table, std::string_view path,
                         std::string_view name, const fs::path& base_dir) {
  SourceConfig source;
  source.name = name;
  source.line = line_of(table);
  const auto& kind = reader.required<TomlString>(table, path, "kind");
  source.kind = kind.get();
  if (source.kind == "postgres") {
    read_postgres_source(reader, table, path, source);
    return source;
  }
  if (kind.get() != "sqlite") {
    reader.fail(kind, key_child(path, "kind"),
                "unsupported kind " + quote_text(kind.get()) + " (expected one of: sqlite, postgres)");
  }
  reader.check_keys(table, path, {"kind", "path", "blocking_threads"});
  source.path = read_database_path(reader, table, path, base_dir);
  if (auto threads = reader.optional_int(table, path, "blocking_threads", 0, kMaxUnsigned)) {
    source.blocking_threads = static_cast<unsigned>(*threads);
  }
  return source;
}

void read_sources(const Reader& reader, const toml::table& root, const fs::path& base_dir,
                  Config& config) {
  const auto* sources = reader.optional<toml::table>(root, "", "sources");
  if (sources == nullptr) return;
  for (auto&& [key, node] : *sources) {
    const std::string_view name = key.str();  // (lambdas capture no structured bindings in clang 14)
    const toml::node& item = node;
    std::string path = key_child("sources", name);
    const bool read = reader.recover([&] {
      std::string problem = source_name_problem(name);
      if (!problem.empty()) reader.fail(item, path, problem);
      const auto& table = reader.expect<toml::table>(item, path);
      config.sources.emplace(std::string(name), read_source(reader, table, path, name, base_dir));
    });
    // Known by name, so that datasets using it are not reported as well.
    if (!read) config.sources.emplace(std::string(name), SourceConfig{});
  }
}

std::vector<FilterOp> read_operators(const Reader& reader, const toml::array& array,
                                     std::string_view path) {
  if (array.empty()) reader.fail(array, path, "must list at least one operator");
  std::vector<FilterOp> operators;
  for (std::size_t i = 0; i < array.size(); ++i) {
    std::string key = key_element(path, i);
    const auto& name = reader.expect<TomlString>(*array.get(i), key);
    std::optional<FilterOp> op = parse_filter_op(name.get());
    if (!op) {
      reader.fail(name, key,
                  "unknown operator " + quote_text(name.get()) +
                      " (expected one of: " + filter_op_names() + ")");
    }
    if (std::ranges::find(operators, *op) != operators.end()) {
      reader.fail(name, key, "duplicate operator " + quote_text(name.get()));
    }
    operators.push_back(*op);
  }
  return operators;
}

FilterConfig read_filter(const Reader& reader, const toml::table& table, std::string_view path,
                         std::string_view name) {
  reader.check_keys(table, path, {"column", "type", "operators"});
  FilterConfig filter;
  filter.name = name;
  filter.column = name;
  filter.line = line_of(table);
  if (const auto* column = reader.optional<TomlString>(table, path, "column")) {
    if (column->get().empty()) reader.fail(*column, key_child(path, "column"), "must not be empty");
    filter.column = column->get();
  }
  if (const auto* type = reader.optional<TomlString>(table, path, "type")) {
    std::optional<FilterType> parsed = parse_filter_type(type->get());
    if (!parsed) {
      reader.fail(*type, key_child(path, "type"),
                  "unknown type " + quote_text(type->get()) +
                      " (expected one of: " + filter_type_names() + ")");
    }
    filter.type = *parsed;
  }
  if (const auto* operators = reader.optional<toml::array>(table, path, "operators")) {
    filter.operators = read_operators(reader, *operators, key_child(path, "operators"));
    bool prefix = std::ranges::find(filter.operators, FilterOp::kPrefix) != filter.operators.end();
    if (prefix && filter.type != FilterType::kText) {
      reader.fail(*operators, key_child(path, "operators"),
                  "prefix needs a text filter (this one is " + std::string(to_string(filter.type)) + ")");
    }
  }
  return filter;
}

std::vector<FilterConfig> read_filters(const Reader& reader, const toml::table& dataset,
                                       std::string_view path) {
  const auto* filters = reader.optional<toml::table>(dataset, path, "filters");
  if (filters == nullptr) return {};
  std::string filters_path = key_child(path, "filters");
  std::vector<FilterConfig> result;
  for (auto&& [key, node] : *filters) {
    std::string filter_path = key_child(filters_path, key.str());
    std::string problem = filter_name_problem(key.str());
    if (!problem.empty()) reader.fail(node, filter_path, problem);
    const auto& table = reader.expect<toml::table>(node, filter_path);
    result.push_back(read_filter(reader, table, filter_path, key.str()));
  }
  // toml++ happens to iterate in key order; sorting keeps that a promise rather than an accident.
  std::ranges::sort(result, {}, &FilterConfig::name);
  return result;
}

// [datasets.output]: how the exported bytes are laid out (see core/output_options.hpp).
OutputOptions read_output(const Reader& reader, const toml::table& dataset, std::string_view path) {
  OutputOptions output;
  const auto* table = reader.optional<toml::table>(dataset, path, "output");
  if (table == nullptr) return output;
  const std::string out_path = key_child(path, "output");
  reader.check_keys(*table, out_path,
                    {"delimiter", "header", "line_ending", "bom", "formula_guard", "invalid_utf8"});
  if (const auto* delimiter = reader.optional<TomlString>(*table, out_path, "delimiter")) {
    if (delimiter->get().size() != 1 || !is_valid_delimiter(delimiter->get().front())) {
      reader.fail(*delimiter, key_child(out_path, "delimiter"),
                  "expected one ASCII character other than '\"', CR and LF (\"\\t\" for TAB), got " +
                      quote_text(delimiter->get()));
    }
    output.delimiter = delimiter->get().front();
  }
  if (const auto* ending = reader.optional<TomlString>(*table, out_path, "line_ending")) {
    if (ending->get() != "crlf" && ending->get() != "lf") {
      reader.fail(*ending, key_child(out_path, "line_ending"),
                  "expected one of: crlf, lf, got " + quote_text(ending->get()));
    }
    output.crlf = ending->get() == "crlf";
  }
  if (const auto* mode = reader.optional<TomlString>(*table, out_path, "invalid_utf8")) {
    if (mode->get() != "replace" && mode->get() != "fail") {
      reader.fail(*mode, key_child(out_path, "invalid_utf8"),
                  "expected one of: replace, fail, got " + quote_text(mode->get()));
    }
    output.invalid_utf8 = mode->get() == "fail" ? InvalidUtf8::kFail : InvalidUtf8::kReplace;
  }
  if (const auto* header = reader.optional<TomlBool>(*table, out_path, "header")) {
    output.header = header->get();
  }
  if (const auto* bom = reader.optional<TomlBool>(*table, out_path, "bom")) output.bom = bom->get();
  if (const auto* guard = reader.optional<TomlBool>(*table, out_path, "formula_guard")) {
    output.formula_guard = guard->get();
  }
  return output;
}

DatasetConfig read_dataset(const Reader& reader, const toml::table& table, std::string_view path) {
  reader.check_keys(table, path,
                    {"name", "source", "query", "file_name", "description", "filters", "columns",
                     "sortable", "order", "output", "version_query"});
  DatasetConfig dataset;
  dataset.line = line_of(table);
  const auto& name = reader.required<TomlString>(table, path, "name");
  std::string problem = dataset_name_problem(name.get());
  if (!problem.empty()) reader.fail(name, key_child(path, "name"), problem);
  dataset.name = name.get();
  dataset.source = reader.required<TomlString>(table, path, "source").get();
  const auto& query = reader.required<TomlString>(table, path, "query");
  if (is_blank(query.get())) reader.note(query, key_child(path, "query"), "must not be empty");
  dataset.query = query.get();
  dataset.file_name = dataset.name;
  if (const auto* file_name = reader.optional<TomlString>(table, path, "file_name")) {
    std::string problem(file_name_problem(file_name->get()));
    if (problem.empty()) problem = file_name_template_problem(file_name->get());
    if (!problem.empty()) reader.fail(*file_name, key_child(path, "file_name"), problem);
    dataset.file_name = file_name->get();
  }
  if (const auto* description = reader.optional<TomlString>(table, path, "description")) {
    dataset.description = description->get();
  }
  // Independent parts: a problem in one does not hide those in the others.
  reader.recover([&] { dataset.filters = read_filters(reader, table, path); });
  reader.recover([&] { read_columns(reader, table, path, dataset); });
  reader.recover([&] { dataset.output = read_output(reader, table, path); });
  if (const auto* sortable = reader.optional<toml::array>(table, path, "sortable")) {
    std::string sortable_path = key_child(path, "sortable");
    for (std::size_t i = 0; i < sortable->size(); ++i) {
      std::string key = key_element(sortable_path, i);
      const auto& column = reader.expect<TomlString>(*sortable->get(i), key);
      if (column.get().empty()) reader.fail(column, key, "must not be empty");
      if (std::ranges::find(dataset.sortable, column.get()) != dataset.sortable.end()) {
        reader.fail(column, key, "duplicate column " + quote_text(column.get()));
      }
      dataset.sortable.push_back(column.get());
    }
  }
  if (const auto* version = reader.optional<TomlString>(table, path, "version_query")) {
    if (is_blank(version->get())) {
      reader.fail(*version, key_child(path, "version_query"), "must not be empty");
    }
    dataset.version_query = version->get();
  }
  if (const auto* order = reader.optional<TomlString>(table, path, "order")) {
    dataset.order = order->get();
    dataset.order_line = line_of(*order);
    if (dataset.sortable.empty()) {
      reader.fail(*order, key_child(path, "order"), "needs a `sortable` list of columns");
    }
  }
  return dataset;
}

// One [[datasets]] entry into config.datasets. One that cannot be read is still listed by its
// name (when it has one), so that what refers to it is not reported as well.
void read_dataset_at(const Reader& reader, const toml::node& node, std::size_t i, Config& config) {
  const std::string path = key_element("datasets", i);
  const bool read = reader.recover([&] {
    const auto& table = reader.expect<toml::table>(node, path);
    DatasetConfig dataset = read_dataset(reader, table, path);
    if (const DatasetConfig* first = config.find_dataset(dataset.name)) {
      reader.fail(*table.get("name"), key_child(path, "name"),
                  "duplicate dataset name " + quote_text(dataset.name) +
                      " (first defined on line " + std::to_string(first->line) + ")");
    }
    if (!config.sources.contains(dataset.source)) {
      reader.fail(*table.get("source"), key_child(path, "source"),
                  "unknown source " + quote_text(dataset.source) + " (not defined in [sources])");
    }
    config.datasets.push_back(std::move(dataset));
  });
  const toml::node* name = node.is_table() ? node.as_table()->get("name") : nullptr;
  if (!read && name != nullptr && name->is_string()) {
    DatasetConfig placeholder;
    placeholder.name = name->as_string()->get();
    if (config.find_dataset(placeholder.name) == nullptr) config.datasets.push_back(placeholder);
  }
}

void read_datasets(const Reader& reader, const toml::table& root, Config& config) {
  const toml::node* node = root.get("datasets");
  if (node == nullptr) return;
  const toml::array* datasets = node->as_array();
  if (datasets == nullptr) {
    reader.fail(*node, "datasets",
                "expected an array of tables ([[datasets]]), got " +
                    std::string(toml_type_name(node->type())));
  }
  for (std::size_t i = 0; i < datasets->size(); ++i) read_dataset_at(reader, *datasets->get(i), i, config);
}

// Secrets written into the file end up in backups, diffs and tickets; only the names of the
// variables that hold them belong there. Each such key and the *_env key to use instead.
constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kSecretKeys{{
    {"access_key_id", "access_key_id_env"},
    {"aws_access_key_id", "access_key_id_env"},
    {"secret_access_key", "secret_access_key_env"},
    {"aws_secret_access_key", "secret_access_key_env"},
    {"password", "secret_access_key_env"},
    {"session_token", "session_token_env"},
    {"aws_session_token", "session_token_env"},
}};

// The [storage] keys of kind = "s3" besides kind and link_secret_env.
constexpr std::array<std::string_view, 13> kS3Keys{"endpoint",
                                                   "bucket",
                                                   "region",
                                                   "addressing",
                                                   "prefix",
                                                   "access_key_id_env",
                                                   "secret_access_key_env",
                                                   "session_token_env",
                                                   "ca_file",
                                                   "connect_timeout_ms",
                                                   "request_timeout_ms",
                                                   "max_attempts",
                                                   "max_connections"};

struct S3IntKey {
  std::string_view key;
  int S3StorageConfig::*member;
  std::int64_t min;
  std::int64_t max;
};

constexpr std::array<S3IntKey, 4> kS3IntKeys{{
    {"connect_timeout_ms", &S3StorageConfig::connect_timeout_ms, 1, 600'000},
    {"request_timeout_ms", &S3StorageConfig::request_timeout_ms, 1, 3'600'000},
    {"max_attempts", &S3StorageConfig::max_attempts, 1, 10},
    {"max_connections", &S3StorageConfig::max_connections, 1, 1024},
}};

void reject_secrets(const Reader& reader, const toml::table& table) {
  for (const auto& [key, env_key] : kSecretKeys) {
    if (const toml::node* node = table.get(key)) {
      reader.fail(*node, key_child("storage", key),
                  "credentials come only from the environment, never from this file: set " +
                      std::string(env_key) + " to the name of the variable that holds it");
    }
  }
}

// The name of an environment variable, into `out` when the key is present. The variable itself
// is read when the store opens, not here: checking a config needs no secrets.
void read_env_name(const Reader& reader, const toml::table& table, std::string_view key,
                   std::string& out) {
  const auto* env = reader.optional<TomlString>(table, "storage", key);
  if (env == nullptr) return;
  const std::string& name = env->get();
  bool valid = !name.empty() && (name[0] < '0' || name[0] > '9');
  for (const char c : name) {
    valid = valid && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_');
  }
  if (!valid) {
    reader.fail(
        *env, key_child("storage", key),
        "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), not " + quote_text(name));
  }
  out = name;
}

// The folder must exist: a typo must not silently serve an empty store.
fs::path read_local_root(const Reader& reader, const toml::table& table, const fs::path& base_dir) {
  const auto& path = reader.required<TomlString>(table, "storage", "path");
  if (is_blank(path.get())) reader.fail(path, "storage.path", "must not be empty");
  fs::path root = (base_dir / path.get()).lexically_normal();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    reader.fail(path, "storage.path", "no such folder: " + root.string());
  }
  return root;
}

fs::path read_ca_file(const Reader& reader, const TomlString& value, const fs::path& base_dir) {
  if (value.get().empty()) {
    reader.fail(value, "storage.ca_file",
                "must not be empty (leave ca_file out to trust the system's certificates)");
  }
  fs::path file = (base_dir / value.get()).lexically_normal();
  std::error_code ec;
  fs::file_status status = fs::status(file, ec);
  if (status.type() == fs::file_type::not_found) {
    reader.fail(value, "storage.ca_file", "no such file: " + file.string());
  }
  if (ec) {
    reader.fail(value, "storage.ca_file", "cannot access " + file.string() + ": " + ec.message());
  }
  if (fs::is_directory(status)) {
    reader.fail(value, "storage.ca_file", "is a folder, not a PEM file: " + file.string());
  }
  return file;
}

// Checks every value the S3 client will use, except the credentials: those are read from the
// environment when the store opens.
S3StorageConfig read_s3_storage(const Reader& reader, const toml::table& table,
                                const fs::path& base_dir) {
  S3StorageConfig s3;
  // A present key is read into `out`, then `problem` (a *_problem function) judges it.
  auto read_text = [&](std::string_view key, std::string& out, auto problem) {
    const auto* value = reader.optional<TomlString>(table, "storage", key);
    if (value == nullptr) return;
    out = value->get();
    std::string message = problem(out);
    if (!message.empty()) reader.fail(*value, key_child("storage", key), message);
  };
  const auto& bucket = reader.required<TomlString>(table, "storage", "bucket");
  s3.bucket = bucket.get();
  std::string problem = s3_bucket_problem(s3.bucket);
  if (!problem.empty()) reader.fail(bucket, "storage.bucket", problem);
  // An empty endpoint is the same as none: AWS S3 in the region.
  read_text("endpoint", s3.endpoint, [](const std::string& endpoint) {
    return endpoint.empty() ? std::string() : s3_endpoint_problem(endpoint);
  });
  read_text("region", s3.region, [&](const std::string& region) {
    return s3_region_problem(region, s3.endpoint.empty());
  });
  const std::string endpoint = s3.endpoint.empty() ? s3_aws_endpoint(s3.region) : s3.endpoint;
  read_text("addressing", s3.addressing, [&](const std::string& addressing) {
    return s3_addressing_problem(addressing, endpoint, s3.bucket);
  });
  read_text("prefix", s3.prefix, s3_prefix_problem);
  read_env_name(reader, table, "access_key_id_env", s3.access_key_id_env);
  read_env_name(reader, table, "secret_access_key_env", s3.secret_access_key_env);
  read_env_name(reader, table, "session_token_env", s3.session_token_env);
  if (const auto* ca_file = reader.optional<TomlString>(table, "storage", "ca_file")) {
    s3.ca_file = read_ca_file(reader, *ca_file, base_dir);
  }
  for (const S3IntKey& number : kS3IntKeys) {
    if (auto value = reader.optional_int(table, "storage", number.key, number.min, number.max)) {
      s3.*number.member = static_cast<int>(*value);
    }
  }
  return s3;
}

StorageConfig read_storage(const Reader& reader, const toml::table& table,
                           const fs::path& base_dir) {
  reject_secrets(reader, table);
  StorageConfig storage;
  storage.line = line_of(table);
  if (const auto* kind = reader.optional<TomlString>(table, "storage", "kind")) {
    if (kind->get() != "local" && kind->get() != "s3") {
      reader.fail(*kind, "storage.kind",
                  "unsupported kind " + quote_text(kind->get()) + " (expected one of: local, s3)");
    }
    storage.kind = kind->get();
  }
  if (storage.kind == "s3") {
    if (const toml::node* path = table.get("path")) {
      reader.fail(*path, "storage.path",
                  "not used with kind = \"s3\": objects live in the bucket (`prefix` names a "
                  "folder in it)");
    }
    std::vector<std::string_view> known{"kind", "link_secret_env"};
    known.insert(known.end(), kS3Keys.begin(), kS3Keys.end());
    reader.check_keys(table, "storage", known);
    storage.s3 = read_s3_storage(reader, table, base_dir);
  } else {
    for (std::string_view key : kS3Keys) {
      if (const toml::node* node = table.get(key)) {
        reader.fail(*node, key_child("storage", key),
                    "an S3 setting, only with kind = \"s3\" (this store is kind = \"local\")");
      }
    }
    reader.check_keys(table, "storage", {"kind", "path", "link_secret_env"});
    storage.path = read_local_root(reader, table, base_dir);
  }
  read_env_name(reader, table, "link_secret_env", storage.link_secret_env);
  return storage;
}

// Each section is read even when one before it failed: every problem of the file is reported.
void read_sections(const Reader& reader, const toml::table& root, Config& config) {
  reader.check_keys(root, "",
                    {"server", "sources", "storage", "archives", "datasets", "queue", "cubes",
                     "auth", "limits"});
  reader.recover([&] {
    if (const auto* server = reader.optional<toml::table>(root, "", "server")) {
      config.server = read_server(reader, *server, config.file.parent_path());
    }
  });
  reader.recover([&] { read_sources(reader, root, config.file.parent_path(), config); });
  const bool storage_read = reader.recover([&] {
    if (const auto* storage = reader.optional<toml::table>(root, "", "storage")) {
      config.storage = read_storage(reader, *storage, config.file.parent_path());
    }
  });
  if (!storage_read) config.storage.emplace();  // present, so [queue] is not reported as well
  reader.recover([&] { read_datasets(reader, root, config); });
  reader.recover([&] {
    const auto* queue = reader.optional<toml::table>(root, "", "queue");
    if (queue != nullptr && !config.storage) {
      reader.fail(*queue, "queue", "background jobs write their results into [storage]: add it");
    }
    if (config.storage) {
      config.queue = queue != nullptr ? read_queue(reader, *queue, config.file.parent_path())
                                      : default_queue(config.file.parent_path());
    }
  });
  reader.recover([&] { read_cubes(reader, root, config); });
  reader.recover([&] { read_archives(reader, root, config); });
  // [auth] and [limits]: checked here (check-config); the server reads them again.
  reader.recover([&] { (void)read_access(reader, root, config.file); });
}

Config read_config(std::string_view text, const fs::path& file) {
  Reader reader(file.string());
  toml::table root = parse_toml(text, file.string());
  Config config;
  config.file = fs::absolute(file).lexically_normal();
  reader.recover([&] { read_sections(reader, root, config); });
  reader.throw_noted();
  return config;
}

}  // namespace
}  // namespace config_detail

const DatasetConfig* Config::find_dataset(std::string_view name) const {
  auto it = std::ranges::find(datasets, name, &DatasetConfig::name);
  return it == datasets.end() ? nullptr : &*it;
}

const CubeConfig* Config::find_cube(std::string_view name) const {
  auto it = std::ranges::find(cubes, name, &CubeConfig::name);
  return it == cubes.end() ? nullptr : &*it;
}

Config load_config(const std::filesystem::path& file) {
  return parse_config(config_detail::read_file(file), file);
}

Config parse_config(std::string_view text, const std::filesystem::path& file) {
  return config_detail::read_config(text, file);
}

}  // namespace sluice
