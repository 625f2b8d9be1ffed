// [[cubes]]: precomputed answers (features/cubes). Every problem names the key and its line.

#include <array>
#include <charconv>
#include <chrono>
#include <set>

#include "core/config_reader.hpp"

namespace sluice::config_detail {
namespace {

constexpr std::size_t kMaxDeclaredValues = 1'000'000;
constexpr std::size_t kMaxTextLength = 4096;
constexpr int kMaxScale = 18;

std::optional<std::chrono::year_month_day> parse_date(std::string_view text, bool with_day) {
  int y = 0;
  unsigned m = 0;
  unsigned d = 1;
  if (text.size() != (with_day ? 10u : 7u) || text[4] != '-' || (with_day && text[7] != '-')) {
    return std::nullopt;
  }
  auto number = [&](std::size_t at, std::size_t length, auto& out) {
    const char* end = text.data() + at + length;
    auto [ptr, ec] = std::from_chars(text.data() + at, end, out);
    return ec == std::errc() && ptr == end;
  };
  if (!number(0, 4, y) || !number(5, 2, m) || (with_day && !number(8, 2, d))) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(y), std::chrono::month(m),
                                         std::chrono::day(d)};
  if (!date.ok()) return std::nullopt;
  return date;
}

std::string format_date(const std::chrono::year_month_day& date, bool with_day) {
  char text[16];
  const int length =
      with_day ? std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(date.year()),
                               static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()))
               : std::snprintf(text, sizeof text, "%04d-%02u", static_cast<int>(date.year()),
                               static_cast<unsigned>(date.month()));
  return {text, static_cast<std::size_t>(length)};
}

// `from`, `to`, `step` of a dimension table, expanded: step "day" (YYYY-MM-DD), "month"
// (YYYY-MM) or an integer (integers `from` and `to`).
std::vector<std::string> expand_range(const Reader& reader, const toml::table& table,
                                      const std::string& path) {
  const toml::node& from = *table.get("from");
  const toml::node* to = table.get("to");
  if (to == nullptr) reader.fail(table, key_child(path, "to"), "missing required key (with `from`)");
  std::vector<std::string> values;
  auto too_many = [&] {
    reader.fail(*to, key_child(path, "to"),
                "the range has more than " + std::to_string(kMaxDeclaredValues) + " values");
  };
  if (from.is_integer()) {
    const std::int64_t first = reader.expect<TomlInt>(from, key_child(path, "from")).get();
    const std::int64_t last = reader.expect<TomlInt>(*to, key_child(path, "to")).get();
    const std::int64_t step = reader.optional_int(table, path, "step", 1, kMaxInt).value_or(1);
    if (last < first) reader.fail(*to, key_child(path, "to"), "is before `from`");
    if (static_cast<std::uint64_t>(last - first) / static_cast<std::uint64_t>(step) >=
        kMaxDeclaredValues) {
      too_many();
    }
    for (std::int64_t v = first; v <= last; v += step) {
      values.push_back(std::to_string(v));
      if (last - v < step) break;
    }
    return values;
  }
  const auto& step = reader.required<TomlString>(table, path, "step");
  if (step.get() != "day" && step.get() != "month") {
    reader.fail(step, key_child(path, "step"),
                "expected \"day\" or \"month\" for dates (or integers `from` and `to`)");
  }
  const bool days = step.get() == "day";
  const auto& from_text = reader.expect<TomlString>(from, key_child(path, "from"));
  const auto& to_text = reader.expect<TomlString>(*to, key_child(path, "to"));
  const std::string_view shape = days ? "YYYY-MM-DD" : "YYYY-MM";
  auto first = parse_date(from_text.get(), days);
  if (!first) reader.fail(from_text, key_child(path, "from"), "expected a date " + std::string(shape));
  auto last = parse_date(to_text.get(), days);
  if (!last) reader.fail(to_text, key_child(path, "to"), "expected a date " + std::string(shape));
  if (std::chrono::sys_days(*last) < std::chrono::sys_days(*first)) {
    reader.fail(to_text, key_child(path, "to"), "is before `from`");
  }
  if (days) {
    for (auto day = std::chrono::sys_days(*first); day <= std::chrono::sys_days(*last);
         day += std::chrono::days(1)) {
      if (values.size() == kMaxDeclaredValues) too_many();
      values.push_back(format_date(std::chrono::year_month_day(day), true));
    }
  } else {
    for (auto month = first->year() / first->month(); month <= last->year() / last->month();
         month += std::chrono::months(1)) {
      if (values.size() == kMaxDeclaredValues) too_many();
      values.push_back(format_date(month / std::chrono::day(1), false));
    }
  }
  return values;
}

