#include "pipeline/export_plan.hpp"

#include <algorithm>
#include <charconv>
#include <optional>

#include "core/api_error.hpp"
#include "core/utf8.hpp"
#include "pipeline/filter_value.hpp"
#include "pipeline/output_params.hpp"
#include "pipeline/postgrest_syntax.hpp"

namespace sluice {
namespace {

constexpr std::size_t kMaxInValues = 1000;

struct Condition {
  const FilterConfig* filter;
  FilterOp op;
  std::vector<BoundValue> values;
  std::string key;  // as given: `country`, `country.eq`
};

[[noreturn]] void reject(std::string code, const std::string& message) {
  throw ApiError(400, std::move(code), message);
}

// duplicate_parameter names the parameter in the body too: {"parameter": "limit"}.
ApiError::Fields duplicate_fields(std::string_view key) {
  ApiError::Fields fields;
  fields.emplace_back("parameter", shown_text(key));
  return fields;
}

[[noreturn]] void reject_duplicate(std::string_view key) {
  throw ApiError(400, "duplicate_parameter",
                 "parameter '" + shown_text(key) + "' is given more than once",
                 duplicate_fields(key));
}

std::string quote_identifier(std::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma - start));
    if (comma == std::string_view::npos) return parts;
    start = comma + 1;
  }
}

bool allows(const FilterConfig& filter, FilterOp op) {
  return std::find(filter.operators.begin(), filter.operators.end(), op) != filter.operators.end();
}

std::string operator_list(const FilterConfig& filter) {
  std::string list;
  for (FilterOp op : filter.operators) {
    if (!list.empty()) list += ", ";
    list += to_string(op);
  }
  return list;
}

std::string allowed_parameters(const Dataset& dataset) {
  std::string list;
  for (const FilterConfig& filter : dataset.config->filters) {
    list += filter.name + " (" + std::string(to_string(filter.type)) + ": " +
            operator_list(filter) + "), ";
  }
  return list + (dataset.config->sortable.empty() ? "columns, limit" : "columns, limit, order");
}

const FilterConfig* find_filter(const Dataset& dataset, std::string_view name) {
  for (const FilterConfig& filter : dataset.config->filters) {
    if (filter.name == name) return &filter;
  }
  return nullptr;
}

FilterOp choose_operator(const FilterConfig& filter, std::string_view op_name,
                         std::string_view value, const std::string& key) {
  if (op_name.empty() && key.find('.') == std::string::npos) {
    bool list = value.find(',') != std::string_view::npos || !allows(filter, FilterOp::kEq);
    if (list && allows(filter, FilterOp::kIn)) return FilterOp::kIn;
    if (allows(filter, FilterOp::kEq)) return FilterOp::kEq;
    reject("operator_not_allowed", "parameter '" + key + "' needs an operator: use " + key +
                                       ".OP=value with OP one of: " + operator_list(filter));
  }
  std::optional<FilterOp> op = parse_filter_op(op_name);
  if (!op) {
    reject("unknown_operator", "parameter '" + key + "': unknown operator '" +
                                   std::string(op_name) + "'; allowed: " + operator_list(filter));
  }
  if (!allows(filter, *op)) {
    reject("operator_not_allowed", "parameter '" + key + "': operator '" + std::string(op_name) +
                                       "' is not allowed; allowed: " + operator_list(filter));
  }
  return *op;
}

BoundValue parse_value(FilterType type, std::string_view text,
                       const std::string& key) {
  std::optional<BoundValue> value = parse_filter_value(type, text);
  if (!value) {
    const std::string shown = shown_text(text);
    reject("invalid_value", "parameter '" + key + "': '" + shown + "' is not " +
                                std::string(filter_value_syntax(type)));
  }
  return std::move(*value);
}

