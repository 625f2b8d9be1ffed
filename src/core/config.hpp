#pragma once

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/output_options.hpp"
#include "core/row_batch.hpp"

namespace sluice {

// A configuration problem. what() reads "FILE:LINE: KEY: problem", naming the key and line;
// when the file has several problems, one such line per problem (in the order they were found).
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The type a filter's values are parsed as before they are bound to the query.
enum class FilterType { kInt, kDecimal, kFloat, kText, kBool, kDate, kTimestamp };

// Filter operators; the query-string form is `name.op=value` (`name=value` means eq, or in
// when the value holds commas and `in` is allowed).
enum class FilterOp { kEq, kNe, kIn, kLt, kLte, kGt, kGte, kPrefix, kIsNull };

std::string_view to_string(FilterType type);
std::optional<FilterType> parse_filter_type(std::string_view name);
std::string_view to_string(FilterOp op);
std::optional<FilterOp> parse_filter_op(std::string_view name);

// [server.tls]: HTTPS on the main listener. PEM files, resolved against the config file's folder;
// the certificate file may hold the chain after the leaf (leaf first).
struct TlsConfig {
  std::filesystem::path certificate;
  std::filesystem::path key;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";        // HOST:PORT; port 0 picks a free port
  std::string ops_listen;  // HOST:PORT of a plain-HTTP listener for /healthz and /metrics; empty: none
  std::optional<TlsConfig> tls;                 // [server.tls]; absent: plain HTTP
  unsigned threads = 0;                         // I/O threads; 0 = one per core
  std::size_t max_header_bytes = 8 * 1024;      // request line + headers
  std::size_t max_body_bytes = 1024 * 1024;     // request body
  std::chrono::milliseconds read_timeout{30'000};   // to read one request once it started
  std::chrono::milliseconds idle_timeout{60'000};   // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{60'000};  // one write stalled longer aborts the stream
  std::chrono::milliseconds shutdown_grace{10'000}; // running downloads may finish this long
  std::size_t stream_buffer_bytes = 256 * 1024;     // per-stream byte budget of the pipeline
  std::size_t max_streams = 1024;                   // concurrent streaming responses; beyond: 503
  std::size_t max_connections = 0;  // open connections; 0 = derived from the descriptor limit
  std::string log_format = "text";                  // the server log: "text" lines or "json" lines
};

struct SourceConfig {
  std::string name;
  std::string kind;                 // "sqlite" or "postgres"
  std::filesystem::path path;       // sqlite: database file, relative to the config file
  unsigned blocking_threads = 0;    // sqlite: threads that step queries; 0 = 2 per core
  std::string url;                  // postgres: libpq URL or key=value string
  std::size_t pool_size = 10;       // postgres: connections at most
  std::chrono::milliseconds pool_timeout{5'000};        // postgres: wait for a free connection
  std::chrono::milliseconds connect_timeout{5'000};     // postgres
  std::chrono::milliseconds statement_timeout{0};       // postgres: 0 = none
  std::string copy_format = "auto";  // postgres: "auto" (binary when every type allows) | "text" | "csv"
  int line = 0;
};

struct FilterConfig {
  std::string name;      // query-string parameter
  std::string column;    // result column it restricts
  FilterType type = FilterType::kText;
  std::vector<FilterOp> operators{FilterOp::kEq, FilterOp::kIn};
  int line = 0;
};

enum class MaskKind : std::uint8_t { kNone, kEmail, kKeepLast, kFixed };
enum class LetterCase : std::uint8_t { kNone, kUpper, kLower };

// [datasets.columns.NAME]: how one result column leaves (see docs/CONFIG.md "Column
// transforms"). At most one value transform (format, places, true_text/false_text, map, mask,
// hash); `case` and then `truncate` apply after it; `null_text` replaces NULL.
struct ColumnTransformConfig {
  std::string column;                    // the column as the query returns it
  std::string rename;                    // output name; empty: keep
  std::string format;                    // timestamp pattern; empty: none
  std::string time_zone = "UTC";         // zone `format` writes in
  std::string input_time_zone = "UTC";   // zone of timestamps that carry no offset
  std::optional<int> places;             // decimal places (rounded half away from zero)
  std::optional<std::string> true_text;  // boolean words (both or neither)
  std::optional<std::string> false_text;
  std::optional<std::string> null_text;  // written for NULL
  MaskKind mask = MaskKind::kNone;
  std::size_t mask_keep = 0;             // kKeepLast: characters kept in clear
  std::string mask_text = "***";         // kFixed: what every value becomes
  std::string hash_key;                  // non-empty: HMAC-SHA-256 keyed with it (from secret_env)
  std::vector<std::pair<std::string, std::string>> map;  // value → replacement
  std::optional<std::string> map_default;                 // for values not in `map`
  LetterCase letter_case = LetterCase::kNone;
  std::optional<std::size_t> truncate;   // characters kept
  int line = 0;

  // True when a value (or NULL) can come out different; false for a pure rename.
  bool changes_values() const {
    return !format.empty() || places || true_text || null_text || mask != MaskKind::kNone ||
           !hash_key.empty() || !map.empty() || letter_case != LetterCase::kNone || truncate;
  }
};

struct DatasetConfig {
  std::string name;                    // [A-Za-z0-9_-]+, used in /v1/exports/{name}.csv
  std::string source;                  // key of [sources.NAME]
  std::string query;                   // SQL returning the rows; filters wrap it
  std::string file_name;               // download name without extension; default = name
  std::string description;
  std::vector<FilterConfig> filters;
  std::map<std::string, LogicalType> column_types;  // overrides of inferred column types
  std::vector<ColumnTransformConfig> transforms;    // [datasets.columns.NAME] beyond `type`
  std::vector<std::string> sortable;   // columns `?order=` may name (none: no ordering)
  std::string order;                   // default order when the request gives none ("-a,b")
  int order_line = 0;                  // line of `order` (checked once the columns are known)
  OutputOptions output;                // [datasets.output]: CSV layout, formula guard, UTF-8
  // A query on the dataset's source returning one value that changes when the data does
  // ("SELECT max(updated_at) FROM orders"): a background job asking what a finished, unexpired
  // job asked at the same version completes at once from its result. Empty: no reuse.
  std::string version_query;
  int line = 0;
};

// Where stored objects live (archives read them; later, job results are written there).
// `[storage] kind = "s3"`: an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, ...).
// Credentials never come from the file: only the names of the environment variables do.
struct S3StorageConfig {
  // scheme://host[:port] of the S3 API: "https://s3.eu-central-1.amazonaws.com",
  // "http://127.0.0.1:9000" (plain HTTP only for local endpoints), an R2 account endpoint.
  // Empty: AWS S3 in `region` (https://s3.<region>.amazonaws.com).
  std::string endpoint;
  std::string bucket;                 // REQUIRED
  std::string region = "us-east-1";   // signed into every request ("auto" for R2)
  // "path": https://host/bucket/key (MinIO, s3rver, any IP address endpoint);
  // "virtual": https://bucket.host/key (AWS's default). "auto": virtual for AWS endpoints
  // (and an empty endpoint) when the bucket name is DNS-compatible, path otherwise.
  std::string addressing = "auto";
  // Prepended to every key ("sluice/" keeps Sluice's objects in one folder of a shared
  // bucket); empty or ends with '/'.
  std::string prefix;
  std::string access_key_id_env = "AWS_ACCESS_KEY_ID";
  std::string secret_access_key_env = "AWS_SECRET_ACCESS_KEY";
  std::string session_token_env = "AWS_SESSION_TOKEN";  // optional variable (STS credentials)
  // A PEM file of CA certificates to trust instead of the system's (a private CA in front of
  // MinIO); relative to the config file. Empty: the system's store.
  std::filesystem::path ca_file;
  int connect_timeout_ms = 5000;    // TCP connect + TLS handshake
  int request_timeout_ms = 30000;   // one call without progress (no byte sent or received)
  int max_attempts = 4;             // retries of idempotent calls (1 = no retry)
  int max_connections = 64;         // connections to the endpoint at once (kept alive when idle)
};

struct StorageConfig {
  std::string kind = "local";       // "local" or "s3"
  std::filesystem::path path;       // local: the root folder, relative to the config file
  std::optional<S3StorageConfig> s3;  // kind = "s3": the [storage] keys of S3StorageConfig
  // The environment variable holding the secret of presigned links (/v1/files); its value with
  // "_PREVIOUS" appended names the previous secret, still accepted while secrets rotate.
  std::string link_secret_env = "SLUICE_LINK_SECRET";
  int line = 0;
};

// [archives]: ZIP archives of stored objects (features/archives). Only with [storage].
struct ArchivesConfig {
  std::chrono::seconds default_expires_in{86'400};  // an archive's lifetime without `expires_in`
  std::chrono::seconds max_expires_in{7 * 86'400};  // most a request may ask (`expires_in`)
  std::size_t max_entries = 100'000;                // entries of one archive (413 beyond)
  std::size_t max_manifest_bytes = 16 << 20;        // its stored manifest (413 beyond)
  std::chrono::seconds sweep_interval{60};          // the sweeper's pass of expired manifests
  std::size_t sweep_batch = 200;                    // manifests one pass reads at most
  int line = 0;
};

// [queue]: the durable job table of background exports and the workers that run them.
struct QueueConfig {
  std::string kind = "sqlite";          // "sqlite" (embedded default) or "postgres"
  std::filesystem::path path;           // sqlite: the queue file (created), relative to the config
  std::string url;                      // postgres: libpq URL (from url or url_env)
  std::size_t pool_size = 4;            // postgres: connections for queue calls
  unsigned workers = 2;                 // jobs at once per process (serve's in-process workers,
                                        // sluice worker); 0 in serve: none (only sluice worker)
  std::chrono::milliseconds lease{30'000};             // a claim lapses without a heartbeat
  std::chrono::milliseconds progress_interval{500};    // heartbeat + progress event, at most
  std::chrono::milliseconds poll_interval{1'000};      // looking for work without a notification
  std::chrono::milliseconds sweep_interval{5'000};     // lapsed leases, expired results
  int max_attempts = 3;                                // per job, unless the request asks fewer
  std::chrono::milliseconds backoff{2'000};            // first retry's delay; doubles, jittered
  std::chrono::seconds result_ttl{86'400};             // results are deleted after
  std::chrono::seconds max_result_ttl{7 * 86'400};     // most a request may ask (`expires_in`)
  std::chrono::seconds retention{7 * 86'400};          // finished jobs are forgotten after
  int line = 0;
};

// [[cubes]]: answers computed in advance and laid out at offsets computable from the request
// (features/cubes). The query returns one row per cell (per cell and body key with `body`):
// the dimensions' values and the metrics.
enum class CubeMetricType : std::uint8_t { kInt64, kFloat64, kDecimal, kText };

struct CubeDimensionConfig {
  std::string name;  // a column of the query (also the URL's parameter name for file dimensions)
  // The dictionary in this order, as declared (`values`, or `from`/`to`/`step` expanded); empty:
  // the distinct values of the data, sorted. A value of the data outside a declared dictionary
  // fails the build.
  std::vector<std::string> values;
  int line = 0;
};

struct CubeMetricConfig {
  std::string name;  // a column of the query
  CubeMetricType type = CubeMetricType::kInt64;
  int scale = 0;                // decimal: digits after the point (0..18); values are exact
  std::size_t max_length = 0;   // text: bytes at most (1..4096)
  int line = 0;
};

struct CubeConfig {
  std::string name;    // [A-Za-z0-9_-]+: /v1/cubes/{name}/...
  std::string source;  // key of [sources.NAME]
  std::string query;
  // Optional: SQL returning the path combinations whose data changed since the last build
  // (columns named as the path dimensions); a build then reads and writes only those.
  std::string changed_query;
  std::string description;
  std::vector<std::string> path;              // one file per combination: URL path segments
  std::vector<CubeDimensionConfig> file;      // the record's place in a file (mixed radix, the
                                              // last varies fastest: slices along it are one read)
  std::vector<CubeDimensionConfig> body;      // a small map per record ({"Laptop": {...}})
  std::vector<CubeMetricConfig> metrics;
  std::chrono::seconds max_age{300};          // Cache-Control: public, max-age
  std::chrono::seconds keep_versions{600};    // a replaced version is deleted after this
  std::chrono::milliseconds refresh{1'000};   // how often a server looks for a new version
  std::size_t max_slice = 1'000;              // records in one slice (?day=a..b) at most
  int line = 0;
};

struct Config {
  std::filesystem::path file;          // the file it was loaded from (absolute)
  ServerConfig server;
  std::optional<StorageConfig> storage;  // absent: no object store, archive routes answer 404
  ArchivesConfig archives;               // [archives]; defaults when absent
  std::map<std::string, SourceConfig> sources;
  std::vector<DatasetConfig> datasets;
  // Background jobs run where there is a store: [queue] as given, else the defaults (SQLite file
  // sluice-jobs.db beside the config file). Absent without [storage].
  std::optional<QueueConfig> queue;
  std::vector<CubeConfig> cubes;       // served and built where there is a store

  const DatasetConfig* find_dataset(std::string_view name) const;
  const CubeConfig* find_cube(std::string_view name) const;
};

// Loads and validates a configuration file; throws ConfigError naming the key and line.
Config load_config(const std::filesystem::path& file);
// Same, from text (for tests); `file` is used for messages and to resolve relative paths.
Config parse_config(std::string_view text, const std::filesystem::path& file);

}  // namespace sluice