// A dimension: a column name, or a table {name, values | from, to, step}.
CubeDimensionConfig read_dimension(const Reader& reader, const toml::node& node,
                                   const std::string& path, bool declarable) {
  CubeDimensionConfig dimension;
  dimension.line = line_of(node);
  if (const auto* name = node.as<std::string>()) {
    dimension.name = name->get();
  } else {
    const auto& table = reader.expect<toml::table>(node, path);
    if (!declarable) {
      reader.fail(node, path, "expected a column name (path dimensions take their values from the data)");
    }
    reader.check_keys(table, path, {"name", "values", "from", "to", "step"});
    dimension.name = reader.required<TomlString>(table, path, "name").get();
    const auto* values = reader.optional<toml::array>(table, path, "values");
    if (values != nullptr && table.contains("from")) {
      reader.fail(*values, key_child(path, "values"), "give either `values` or `from`/`to`, not both");
    }
    if (values != nullptr) {
      const std::string values_path = key_child(path, "values");
      if (values->empty()) reader.fail(*values, values_path, "must not be empty");
      std::set<std::string> seen;
      for (std::size_t i = 0; i < values->size(); ++i) {
        const std::string key = key_element(values_path, i);
        const toml::node& item = *values->get(i);
        std::string value;
        if (item.is_integer()) {
          value = std::to_string(item.as_integer()->get());
        } else {
          value = reader.expect<TomlString>(item, key).get();
        }
        if (value.empty()) reader.fail(item, key, "must not be empty");
        if (!seen.insert(value).second) reader.fail(item, key, "duplicate value " + quote_text(value));
        dimension.values.push_back(std::move(value));
      }
    } else if (table.contains("from")) {
      dimension.values = expand_range(reader, table, path);
    } else if (table.contains("to") || table.contains("step")) {
      reader.fail(table, key_child(path, "from"), "missing required key (with `to` and `step`)");
    }
  }
  if (!is_identifier(dimension.name)) {
    reader.fail(node, path,
                "invalid dimension name " + quote_text(dimension.name) +
                    " (expected [A-Za-z_][A-Za-z0-9_]{0,63}, a column of the query)");
  }
  return dimension;
}

std::vector<CubeDimensionConfig> read_dimensions(const Reader& reader, const toml::table& table,
                                                 const std::string& path, std::string_view key,
                                                 bool declarable) {
  std::vector<CubeDimensionConfig> out;
  const auto* list = reader.optional<toml::array>(table, path, key);
  if (list == nullptr) return out;
  const std::string list_path = key_child(path, key);
  for (std::size_t i = 0; i < list->size(); ++i) {
    out.push_back(read_dimension(reader, *list->get(i), key_element(list_path, i), declarable));
  }
  return out;
}

