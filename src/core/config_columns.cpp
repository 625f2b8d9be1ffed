// [datasets.columns.NAME]: the type override and the column transforms of one result column.
// Checks here need only the file (keys, values, which keys go together); what needs the
// query's columns (types, names) or tzdata (zones, patterns) is checked when the dataset is
// opened (features/exports/dataset_catalog.cpp), also with the key and line.

#include <array>

#include "core/config_reader.hpp"

namespace sluice::config_detail {
namespace {

constexpr std::size_t kMinSecretBytes = 16;
constexpr std::int64_t kMaxTruncate = 1'000'000;
constexpr std::int64_t kMaxPlaces = 30;
constexpr std::size_t kMaxMapEntries = 100'000;

// The value transforms; a column has at most one.
constexpr std::array<std::string_view, 7> kValueKeys{"format", "places", "true_text", "false_text",
                                                     "map",    "mask",   "hash"};

const std::string& read_text(const Reader& reader, const toml::table& table, std::string_view path,
                             std::string_view key) {
  return reader.optional<TomlString>(table, path, key)->get();
}

void read_mask(const Reader& reader, const toml::table& table, std::string_view path,
               ColumnTransformConfig& column) {
  const auto* mask = reader.optional<TomlString>(table, path, "mask");
  const std::string key = key_child(path, "mask");
  const std::string& text = mask->get();
  if (text == "email") {
    column.mask = MaskKind::kEmail;
  } else if (text == "fixed") {
    column.mask = MaskKind::kFixed;
  } else if (text.starts_with("last:")) {
    std::string_view count = std::string_view(text).substr(5);
    std::size_t keep = 0;
    bool digits = !count.empty() && count.size() <= 4 &&
                  std::ranges::all_of(count, [](char c) { return c >= '0' && c <= '9'; });
    if (digits) keep = static_cast<std::size_t>(std::stoul(std::string(count)));
    if (!digits || keep == 0) {
      reader.fail(*mask, key, "expected last:N with N from 1 to 9999, got " + quote_text(text));
    }
    column.mask = MaskKind::kKeepLast;
    column.mask_keep = keep;
  } else {
    reader.fail(*mask, key,
                "expected one of: email, last:N (keep the last N characters), fixed; got " +
                    quote_text(text));
  }
  if (const auto* mask_text = reader.optional<TomlString>(table, path, "mask_text")) {
    if (column.mask != MaskKind::kFixed) {
      reader.fail(*mask_text, key_child(path, "mask_text"), "only goes with mask = \"fixed\"");
    }
    column.mask_text = mask_text->get();
  }
}

// The key comes from the environment, never from the file: `secret_env` names the variable.
void read_hash(const Reader& reader, const toml::table& table, std::string_view path,
               ColumnTransformConfig& column) {
  const auto* hash = reader.optional<TomlString>(table, path, "hash");
  if (hash->get() != "hmac-sha256") {
    reader.fail(*hash, key_child(path, "hash"),
                "expected \"hmac-sha256\", got " + quote_text(hash->get()));
  }
  const auto* env = reader.optional<TomlString>(table, path, "secret_env");
  if (env == nullptr) {
    reader.fail(*hash, key_child(path, "secret_env"),
                "missing: name the environment variable that holds the HMAC key");
  }
  std::string value = reader.environment(*env, key_child(path, "secret_env"));
  if (value.size() < kMinSecretBytes) {
    reader.fail(*env, key_child(path, "secret_env"),
                "the key in " + quote_text(env->get()) + " is shorter than 16 bytes; use at " +
                    "least 32 random bytes (for example `openssl rand -hex 32`)");
  }
  column.hash_key = std::move(value);
}

void read_map(const Reader& reader, const toml::table& table, std::string_view path,
              ColumnTransformConfig& column) {
  const auto* map = reader.optional<toml::table>(table, path, "map");
  const std::string map_path = key_child(path, "map");
  if (map->empty()) reader.fail(*map, map_path, "must map at least one value");
  if (map->size() > kMaxMapEntries) reader.fail(*map, map_path, "at most 100000 values");
  for (auto&& [key, node] : *map) {
    const auto& to = reader.expect<TomlString>(node, key_child(map_path, key.str()));
    column.map.emplace_back(std::string(key.str()), to.get());
  }
  if (const auto* fallback = reader.optional<TomlString>(table, path, "default")) {
    column.map_default = fallback->get();
  }
}

void check_combinations(const Reader& reader, const toml::table& table, std::string_view path) {
  std::string_view first;
  for (std::string_view key : kValueKeys) {
    if (table.get(key) == nullptr) continue;
    const bool pair = (first == "true_text" && key == "false_text");
    if (!first.empty() && !pair) {
      reader.fail(*table.get(key), key_child(path, key),
                  "cannot be combined with `" + std::string(first) +
                      "`: a column has one value transform (case and truncate may follow it)");
    }
    if (first.empty()) first = key;
  }
  auto needs = [&](std::string_view key, std::string_view other, std::string_view what) {
    if (table.get(key) != nullptr && table.get(other) == nullptr) {
      reader.fail(*table.get(key), key_child(path, key), "only goes with " + std::string(what));
    }
  };
  needs("time_zone", "format", "`format`");
  needs("input_time_zone", "format", "`format`");
  needs("default", "map", "`map`");
  needs("secret_env", "hash", "hash = \"hmac-sha256\"");
  needs("mask_text", "mask", "mask = \"fixed\"");
  needs("true_text", "false_text", "`false_text` (give both words)");
  needs("false_text", "true_text", "`true_text` (give both words)");
}

// A renamed column must stay addressable by `columns=a,b` and `order=-a`, which split on commas
// and read a leading '-' as descending, and must show the same in every format.
std::string rename_problem(std::string_view name) {
  if (is_blank(name) || name.size() > 256) return "must be 1 to 256 bytes, not blank";
  if (name.find(',') != std::string_view::npos) {
    return quote_text(name) + " contains a comma: `columns=` and `order=` could not name it";
  }
  if (name.front() == '-') {
    return quote_text(name) + " starts with '-': `order=` reads that as descending";
  }
  if (std::ranges::any_of(name, [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return quote_text(name) + " contains a control character";
  }
  if (name.front() == ' ' || name.back() == ' ') {
    return quote_text(name) + " starts or ends with a space";
  }
  return {};
}

ColumnTransformConfig read_transform(const Reader& reader, const toml::table& table,
                                     std::string_view path, std::string_view name) {
  check_combinations(reader, table, path);
  ColumnTransformConfig column;
  column.column = name;
  column.line = line_of(table);
  if (const auto* rename = reader.optional<TomlString>(table, path, "rename")) {
    const std::string problem = rename_problem(rename->get());
    if (!problem.empty()) reader.fail(*rename, key_child(path, "rename"), problem);
    column.rename = rename->get();
  }
  if (table.get("format") != nullptr) {
    column.format = read_text(reader, table, path, "format");
    if (column.format.empty()) reader.fail(*table.get("format"), key_child(path, "format"), "must not be empty");
    if (table.get("time_zone") != nullptr) column.time_zone = read_text(reader, table, path, "time_zone");
    if (table.get("input_time_zone") != nullptr) {
      column.input_time_zone = read_text(reader, table, path, "input_time_zone");
    }
  }
  if (auto places = reader.optional_int(table, path, "places", 0, kMaxPlaces)) {
    column.places = static_cast<int>(*places);
  }
  if (table.get("true_text") != nullptr) {
    column.true_text = read_text(reader, table, path, "true_text");
    column.false_text = read_text(reader, table, path, "false_text");
  }
  if (table.get("null_text") != nullptr) column.null_text = read_text(reader, table, path, "null_text");
  if (table.get("mask") != nullptr) read_mask(reader, table, path, column);
  if (table.get("hash") != nullptr) read_hash(reader, table, path, column);
  if (table.get("map") != nullptr) read_map(reader, table, path, column);
  if (const auto* letter_case = reader.optional<TomlString>(table, path, "case")) {
    if (letter_case->get() == "upper") {
      column.letter_case = LetterCase::kUpper;
    } else if (letter_case->get() == "lower") {
      column.letter_case = LetterCase::kLower;
    } else {
      reader.fail(*letter_case, key_child(path, "case"),
                  "expected one of: upper, lower, got " + quote_text(letter_case->get()));
    }
  }
  if (auto truncate = reader.optional_int(table, path, "truncate", 1, kMaxTruncate)) {
    column.truncate = static_cast<std::size_t>(*truncate);
  }
  return column;
}

// One [datasets.columns.NAME] table.
void read_column(const Reader& reader, std::string_view name, const toml::node& node,
                 std::string_view path, DatasetConfig& out) {
  std::string column_path = key_child(key_child(path, "columns"), name);
  if (name.empty()) reader.fail(node, column_path, "column name must not be empty");
  const auto& table = reader.expect<toml::table>(node, column_path);
  if (table.empty()) {
    reader.fail(table, column_path,
                "is empty: give a type, a rename or a transform (see docs/CONFIG.md)");
  }
  reader.check_keys(table, column_path,
                    {"type", "rename", "format", "time_zone", "input_time_zone", "places",
                     "true_text", "false_text", "null_text", "mask", "mask_text", "hash",
                     "secret_env", "map", "default", "case", "truncate"});
  if (const auto* type = reader.optional<TomlString>(table, column_path, "type")) {
    std::optional<LogicalType> parsed = parse_logical_type(type->get());
    if (!parsed) {
      reader.fail(*type, key_child(column_path, "type"),
                  "unknown type " + quote_text(type->get()) +
                      " (expected one of: " + logical_type_names() + ")");
    }
    out.column_types.emplace(std::string(name), *parsed);
  }
  ColumnTransformConfig transform = read_transform(reader, table, column_path, name);
  if (!transform.rename.empty() || transform.changes_values()) {
    out.transforms.push_back(std::move(transform));
  }
}

}  // namespace

void read_columns(const Reader& reader, const toml::table& dataset, std::string_view path,
                  DatasetConfig& out) {
  const auto* columns = reader.optional<toml::table>(dataset, path, "columns");
  if (columns == nullptr) return;
  for (auto&& [key, node] : *columns) {
    const std::string_view name = key.str();  // (lambdas capture no structured bindings in clang 14)
    const toml::node& item = node;
    reader.recover([&] { read_column(reader, name, item, path, out); });
  }
}

}  // namespace sluice::config_detail
