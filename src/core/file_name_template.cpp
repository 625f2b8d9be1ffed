#include "core/file_name_template.hpp"

#include <array>
#include <cstdio>
#include <ctime>

namespace sluice {
namespace {

constexpr std::array<std::string_view, 4> kPlaceholders = {"dataset", "date", "datetime",
                                                           "timestamp"};

// Calls `literal(text)` and `placeholder(name)` for the template's parts; returns a problem.
template <typename Literal, typename Placeholder>
std::string walk(std::string_view pattern, Literal&& literal, Placeholder&& placeholder) {
  while (!pattern.empty()) {
    std::size_t open = pattern.find_first_of("{}");
    literal(pattern.substr(0, open));
    if (open == std::string_view::npos) break;
    if (pattern[open] == '}') return "'}' without a matching '{'";
    std::size_t close = pattern.find('}', open);
    if (close == std::string_view::npos) return "'{' without a matching '}'";
    std::string_view name = pattern.substr(open + 1, close - open - 1);
    bool known = false;
    for (std::string_view candidate : kPlaceholders) known = known || candidate == name;
    if (!known) {
      return "unknown placeholder {" + std::string(name.substr(0, 32)) +
             "} (expected {dataset}, {date}, {datetime} or {timestamp})";
    }
    placeholder(name);
    pattern.remove_prefix(close + 1);
  }
  return {};
}

}  // namespace

std::string file_name_template_problem(std::string_view pattern) {
  return walk(pattern, [](std::string_view) {}, [](std::string_view) {});
}

std::string expand_file_name(std::string_view pattern, std::string_view dataset,
                             std::chrono::system_clock::time_point now) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  std::string name;
  walk(pattern, [&](std::string_view text) { name += text; },
       [&](std::string_view placeholder) {
         char buffer[32];
         if (placeholder == "dataset") {
           name += dataset;
         } else if (placeholder == "date") {
           name.append(buffer, std::strftime(buffer, sizeof buffer, "%Y-%m-%d", &utc));
         } else if (placeholder == "datetime") {
           name.append(buffer, std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H%M%SZ", &utc));
         } else {
           name += std::to_string(static_cast<long long>(seconds));
         }
       });
  return name;
}

}  // namespace sluice
