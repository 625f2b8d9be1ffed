// [auth], [limits] and the tokens file of [auth] tokens_file.

#include <chrono>
#include <string>

#include "core/access.hpp"
#include "core/config_reader.hpp"

namespace sluice::config_detail {
namespace {

namespace fs = std::filesystem;
using std::chrono::system_clock;

std::string token_name_problem(std::string_view name) {
  if (name.empty() || name.size() > 64) return "must be 1 to 64 characters";
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return "may hold only letters, digits, '_', '-' and '.'";
  }
  return {};
}

bool is_lower_hex_digest(std::string_view text) {
  return text.size() == 64 && std::ranges::all_of(text, [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// A number of requests per second or a burst: an integer or a float, > 0 and at most 1e9.
std::optional<double> optional_rate(const Reader& reader, const toml::table& table,
                                    std::string_view path, std::string_view key) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return std::nullopt;
  const std::optional<double> value = node->value<double>();
  if (!value || !node->is_number()) {
    reader.fail(*node, key_child(path, key),
                "expected a number, got " + std::string(toml_type_name(node->type())));
  }
  if (!(*value > 0) || *value > 1e9) reader.fail(*node, key_child(path, key), "must be > 0 and at most 1e9");
  return value;
}

// `expires`: an offset date-time (2027-01-31T00:00:00Z) or a date (expires at its start, UTC).
system_clock::time_point read_expires(const Reader& reader, const toml::node& node,
                                      std::string_view key) {
  toml::date date;
  toml::time time{};
  std::chrono::minutes offset{0};
  if (const auto* date_time = node.as_date_time()) {
    const toml::date_time& value = date_time->get();
    if (!value.offset) reader.fail(node, key, "give the time with its offset (Z or +01:00)");
    date = value.date;
    time = value.time;
    offset = std::chrono::minutes(value.offset->minutes);
  } else if (const auto* only_date = node.as_date()) {
    date = only_date->get();
  } else {
    reader.fail(node, key, "expected a date or an offset date-time (2027-01-31T00:00:00Z)");
  }
  const std::chrono::sys_days day{std::chrono::year(date.year) / date.month / date.day};
  return system_clock::time_point(day) + std::chrono::hours(time.hour) +
         std::chrono::minutes(time.minute) + std::chrono::seconds(time.second) - offset;
}

std::vector<std::string> read_scopes(const Reader& reader, const toml::array& array,
                                     std::string_view path) {
  std::vector<std::string> scopes;
  for (std::size_t i = 0; i < array.size(); ++i) {
    const std::string key = key_element(path, i);
    const auto& scope = reader.expect<TomlString>(*array.get(i), key);
    if (std::string problem = scope_problem(scope.get()); !problem.empty()) {
      reader.fail(scope, key, quote_text(scope.get()) + ": " + problem);
    }
    scopes.push_back(scope.get());
  }
  return scopes;
}

TokenConfig read_token(const Reader& reader, const toml::table& table, std::string_view path) {
  reader.check_keys(table, path,
                    {"name", "sha256", "scopes", "expires", "requests_per_second", "burst",
                     "max_streams"});
  TokenConfig token;
  token.line = line_of(table);
  const auto& name = reader.required<TomlString>(table, path, "name");
  if (std::string problem = token_name_problem(name.get()); !problem.empty()) {
    reader.fail(name, key_child(path, "name"), problem);
  }
  token.name = name.get();
  const auto& hash = reader.required<TomlString>(table, path, "sha256");
  if (!is_lower_hex_digest(hash.get())) {
    reader.fail(hash, key_child(path, "sha256"),
                "expected the token's SHA-256 as 64 lower-case hex digits (sluice token create "
                "prints it); never the token itself");
  }
  token.sha256 = hash.get();
  token.scopes = read_scopes(reader, reader.required<toml::array>(table, path, "scopes"),
                             key_child(path, "scopes"));
  if (const toml::node* expires = table.get("expires")) {
    token.expires = read_expires(reader, *expires, key_child(path, "expires"));
  }
  token.requests_per_second = optional_rate(reader, table, path, "requests_per_second");
  token.burst = optional_rate(reader, table, path, "burst");
  if (auto streams = reader.optional_int(table, path, "max_streams", 1, 1'000'000)) {
    token.max_streams = static_cast<std::size_t>(*streams);
  }
  return token;
}

// The tokens of an array of tables at `path`, each name and hash unique also against `known`.
void read_tokens(const Reader& reader, const toml::node& node, std::string_view path,
                 std::vector<TokenConfig>& tokens) {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    reader.fail(node, path, "expected an array of tables ([[" + std::string(path) + "]])");
  }
  for (std::size_t i = 0; i < array->size(); ++i) {
    const std::string key = key_element(path, i);
    const auto& table = reader.expect<toml::table>(*array->get(i), key);
    TokenConfig token = read_token(reader, table, key);
    for (const TokenConfig& other : tokens) {
      if (other.name == token.name) {
        reader.fail(*table.get("name"), key_child(key, "name"),
                    "duplicate token name " + quote_text(token.name) + " (first defined on line " +
                        std::to_string(other.line) + ")");
      }
      if (other.sha256 == token.sha256) {
        reader.fail(*table.get("sha256"), key_child(key, "sha256"),
                    "the same token hash as token " + quote_text(other.name));
      }
    }
    tokens.push_back(std::move(token));
  }
}

void read_limit(const Reader& reader, const toml::table& table, std::string_view prefix,
                RateLimit& limit) {
  const std::string base(prefix);
  if (auto rate = optional_rate(reader, table, "limits", base + "requests_per_second")) {
    limit.requests_per_second = *rate;
  }
  if (auto burst = optional_rate(reader, table, "limits", base + "burst")) limit.burst = *burst;
  if (auto streams = reader.optional_int(table, "limits", base + "max_streams", 1, 1'000'000)) {
    limit.max_streams = static_cast<std::size_t>(*streams);
  }
}

}  // namespace

AccessConfig read_access(const Reader& reader, const toml::table& root,
                         const fs::path& config_file) {
  AccessConfig config;
  if (const auto* table = reader.optional<toml::table>(root, "", "auth")) {
    reader.check_keys(*table, "auth", {"tokens", "tokens_file", "anonymous_scopes"});
    AuthConfig auth;
    auth.line = line_of(*table);
    if (const toml::node* tokens = table->get("tokens")) {
      read_tokens(reader, *tokens, "auth.tokens", auth.tokens);
    }
    if (const auto* file = reader.optional<TomlString>(*table, "auth", "tokens_file")) {
      auth.tokens_file =
          (fs::absolute(config_file).parent_path() / file->get()).lexically_normal();
    }
    if (const auto* anonymous = reader.optional<toml::array>(*table, "auth", "anonymous_scopes")) {
      auth.anonymous_scopes = read_scopes(reader, *anonymous, "auth.anonymous_scopes");
    }
    config.auth = std::move(auth);
  }
  if (const auto* table = reader.optional<toml::table>(root, "", "limits")) {
    reader.check_keys(*table, "limits",
                      {"per_address_requests_per_second", "per_address_burst",
                       "per_address_max_streams", "per_token_requests_per_second",
                       "per_token_burst", "per_token_max_streams", "max_addresses"});
    config.limits.line = line_of(*table);
    read_limit(reader, *table, "per_address_", config.limits.per_address);
    read_limit(reader, *table, "per_token_", config.limits.per_token);
    if (auto most = reader.optional_int(*table, "limits", "max_addresses", 1, 10'000'000)) {
      config.limits.max_addresses = static_cast<std::size_t>(*most);
    }
  }
  return config;
}

std::vector<TokenConfig> read_tokens_file(const fs::path& file, std::vector<TokenConfig> inline_tokens) {
  Reader reader(file.string());
  const toml::table root = parse_toml(read_file(file), file.string());
  reader.check_keys(root, "", {"tokens"});
  const std::size_t first = inline_tokens.size();
  reader.recover([&] {
    if (const toml::node* tokens = root.get("tokens")) read_tokens(reader, *tokens, "tokens", inline_tokens);
  });
  reader.throw_noted();  // every problem of the file (unknown keys are noted, not thrown)
  inline_tokens.erase(inline_tokens.begin(), inline_tokens.begin() + static_cast<std::ptrdiff_t>(first));
  return inline_tokens;
}

}  // namespace sluice::config_detail

namespace sluice {

AccessConfig parse_access_config(std::string_view text, const std::filesystem::path& config_file) {
  const config_detail::Reader reader(config_file.string());
  const toml::table root = config_detail::parse_toml(text, config_file.string());
  AccessConfig config;
  reader.recover([&] { config = config_detail::read_access(reader, root, config_file); });
  reader.throw_noted();  // every problem of [auth] and [limits] (unknown keys are noted)
  return config;
}

AccessConfig load_access_config(const std::filesystem::path& config_file) {
  return parse_access_config(config_detail::read_file(config_file), config_file);
}

std::vector<TokenConfig> load_tokens_file(const std::filesystem::path& file,
                                          const std::vector<TokenConfig>& configured) {
  return config_detail::read_tokens_file(file, configured);
}

}  // namespace sluice
