#include "core/row_batch.hpp"

#include <array>
#include <utility>

namespace sluice {
namespace {

constexpr std::array<std::pair<LogicalType, std::string_view>, 9> kTypeNames{{
    {LogicalType::kInt, "int"},
    {LogicalType::kDecimal, "decimal"},
    {LogicalType::kFloat, "float"},
    {LogicalType::kBool, "bool"},
    {LogicalType::kText, "text"},
    {LogicalType::kTimestamp, "timestamp"},
    {LogicalType::kDate, "date"},
    {LogicalType::kJson, "json"},
    {LogicalType::kBytes, "bytes"},
}};

}  // namespace

std::string_view to_string(LogicalType type) {
  for (const auto& [value, name] : kTypeNames) {
    if (value == type) return name;
  }
  return "text";
}

std::optional<LogicalType> parse_logical_type(std::string_view name) {
  for (const auto& [value, type_name] : kTypeNames) {
    if (type_name == name) return value;
  }
  return std::nullopt;
}

}  // namespace sluice
