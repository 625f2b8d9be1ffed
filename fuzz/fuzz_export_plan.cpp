// Fuzzes the query-string → SQL path: a query string decoded as the server decodes it
// (Boost.URL, '+' as space), then plan_export against a dataset with every filter type and
// operator. Invariants: only ApiError(400) may be thrown; a plan's SQL never holds a string
// literal, a statement separator or a comment (user text reaches SQL only as bound values),
// and it has one placeholder per bound value.
#include <boost/url/parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

#include "core/api_error.hpp"
#include "pipeline/export_plan.hpp"

namespace sluice {
namespace {

class PlaceholderSource final : public Source {
 public:
  std::string placeholder(std::size_t, FilterType) const override { return "?"; }
  std::vector<Column> describe(const std::string&) override { std::abort(); }
  boost::asio::awaitable<std::unique_ptr<BatchReader>> open(QuerySpec, ReadBudget,
                                                            boost::asio::any_io_executor,
                                                            std::vector<Column>) override {
    std::abort();
  }
};

FilterConfig filter(std::string name, FilterType type, std::vector<FilterOp> ops) {
  FilterConfig config;
  config.name = name;
  config.column = std::move(name);
  config.type = type;
  config.operators = std::move(ops);
  return config;
}

struct Fixture {
  Fixture() {
    const std::vector<FilterOp> all = {FilterOp::kEq, FilterOp::kNe,  FilterOp::kIn,
                                       FilterOp::kLt, FilterOp::kLte, FilterOp::kGt,
                                       FilterOp::kGte, FilterOp::kIsNull};
    std::vector<FilterOp> text = all;
    text.push_back(FilterOp::kPrefix);
    config.name = "orders";
    config.query = "SELECT * FROM orders";
    config.filters = {filter("i", FilterType::kInt, all),     filter("d", FilterType::kDecimal, all),
                      filter("f", FilterType::kFloat, all),   filter("t", FilterType::kText, text),
                      filter("b", FilterType::kBool, all),    filter("day", FilterType::kDate, all),
                      filter("ts", FilterType::kTimestamp, all)};
    config.sortable = {"i", "t", "ts"};
    for (const char* name : {"i", "d", "f", "t", "b", "day", "ts"}) {
      dataset.columns.push_back({name, LogicalType::kText, 0});
    }
    dataset.config = &config;
    dataset.source = &source;
  }
  DatasetConfig config;
  PlaceholderSource source;
  Dataset dataset;
};

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  static Fixture fixture;
  std::string target = "/v1/exports/orders.csv?";
  target.append(reinterpret_cast<const char*>(data), size);
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return 0;
  QueryParams params;
  boost::urls::encoding_opts options;
  options.space_as_plus = true;
  for (auto param : url->params(options)) {
    params.emplace_back(param.key, param.has_value ? param.value : std::string());
  }
  for (Format format : {Format::kCsv, Format::kJsonLines}) {
    try {
      ExportPlan plan = plan_export(fixture.dataset, format, params);
      const std::string& sql = plan.query.sql;
      std::size_t placeholders = 0;
      for (char c : sql) placeholders += c == '?';
      if (sql.find('\'') != std::string::npos || sql.find(';') != std::string::npos ||
          sql.find("--") != std::string::npos || sql.find("/*") != std::string::npos ||
          placeholders != plan.query.params.size()) {
        std::cerr << "unsafe SQL: " << sql << '\n';
        std::abort();
      }
    } catch (const ApiError& error) {
      if (error.status() != 400) std::abort();
    }
  }
  return 0;
}