Condition parse_condition(const FilterConfig& filter, FilterOp op, std::string_view value,
                          const std::string& key) {
  Condition condition{&filter, op, {}, key};
  if (op == FilterOp::kIsNull) {
    condition.values.push_back(parse_value(FilterType::kBool, value, key));
  } else if (op == FilterOp::kIn) {
    std::vector<std::string_view> parts = split_commas(value);
    if (parts.size() > kMaxInValues) {
      reject("too_many_values", "parameter '" + key + "': at most 1000 values");
    }
    for (std::string_view part : parts) {
      condition.values.push_back(parse_value(filter.type, part, key));
    }
  } else {
    condition.values.push_back(parse_value(filter.type, value, key));
  }
  return condition;
}

// A filter given twice with the same meaning (`country=DE&country=FR`, `country=DE&
// country.eq=FR`, `id.gte=1&id.gte=5`) is refused, not merged: which one was meant is a guess.
// `name=`, `name.eq=` and `name.in=` all select by membership, so they count as one; different
// operators on one filter (`id.gte=1&id.lt=9`) are a range and allowed.
void add_condition(std::vector<Condition>& conditions, Condition condition,
                   const std::string& key) {
  auto slot = [](FilterOp op) { return op == FilterOp::kIn ? FilterOp::kEq : op; };
  for (const Condition& existing : conditions) {
    if (existing.filter != condition.filter || slot(existing.op) != slot(condition.op)) continue;
    std::string message = "parameter '" + shown_text(key) + "' is given more than once";
    if (existing.key != key) message += " (also as '" + shown_text(existing.key) + "')";
    if (slot(condition.op) == FilterOp::kEq && allows(*condition.filter, FilterOp::kIn)) {
      message += "; to match several values, list them once: " + condition.filter->name + "=A,B";
    }
    throw ApiError(400, "duplicate_parameter", message, duplicate_fields(key));
  }
  conditions.push_back(std::move(condition));
}

// `columns=` names columns as they are written (their output names, after any rename).
std::vector<Column> select_columns(const Dataset& dataset, std::string_view list) {
  std::vector<Column> selected;
  std::vector<std::string_view> seen;
  for (std::string_view name : split_commas(list)) {
    const Column* found = dataset.find_by_output_name(name);
    if (found == nullptr) {
      std::string allowed;
      for (const Column& column : dataset.written_columns()) allowed += (allowed.empty() ? "" : ", ") + column.name;
      reject("unknown_column", "parameter 'columns': unknown column '" +
                                   std::string(name.substr(0, 64)) + "'; allowed: " + allowed);
    }
    if (std::ranges::find(seen, name) != seen.end()) {
      reject("duplicate_column", "parameter 'columns': '" + std::string(name) + "' is listed twice");
    }
    seen.push_back(name);
    selected.push_back(*found);
  }
  return selected;
}

// `order=` names sortable columns by their output names; the keys returned carry the names
// the query returns.
std::vector<OrderKey> parse_request_order(const Dataset& dataset, std::string_view text) {
  std::vector<std::string> sortable;
  for (const std::string& column : dataset.config->sortable) sortable.push_back(dataset.output_name(column));
  std::vector<OrderKey> keys = parse_order(text, sortable);
  for (OrderKey& key : keys) key.column = dataset.find_by_output_name(key.column)->name;
  return keys;
}

std::int64_t parse_limit(std::string_view text) {
  std::int64_t limit = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || limit < 0) {
    reject("invalid_value", "parameter 'limit': '" + std::string(text.substr(0, 64)) +
                                "' is not a non-negative integer");
  }
  return limit;
}

std::string sortable_list(const std::vector<std::string>& sortable) {
  std::string list;
  for (const std::string& column : sortable) list += (list.empty() ? "" : ", ") + column;
  return list;
}

// NULLs sort as PostgreSQL sorts them by default (last ascending, first descending), spelled
// out so that SQLite, which sorts them the other way, gives the same order.
std::string order_by(const std::vector<OrderKey>& keys) {
  std::string clause;
  for (const OrderKey& key : keys) {
    clause += (clause.empty() ? " ORDER BY " : ", ") + quote_identifier(key.column) +
              (key.descending ? " DESC NULLS FIRST" : " ASC NULLS LAST");
  }
  return clause;
}

