#pragma once

// Internal to the config loader (config*.cpp): typed reading of the TOML document with errors
// that name the file, line and key, and the value checks shared by every section. The checks of
// [storage] kind = "s3" are core/s3_address.hpp's, shared with make_s3_endpoint.

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/access.hpp"
#include "core/config.hpp"
#include "core/s3_address.hpp"

namespace sluice::config_detail {

// Defined in config_values.cpp.

std::string filter_type_names();
std::string filter_op_names();
std::string logical_type_names();
std::string join(std::span<const std::string_view> names);
std::string_view toml_type_name(toml::node_type type);
// Each *_problem function says why a value is unacceptable, or returns empty when it is fine.
std::string source_name_problem(std::string_view name);
std::string dataset_name_problem(std::string_view name);
std::string filter_name_problem(std::string_view name);
// [A-Za-z_][A-Za-z0-9_]{0,63}: a filter's, a cube dimension's or a metric's name.
bool is_identifier(std::string_view name);
bool is_blank(std::string_view text);
std::string quote_text(std::string_view text);
std::string key_child(std::string_view path, std::string_view key);
// "; did you mean \"listen\"?" when one of `known` is a likely typo of `key`, else empty.
std::string did_you_mean(std::string_view key, std::span<const std::string_view> known);
std::string key_element(std::string_view path, std::size_t index);
std::string_view listen_problem(std::string_view listen);
std::string_view file_name_problem(std::string_view name);
std::string database_file_problem(const std::filesystem::path& resolved);
std::string read_file(const std::filesystem::path& file);
toml::table parse_toml(std::string_view text, const std::string& file);

using TomlString = toml::value<std::string>;
using TomlInt = toml::value<std::int64_t>;
using TomlBool = toml::value<bool>;

inline constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t kMaxUnsigned = std::numeric_limits<unsigned>::max();

inline int line_of(const toml::node& node) {
  return static_cast<int>(node.source().begin.line);
}

template <typename T>
inline constexpr std::string_view kExpected = "a value";
template <>
inline constexpr std::string_view kExpected<toml::table> = "a table";
template <>
inline constexpr std::string_view kExpected<toml::array> = "an array";
template <>
inline constexpr std::string_view kExpected<TomlString> = "a string";
template <>
inline constexpr std::string_view kExpected<TomlInt> = "an integer";
template <>
inline constexpr std::string_view kExpected<TomlBool> = "a boolean (true or false)";

// Reads typed values out of the document, turning every problem into "FILE:LINE: KEY: problem".
// A problem either stops the reading of the part it is in (fail(), which throws) or is only
// noted (note(): an unknown key); recover() runs one part (a section, a dataset, a column) and
// notes what stopped it, so that the parts after it are still read and checked. At the end,
// throw_noted() reports every problem at once. Not thread-safe.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const toml::node& node, std::string_view key,
                         std::string_view problem) const {
    throw ConfigError(message(node, key, problem));
  }

  // Records a problem that does not stop the reading.
  void note(const toml::node& node, std::string_view key, std::string_view problem) const {
    add_problem(message(node, key, problem));
  }

  // Runs `read`; a ConfigError it throws is noted and false returned.
  template <typename Read>
  bool recover(Read&& read) const {
    try {
      std::forward<Read>(read)();
      return true;
    } catch (const ConfigError& error) {
      add_problem(error.what());
      return false;
    }
  }

  // Throws one ConfigError with every noted problem, one per line, when there is any.
  void throw_noted() const {
    if (problems_.empty()) return;
    std::string all;
    for (const std::string& problem : problems_) all += (all.empty() ? "" : "\n") + problem;
    throw ConfigError(all);
  }

  template <typename T>
  const T& expect(const toml::node& node, std::string_view key) const {
    if (const T* value = node.as<T>()) return *value;
    fail(node, key,
         "expected " + std::string(kExpected<T>) + ", got " +
             std::string(toml_type_name(node.type())));
  }

  template <typename T>
  const T* optional(const toml::table& table, std::string_view path, std::string_view key) const {
    const toml::node* node = table.get(key);
    return node == nullptr ? nullptr : &expect<T>(*node, key_child(path, key));
  }

  // A missing key is reported on the line of the table that lacks it.
  template <typename T>
  const T& required(const toml::table& table, std::string_view path, std::string_view key) const {
    if (const T* value = optional<T>(table, path, key)) return *value;
    fail(table, key_child(path, key), "missing required key");
  }

  std::optional<std::int64_t> optional_int(const toml::table& table, std::string_view path,
                                           std::string_view key, std::int64_t min,
                                           std::int64_t max) const {
    const TomlInt* value = optional<TomlInt>(table, path, key);
    if (value == nullptr) return std::nullopt;
    if (value->get() < min)
      fail(*value, key_child(path, key), "must be at least " + std::to_string(min));
    if (value->get() > max)
      fail(*value, key_child(path, key), "must be at most " + std::to_string(max));
    return value->get();
  }

  // The value of the environment variable that `name` (at `key`) names; a variable that is
  // unset or empty is an error at that key.
  std::string environment(const TomlString& name, std::string_view key) const {
    const char* value = std::getenv(name.get().c_str());
    if (value == nullptr || *value == '\0') {
      fail(name, key, "environment variable " + quote_text(name.get()) + " is not set");
    }
    return value;
  }

  void check_keys(const toml::table& table, std::string_view path,
                  std::initializer_list<std::string_view> known) const {
    check_keys(table, path, std::span(known.begin(), known.end()));
  }

  void check_keys(const toml::table& table, std::string_view path,
                  std::span<const std::string_view> known) const {
    for (auto&& [key, node] : table) {
      if (std::ranges::find(known, key.str()) != known.end()) continue;
      note(node, key_child(path, key.str()),
           "unknown key (expected one of: " + join(known) + ")" + did_you_mean(key.str(), known));
    }
  }

 private:
  std::string message(const toml::node& node, std::string_view key,
                      std::string_view problem) const {
    return file_ + ":" + std::to_string(line_of(node)) + ": " + std::string(key) + ": " +
           std::string(problem);
  }

  // A problem found twice (a part read again after a failure) is reported once.
  void add_problem(std::string problem) const {
    if (std::ranges::find(problems_, problem) == problems_.end()) {
      problems_.push_back(std::move(problem));
    }
  }

  std::string file_;
  mutable std::vector<std::string> problems_;
};

