#include "pipeline/postgrest_syntax.hpp"

#include <array>
#include <utility>

namespace sluice {
namespace {

// PostgREST's operator → the Sluice operator suffix ("" = the bare form); empty optional when
// Sluice has no equivalent.
struct Operator {
  std::string_view postgrest;
  std::optional<std::string_view> sluice;
};

constexpr std::array<Operator, 13> kOperators{{
    {"eq", ""},
    {"neq", ".ne"},
    {"gt", ".gt"},
    {"gte", ".gte"},
    {"lt", ".lt"},
    {"lte", ".lte"},
    {"in", ""},
    {"is", ".is_null"},
    {"like", std::nullopt},
    {"ilike", std::nullopt},
    {"not", std::nullopt},
    {"cs", std::nullopt},
    {"cd", std::nullopt},
}};

// `in.(DE,FR)` → `DE,FR`; PostgREST quotes values with commas ("a,b"), which Sluice cannot
// express in one list, so they are shown as given.
std::string_view list_of(std::string_view operand) {
  if (operand.size() >= 2 && operand.front() == '(' && operand.back() == ')') {
    return operand.substr(1, operand.size() - 2);
  }
  return operand;
}

std::string is_form(std::string_view name, std::string_view operand) {
  if (operand == "null") return "write " + std::string(name) + ".is_null=true";
  if (operand == "true" || operand == "false") {
    return "write " + std::string(name) + "=" + std::string(operand);
  }
  return "write " + std::string(name) + ".is_null=true or " + std::string(name) + ".is_null=false";
}

}  // namespace

std::optional<std::string> postgrest_hint(std::string_view name, std::string_view value) {
  const std::size_t dot = value.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view word = value.substr(0, dot);
  const std::string_view operand = value.substr(dot + 1);
  for (const Operator& op : kOperators) {
    if (op.postgrest != word) continue;
    if (word == "is") return is_form(name, operand);
    if (!op.sluice) {
      return "Sluice has no '" + std::string(word) +
             "' operator; see the filters of GET /v1/datasets (e.g. " + std::string(name) +
             ".prefix=, " + std::string(name) + ".ne=)";
    }
    const std::string_view shown = word == "in" ? list_of(operand) : operand;
    return "write " + std::string(name) + std::string(*op.sluice) + "=" + std::string(shown);
  }
  return std::nullopt;
}

}  // namespace sluice