CubeMetricConfig read_metric(const Reader& reader, const toml::node& node, const std::string& path) {
  const auto& table = reader.expect<toml::table>(node, path);
  reader.check_keys(table, path, {"name", "type", "scale", "max_length"});
  CubeMetricConfig metric;
  metric.line = line_of(node);
  const auto& name = reader.required<TomlString>(table, path, "name");
  if (!is_identifier(name.get())) {
    reader.fail(name, key_child(path, "name"),
                "invalid metric name " + quote_text(name.get()) +
                    " (expected [A-Za-z_][A-Za-z0-9_]{0,63}, a column of the query)");
  }
  metric.name = name.get();
  const auto& type = reader.required<TomlString>(table, path, "type");
  static constexpr std::array<std::pair<std::string_view, CubeMetricType>, 4> kTypes{{
      {"int64", CubeMetricType::kInt64},
      {"float64", CubeMetricType::kFloat64},
      {"decimal", CubeMetricType::kDecimal},
      {"text", CubeMetricType::kText},
  }};
  auto found = std::ranges::find(kTypes, type.get(), &std::pair<std::string_view, CubeMetricType>::first);
  if (found == kTypes.end()) {
    reader.fail(type, key_child(path, "type"),
                "unknown type " + quote_text(type.get()) + " (expected one of: int64, float64, decimal, text)");
  }
  metric.type = found->second;
  const auto scale = reader.optional_int(table, path, "scale", 0, kMaxScale);
  const auto max_length =
      reader.optional_int(table, path, "max_length", 1, static_cast<std::int64_t>(kMaxTextLength));
  if (scale && metric.type != CubeMetricType::kDecimal) {
    reader.fail(*table.get("scale"), key_child(path, "scale"), "only for type = \"decimal\"");
  }
  if (max_length && metric.type != CubeMetricType::kText) {
    reader.fail(*table.get("max_length"), key_child(path, "max_length"), "only for type = \"text\"");
  }
  if (metric.type == CubeMetricType::kDecimal && !scale) {
    reader.fail(table, key_child(path, "scale"), "missing required key (digits after the point, 0..18)");
  }
  if (metric.type == CubeMetricType::kText && !max_length) {
    reader.fail(table, key_child(path, "max_length"), "missing required key (bytes at most, 1..4096)");
  }
  metric.scale = static_cast<int>(scale.value_or(0));
  metric.max_length = static_cast<std::size_t>(max_length.value_or(0));
  return metric;
}

