// Helpers of the configuration loader that need no knowledge of its schema: names, addresses,
// message formatting, reading the file. Declared in config_reader.hpp.
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "core/config.hpp"
#include "core/config_reader.hpp"

namespace sluice {
namespace {

constexpr std::array<std::pair<FilterType, std::string_view>, 7> kFilterTypeNames{{
    {FilterType::kInt, "int"},
    {FilterType::kDecimal, "decimal"},
    {FilterType::kFloat, "float"},
    {FilterType::kText, "text"},
    {FilterType::kBool, "bool"},
    {FilterType::kDate, "date"},
    {FilterType::kTimestamp, "timestamp"},
}};

constexpr std::array<std::pair<FilterOp, std::string_view>, 9> kFilterOpNames{{
    {FilterOp::kEq, "eq"},
    {FilterOp::kNe, "ne"},
    {FilterOp::kIn, "in"},
    {FilterOp::kLt, "lt"},
    {FilterOp::kLte, "lte"},
    {FilterOp::kGt, "gt"},
    {FilterOp::kGte, "gte"},
    {FilterOp::kPrefix, "prefix"},
    {FilterOp::kIsNull, "is_null"},
}};

template <typename Enum, std::size_t N>
std::optional<Enum> find_enum(const std::array<std::pair<Enum, std::string_view>, N>& names,
                              std::string_view name) {
  for (const auto& [value, value_name] : names) {
    if (value_name == name) return value;
  }
  return std::nullopt;
}

template <typename Enum, std::size_t N>
std::string_view find_name(const std::array<std::pair<Enum, std::string_view>, N>& names,
                           Enum value) {
  for (const auto& [candidate, name] : names) {
    if (candidate == value) return name;
  }
  return "unknown";
}

template <typename Enum, std::size_t N>
std::string names_of(const std::array<std::pair<Enum, std::string_view>, N>& names) {
  std::string out;
  for (const auto& entry : names) out += (out.empty() ? "" : ", ") + std::string(entry.second);
  return out;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool is_name(std::string_view text, std::size_t max_length) {
  return !text.empty() && text.size() <= max_length && std::ranges::all_of(text, is_name_char);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_control(char c) {
  return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
}

std::string_view bracketed_host_problem(std::string_view host) {
  bool closed = host.size() > 2 && host.back() == ']';
  std::string_view inner = host.substr(1, closed ? host.size() - 2 : std::string_view::npos);
  // Letters and % admit zone ids such as [fe80::1%eth0].
  auto ipv6_char = [](char c) { return is_name_char(c) || c == ':' || c == '.' || c == '%'; };
  if (!closed || inner.find(':') == std::string_view::npos ||
      !std::ranges::all_of(inner, ipv6_char)) {
    return "invalid IPv6 address in brackets";
  }
  return {};
}

// Query parameters the export endpoint itself interprets; a filter of that name would be shadowed.
constexpr std::array<std::string_view, 8> kReservedParams{
    "columns", "order", "limit", "format", "header", "bom", "delimiter", "line_ending"};

constexpr std::size_t kMaxNameLength = 64;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

}  // namespace

std::string_view to_string(FilterType type) {
  return find_name(kFilterTypeNames, type);
}

std::optional<FilterType> parse_filter_type(std::string_view name) {
  return find_enum(kFilterTypeNames, name);
}

std::string_view to_string(FilterOp op) {
  return find_name(kFilterOpNames, op);
}

std::optional<FilterOp> parse_filter_op(std::string_view name) {
  return find_enum(kFilterOpNames, name);
}

namespace config_detail {

std::string filter_type_names() {
  return names_of(kFilterTypeNames);
}

std::string filter_op_names() {
  return names_of(kFilterOpNames);
}

std::string logical_type_names() {
  std::string out;
  for (int i = 0; i <= static_cast<int>(LogicalType::kBytes); ++i) {
    out += (out.empty() ? "" : ", ") + std::string(to_string(static_cast<LogicalType>(i)));
  }
  return out;
}

std::string join(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

std::string quote_text(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (is_control(c)) {
      std::array<char, 8> escape{};
      std::snprintf(escape.data(), escape.size(), "\\u%04x", static_cast<unsigned>(c));
      out += escape.data();
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string_view toml_type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string source_name_problem(std::string_view name) {
  if (is_name(name, std::string_view::npos)) return {};
  return "invalid source name (expected [A-Za-z0-9_-]+)";
}

std::string dataset_name_problem(std::string_view name) {
  if (is_name(name, kMaxNameLength)) return {};
  return "invalid dataset name " + quote_text(name) + " (expected [A-Za-z0-9_-]{1,64})";
}

bool is_identifier(std::string_view name) {
  return is_name(name, kMaxNameLength) && name.find('-') == std::string_view::npos &&
         !is_digit(name.front());
}

std::string filter_name_problem(std::string_view name) {
  if (!is_identifier(name)) return "invalid filter name (expected [A-Za-z_][A-Za-z0-9_]{0,63})";
  if (std::ranges::find(kReservedParams, name) != kReservedParams.end()) {
    return "filter name is reserved (reserved: " + join(kReservedParams) + ")";
  }
  return {};
}

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::string key_child(std::string_view path, std::string_view key) {
  // Keys are shown as a user would write them in TOML: bare when possible, quoted otherwise.
  std::string name = is_name(key, std::string_view::npos) ? std::string(key) : quote_text(key);
  return path.empty() ? name : std::string(path) + "." + name;
}

namespace {

// Levenshtein distance, for suggestions; keys are short.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

// A suggestion only when the key is close: at most 2 edits, and fewer than half its length
// (so "root" does not suggest "path").
std::string did_you_mean(std::string_view key, std::span<const std::string_view> known) {
  std::string_view best;
  std::size_t best_distance = std::string_view::npos;
  for (std::string_view candidate : known) {
    const std::size_t distance = edit_distance(key, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty() || best_distance > 2 || 2 * best_distance >= std::max(key.size(), best.size())) {
    return {};
  }
  return "; did you mean " + quote_text(best) + "?";
}

std::string key_element(std::string_view path, std::size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

std::string_view listen_problem(std::string_view listen) {
  std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return "missing :PORT";
  std::string_view host = listen.substr(0, colon);
  std::string_view port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::ranges::all_of(port, is_digit) ||
      std::stoi(std::string(port)) > 65535) {
    return "PORT must be a number 0..65535";
  }
  if (host.empty()) return "missing HOST";
  if (host.front() == '[') return bracketed_host_problem(host);
  if (host.find(':') != std::string_view::npos) {
    return "an IPv6 HOST must be written in brackets, e.g. [::1]:8080";
  }
  if (!std::ranges::all_of(host, [](char c) { return is_name_char(c) || c == '.'; })) {
    return "HOST must be a host name or an IP address";
  }
  return {};
}

std::string_view file_name_problem(std::string_view name) {
  if (name.empty()) return "must not be empty";
  for (char c : name) {
    if (c == '/' || c == '\\') return "must not contain / or \\";
    if (c == '"') return "must not contain \"";
    if (is_control(c)) return "must not contain control characters";
  }
  return {};
}

std::string database_file_problem(const std::filesystem::path& resolved) {
  std::error_code error;
  std::filesystem::file_status status = std::filesystem::status(resolved, error);
  if (status.type() == std::filesystem::file_type::not_found) {
    return "database file does not exist: " + resolved.string();
  }
  if (error) return "cannot access " + resolved.string() + ": " + error.message();
  if (std::filesystem::is_directory(status)) {
    return "is a directory, not a database file: " + resolved.string();
  }
  return {};
}

std::string read_file(const std::filesystem::path& file) {
  auto cannot_read = [&file] {
    return ConfigError(file.string() + ": cannot read: " + std::generic_category().message(errno));
  };
  std::unique_ptr<std::FILE, FileCloser> in(std::fopen(file.c_str(), "rb"));
  if (!in) throw cannot_read();
  std::string text;
  std::array<char, 16 * 1024> buffer;
  std::size_t got = 0;
  while ((got = std::fread(buffer.data(), 1, buffer.size(), in.get())) > 0) {
    text.append(buffer.data(), got);
  }
  // fread stops at end of file and on errors alike (a directory reads as EISDIR).
  if (std::ferror(in.get())) throw cannot_read();
  return text;
}

toml::table parse_toml(std::string_view text, const std::string& file) {
  try {
    return toml::parse(text, std::string_view(file));
  } catch (const toml::parse_error& error) {
    // A syntax error has no key to name; toml++'s description stands in for "KEY: problem".
    throw ConfigError(file + ":" + std::to_string(error.source().begin.line) + ": " +
                      std::string(error.description()));
  }
}

}  // namespace config_detail
}  // namespace sluice