class SqlBuilder {
 public:
  SqlBuilder(const Source& source, QuerySpec& query) : source_(source), query_(query) {}

  std::string bind(BoundValue value, FilterType type) {
    query_.params.push_back(std::move(value));
    return source_.placeholder(query_.params.size() - 1, type);
  }

  std::string condition(const Condition& condition) {
    std::string raw_column = quote_identifier(condition.filter->column);
    std::string column = source_.compared_column(raw_column, condition.filter->type);
    auto bind = [&](const BoundValue& value) { return this->bind(value, condition.filter->type); };
    switch (condition.op) {
      case FilterOp::kEq: return column + " = " + bind(condition.values[0]);
      case FilterOp::kNe: return "(" + column + " <> " + bind(condition.values[0]) + " OR " +
                                 raw_column + " IS NULL)";
      case FilterOp::kLt: return column + " < " + bind(condition.values[0]);
      case FilterOp::kLte: return column + " <= " + bind(condition.values[0]);
      case FilterOp::kGt: return column + " > " + bind(condition.values[0]);
      case FilterOp::kGte: return column + " >= " + bind(condition.values[0]);
      case FilterOp::kIn: {
        std::string list;
        for (const BoundValue& value : condition.values) {
          list += (list.empty() ? "" : ", ") + bind(value);
        }
        return column + " IN (" + list + ")";
      }
      case FilterOp::kPrefix: return prefix(raw_column, condition.values[0]);
      case FilterOp::kIsNull:
        return raw_column + (std::get<std::int64_t>(condition.values[0]) ? " IS NULL" : " IS NOT NULL");
    }
    return "1 = 0";
  }

 private:
  // substr() and length() both count characters on SQLite and PostgreSQL; unlike LIKE this
  // needs no escaping and is case-sensitive everywhere.
  std::string prefix(const std::string& column, const BoundValue& value) {
    std::string length = "length(" + bind(value, FilterType::kText) + ")";
    return "substr(" + column + ", 1, " + length + ") = " + bind(value, FilterType::kText);
  }

  const Source& source_;
  QuerySpec& query_;
};

}  // namespace

std::vector<OrderKey> parse_order(std::string_view text, const std::vector<std::string>& sortable) {
  if (sortable.empty()) {
    reject("unknown_parameter", "parameter 'order': this dataset has no sortable columns");
  }
  std::vector<OrderKey> keys;
  for (std::string_view part : split_commas(text)) {
    OrderKey key;
    if (part.starts_with('-')) {
      key.descending = true;
      part.remove_prefix(1);
    }
    auto found = std::ranges::find(sortable, part);
    if (found == sortable.end()) {
      reject("invalid_order", "parameter 'order': '" + std::string(part.substr(0, 64)) +
                                  "' is not a sortable column; allowed: " +
                                  sortable_list(sortable) + " (prefix '-' for descending)");
    }
    bool repeated = std::ranges::any_of(keys, [&](const OrderKey& k) { return k.column == part; });
    if (repeated) {
      reject("invalid_order", "parameter 'order': '" + std::string(part) + "' is listed twice");
    }
    key.column = *found;
    keys.push_back(std::move(key));
  }
  return keys;
}