CubeConfig read_cube(const Reader& reader, const toml::table& table, const std::string& path) {
  reader.check_keys(table, path,
                    {"name", "source", "query", "changed_query", "description", "path", "file", "body", "metrics",
                     "max_age_s", "keep_versions_s", "refresh_ms", "max_slice"});
  CubeConfig cube;
  cube.line = line_of(table);
  const auto& name = reader.required<TomlString>(table, path, "name");
  if (std::string problem = dataset_name_problem(name.get()); !problem.empty()) {
    reader.fail(name, key_child(path, "name"),
                "invalid cube name " + quote_text(name.get()) + " (expected [A-Za-z0-9_-]{1,64})");
  }
  cube.name = name.get();
  cube.source = reader.required<TomlString>(table, path, "source").get();
  const auto& query = reader.required<TomlString>(table, path, "query");
  if (is_blank(query.get())) reader.fail(query, key_child(path, "query"), "must not be empty");
  cube.query = query.get();
  if (const auto* changed = reader.optional<TomlString>(table, path, "changed_query")) {
    if (is_blank(changed->get())) reader.fail(*changed, key_child(path, "changed_query"), "must not be empty");
    cube.changed_query = changed->get();
  }
  if (const auto* description = reader.optional<TomlString>(table, path, "description")) {
    cube.description = description->get();
  }
  for (const CubeDimensionConfig& dimension : read_dimensions(reader, table, path, "path", false)) {
    cube.path.push_back(dimension.name);
  }
  if (!cube.changed_query.empty() && cube.path.empty()) {
    reader.fail(*table.get("changed_query"), key_child(path, "changed_query"),
                "needs path dimensions (it names the path combinations to build again)");
  }
  cube.file = read_dimensions(reader, table, path, "file", true);
  cube.body = read_dimensions(reader, table, path, "body", true);
  const auto& metrics = reader.required<toml::array>(table, path, "metrics");
  const std::string metrics_path = key_child(path, "metrics");
  if (metrics.empty()) reader.fail(metrics, metrics_path, "needs at least one metric");
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    cube.metrics.push_back(read_metric(reader, *metrics.get(i), key_element(metrics_path, i)));
  }
  // Every name once: a column is a dimension or a metric, and a parameter means one thing.
  std::map<std::string, std::string> seen;
  auto claim = [&](const std::string& column, const toml::node& node, const std::string& where) {
    auto [it, inserted] = seen.emplace(column, where);
    if (!inserted) {
      reader.fail(node, where, "column " + quote_text(column) + " is already used by " + it->second);
    }
  };
  const auto* path_list = table.get("path");
  for (std::size_t i = 0; i < cube.path.size(); ++i) {
    claim(cube.path[i], *path_list->as_array()->get(i), key_element(key_child(path, "path"), i));
  }
  for (std::string_view key : {std::string_view("file"), std::string_view("body")}) {
    const auto& list = key == "file" ? cube.file : cube.body;
    for (std::size_t i = 0; i < list.size(); ++i) {
      claim(list[i].name, *table.get(key)->as_array()->get(i), key_element(key_child(path, key), i));
    }
  }
  for (std::size_t i = 0; i < cube.metrics.size(); ++i) {
    claim(cube.metrics[i].name, *metrics.get(i), key_element(metrics_path, i));
  }
  if (auto value = reader.optional_int(table, path, "max_age_s", 0, 366 * 86'400)) {
    cube.max_age = std::chrono::seconds(*value);
  }
  if (auto value = reader.optional_int(table, path, "keep_versions_s", 0, 366 * 86'400)) {
    cube.keep_versions = std::chrono::seconds(*value);
  }
  if (auto value = reader.optional_int(table, path, "refresh_ms", 10, 3'600'000)) {
    cube.refresh = std::chrono::milliseconds(*value);
  }
  // Servers read a replaced version until their next refresh: it must outlive that.
  if (cube.keep_versions.count() > 0 &&
      std::chrono::duration_cast<std::chrono::milliseconds>(cube.keep_versions) < 2 * cube.refresh) {
    const toml::node* keep = table.get("keep_versions_s");
    reader.fail(keep != nullptr ? *keep : static_cast<const toml::node&>(table), key_child(path, "keep_versions_s"),
                "must be at least twice refresh_ms (servers read a replaced version until they look "
                "again), or 0 to delete replaced versions at once");
  }
  if (auto value = reader.optional_int(table, path, "max_slice", 1, 1'000'000)) {
    cube.max_slice = static_cast<std::size_t>(*value);
  }
  return cube;
}

}  // namespace

void read_cubes(const Reader& reader, const toml::table& root, Config& config) {
  const toml::node* node = root.get("cubes");
  if (node == nullptr) return;
  const toml::array* cubes = node->as_array();
  if (cubes == nullptr) {
    reader.fail(*node, "cubes",
                "expected an array of tables ([[cubes]]), got " +
                    std::string(toml_type_name(node->type())));
  }
  if (!config.storage && !cubes->empty()) {
    reader.fail(*node, "cubes", "cubes are stored in [storage]: add it");
  }
  for (std::size_t i = 0; i < cubes->size(); ++i) {
    const std::string path = key_element("cubes", i);
    const auto& table = reader.expect<toml::table>(*cubes->get(i), path);
    CubeConfig cube = read_cube(reader, table, path);
    if (const CubeConfig* first = config.find_cube(cube.name)) {
      reader.fail(*table.get("name"), key_child(path, "name"),
                  "duplicate cube name " + quote_text(cube.name) + " (first defined on line " +
                      std::to_string(first->line) + ")");
    }
    if (!config.sources.contains(cube.source)) {
      reader.fail(*table.get("source"), key_child(path, "source"),
                  "unknown source " + quote_text(cube.source) + " (not defined in [sources])");
    }
    config.cubes.push_back(std::move(cube));
  }
}

}  // namespace sluice::config_detail