// Defined in config_columns.cpp: [datasets.columns.NAME] into out.column_types and
// out.transforms.
void read_columns(const Reader& reader, const toml::table& dataset, std::string_view path,
                  DatasetConfig& out);

// Defined in config_queue.cpp: [queue], and what it is when absent.
QueueConfig read_queue(const Reader& reader, const toml::table& table,
                       const std::filesystem::path& base_dir);
QueueConfig default_queue(const std::filesystem::path& base_dir);

// Defined in config_archives.cpp: [archives] into config.archives (REQUIRES: [storage] read).
void read_archives(const Reader& reader, const toml::table& root, Config& config);

// Defined in config_tls.cpp: [server] ops_listen and [server.tls] (the PEM files are read and
// checked: a certificate and a key that belong together).
void read_server_tls(const Reader& reader, const toml::table& server,
                     const std::filesystem::path& base_dir, ServerConfig& out);

// Defined in config_cubes.cpp: [[cubes]].
void read_cubes(const Reader& reader, const toml::table& root, Config& config);

// Defined in config_auth.cpp: [auth] (with its [[auth.tokens]]) and [limits]; relative paths
// from `config_file`'s folder.
AccessConfig read_access(const Reader& reader, const toml::table& root,
                         const std::filesystem::path& config_file);
// The [[tokens]] of a tokens file, unique also against `configured` (not returned).
std::vector<TokenConfig> read_tokens_file(const std::filesystem::path& file,
                                          std::vector<TokenConfig> configured);

}  // namespace sluice::config_detail