ExportPlan plan_export(const Dataset& dataset, Format format, const QueryParams& params) {
  ExportPlan plan{&dataset, format, Compression::kNone, dataset.config->output, dataset.columns, {}};
  OutputParams output(format, dataset.config->output);
  std::vector<Condition> conditions;
  std::optional<std::int64_t> limit;
  std::optional<std::vector<OrderKey>> order;
  bool columns_given = false;
  for (const auto& [key, value] : params) {
    if (key == kColumnsParam) {
      if (columns_given) reject_duplicate(key);
      columns_given = true;
      plan.columns = select_columns(dataset, value);
      continue;
    }
    if (key == kLimitParam) {
      if (limit) reject_duplicate(key);
      limit = parse_limit(value);
      continue;
    }
    if (key == kOrderParam) {
      if (order) reject_duplicate(key);
      order = parse_request_order(dataset, value);
      continue;
    }
    if (is_output_param(key)) {
      output.apply(key, value);
      continue;
    }
    std::string_view name(key);
    std::string_view op_name;
    if (std::size_t dot = name.find('.'); dot != std::string_view::npos) {
      op_name = name.substr(dot + 1);
      name = name.substr(0, dot);
    }
    const FilterConfig* filter = find_filter(dataset, name);
    if (filter == nullptr) {
      reject("unknown_filter", "unknown parameter '" + shown_text(key) +
                                   "'; allowed: " + allowed_parameters(dataset));
    }
    if (op_name.empty() && key.find('.') == std::string::npos) {
      if (std::optional<std::string> hint = postgrest_hint(key, value)) {
        reject("postgrest_syntax", "parameter '" + key + "': '" + shown_text(value) +
                                       "' is PostgREST's syntax, not Sluice's: " + *hint +
                                       " (a value that really starts so: " + key + ".eq=...)");
      }
    }
    FilterOp op = choose_operator(*filter, op_name, value, key);
    add_condition(conditions, parse_condition(*filter, op, value, key), key);
  }

  std::string select;
  for (const Column& column : plan.columns) {
    select += (select.empty() ? "" : ", ") + quote_identifier(column.name);
  }
  SqlBuilder sql(*dataset.source, plan.query);
  std::string where;
  for (const Condition& condition : conditions) {
    where += (where.empty() ? " WHERE " : " AND ") + sql.condition(condition);
  }
  if (!order && !dataset.config->order.empty()) {
    order = parse_order(dataset.config->order, dataset.config->sortable);
  }
  std::string tail = order ? order_by(*order) : std::string();
  if (limit) tail += " LIMIT " + sql.bind(*limit, FilterType::kInt);
  plan.output = output.options();
  // PostgreSQL's own CSV records, when the records encoder can turn them into what was asked.
  // Not when a selected column's values are transformed (a rename alone only changes the header).
  plan.query.csv_records = csv_records_usable(format, plan.output) &&
                           !dataset.transforms.changes_values(plan.columns);
  plan.query.csv_crlf = plan.output.crlf;
  plan.query.csv_formula_guard = plan.output.formula_guard;
  plan.query.sql = "SELECT " + select + " FROM (" + dataset.config->query + ") AS sluice_rows" +
                   where + tail;
  return plan;
}

ApiError unknown_dataset(const DatasetCatalog& catalog, std::string_view name,
                         const std::function<bool(std::string_view)>& shown) {
  constexpr std::size_t kMaxListed = 100;
  std::vector<std::string> names = catalog.names();
  if (shown) std::erase_if(names, [&shown](const std::string& each) { return !shown(each); });
  std::string listed;
  for (std::size_t i = 0; i < names.size() && i < kMaxListed; ++i) {
    listed += (listed.empty() ? "" : ", ") + names[i];
  }
  if (names.size() > kMaxListed) {
    listed += " and " + std::to_string(names.size() - kMaxListed) + " more";
    names.resize(kMaxListed);
  }
  ApiError::Fields fields;
  fields.lists.emplace_back("datasets", std::move(names));
  return {404, "unknown_dataset",
          "no dataset named '" + shown_text(name) + "'; available: " +
              (listed.empty() ? "none" : listed) + " (see /v1/datasets)",
          std::move(fields)};
}

ExportPlan plan_export(const DatasetCatalog& catalog, const ExportRequest& request) {
  const Dataset* dataset = catalog.find(request.dataset);
  if (dataset == nullptr) throw unknown_dataset(catalog, request.dataset);
  ExportPlan plan = plan_export(*dataset, request.format, request.params);
  plan.compression = request.compression;
  plan.query.request_id = request.request_id;
  return plan;
}

}  // namespace sluice
