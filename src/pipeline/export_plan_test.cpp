#include "pipeline/export_plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "core/api_error.hpp"

namespace sluice {
namespace {

// A source that only names placeholders: "?" like SQLite or "$N" (numbered in order), and
// remembers the type each placeholder was asked for.
class FakeSource final : public Source {
 public:
  explicit FakeSource(bool numbered) : numbered_(numbered) {}

  std::string placeholder(std::size_t index, FilterType type) const override {
    EXPECT_EQ(index, types.size()) << "placeholders must be asked for in order";
    types.push_back(type);
    return numbered_ ? "$" + std::to_string(index + 1) : "?";
  }
  std::vector<Column> describe(const std::string&) override {
    throw std::logic_error("describe() must not be called by the planner");
  }
  boost::asio::awaitable<std::unique_ptr<BatchReader>> open(QuerySpec, ReadBudget,
                                                            boost::asio::any_io_executor,
                                                            std::vector<Column>) override {
    throw std::logic_error("open() must not be called by the planner");
  }

  mutable std::vector<FilterType> types;

 private:
  bool numbered_;
};

constexpr const char* kQuery = "SELECT id, country, code, name, note, created_at FROM orders";
constexpr const char* kFrom =
    " FROM (SELECT id, country, code, name, note, created_at FROM orders) AS sluice_rows";
constexpr const char* kAllColumns =
    R"(SELECT "id", "country", "code", "name", "note", "created_at")";

FilterConfig filter(std::string name, std::string column, FilterType type,
                    std::vector<FilterOp> operators) {
  FilterConfig config;
  config.name = std::move(name);
  config.column = std::move(column);
  config.type = type;
  config.operators = std::move(operators);
  return config;
}

class ExportPlanTest : public ::testing::Test {
 protected:
  ExportPlanTest() : question_(false), dollar_(true) {
    config_.name = "orders";
    config_.source = "demo";
    config_.query = kQuery;
    config_.filters = {
        filter("code", "code", FilterType::kText, {FilterOp::kEq}),
        filter("country", "country", FilterType::kText, {FilterOp::kEq, FilterOp::kIn}),
        filter("id", "id", FilterType::kInt,
               {FilterOp::kEq, FilterOp::kIn, FilterOp::kLt, FilterOp::kLte, FilterOp::kGt,
                FilterOp::kGte}),
        filter("name", "name", FilterType::kText, {FilterOp::kPrefix}),
        filter("note", "note", FilterType::kText, {FilterOp::kIsNull, FilterOp::kNe}),
        filter("since", "created_at", FilterType::kDate, {FilterOp::kGte}),
    };
    std::vector<Column> columns = {
        {"id", LogicalType::kInt},    {"country", LogicalType::kText},
        {"code", LogicalType::kText}, {"name", LogicalType::kText},
        {"note", LogicalType::kText}, {"created_at", LogicalType::kDate},
    };
    dataset_ = Dataset{&config_, &question_, columns};
    numbered_ = Dataset{&config_, &dollar_, columns};
  }

  ExportPlan plan(const QueryParams& params) {
    question_.types.clear();
    return plan_export(dataset_, Format::kCsv, params);
  }

  // The types the last plan() asked placeholders for.
  const std::vector<FilterType>& types() const { return question_.types; }

  // The ApiError plan_export throws for `params`; fails the test when it throws none.
  ApiError error_for(const QueryParams& params) {
    question_.types.clear();
    try {
      plan_export(dataset_, Format::kCsv, params);
    } catch (const ApiError& error) {
      return error;
    }
    ADD_FAILURE() << "no ApiError";
    return ApiError(0, "", "");
  }

  DatasetConfig config_;
  FakeSource question_;
  FakeSource dollar_;
  Dataset dataset_;
  Dataset numbered_;
};

std::vector<BoundValue> values(std::initializer_list<BoundValue> list) {
  return list;
}

std::string all_rows() {
  return std::string(kAllColumns) + kFrom;
}

TEST_F(ExportPlanTest, NoParametersSelectsEveryColumnWithoutConditions) {
  ExportPlan result = plan({});
  EXPECT_EQ(result.dataset, &dataset_);
  EXPECT_EQ(result.format, Format::kCsv);
  EXPECT_EQ(result.query.sql, all_rows());
  EXPECT_TRUE(result.query.params.empty());
  ASSERT_EQ(result.columns.size(), 6u);
  EXPECT_EQ(result.columns[0].name, "id");
  EXPECT_EQ(result.columns[5].name, "created_at");
  EXPECT_EQ(result.columns[5].type, LogicalType::kDate);
  EXPECT_EQ(plan_export(dataset_, Format::kJsonLines, {}).format, Format::kJsonLines);
}

TEST_F(ExportPlanTest, EqualityBindsTheValue) {
  ExportPlan result = plan({{"country", "DE"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "country" = ?)");
  EXPECT_EQ(result.query.params, values({std::string("DE")}));
}

TEST_F(ExportPlanTest, ExplicitEqOperatorIsTheSameAsThePlainForm) {
  ExportPlan result = plan({{"country.eq", "DE"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "country" = ?)");
  EXPECT_EQ(result.query.params, values({std::string("DE")}));
}

TEST_F(ExportPlanTest, CommaListBecomesIn) {
  ExportPlan result = plan({{"country", "DE,FR"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "country" IN (?, ?))");
  EXPECT_EQ(result.query.params, values({std::string("DE"), std::string("FR")}));
}

// Repeated membership is refused, not merged (issue 14): `country=DE&country.eq=FR` was read as
// DE or FR while its writer may have meant either one.
TEST_F(ExportPlanTest, RepeatedMembershipIsADuplicate) {
  const std::vector<QueryParams> cases{
      {{"country", "DE"}, {"country", "FR"}},
      {{"country", "DE"}, {"country.eq", "FR"}},
      {{"country.eq", "DE"}, {"country.in", "IT,ES"}},
      {{"country.in", "DE"}, {"country", "FR,IT"}},
  };
  for (const QueryParams& params : cases) {
    ApiError error = error_for(params);
    EXPECT_EQ(error.status(), 400);
    EXPECT_EQ(error.code(), "duplicate_parameter") << error.what();
    EXPECT_NE(std::string(error.what()).find("country=A,B"), std::string::npos) << error.what();
    ASSERT_EQ(error.fields().size(), 1u);
    EXPECT_EQ(error.fields()[0].first, "parameter");
    EXPECT_EQ(error.fields()[0].second, params[1].first);
  }
  EXPECT_NE(std::string(error_for(cases[1]).what()).find("(also as 'country')"), std::string::npos);
  // Different operators on one filter stay a range or a combination.
  ExportPlan result = plan({{"id", "1,2"}, {"id.lt", "9"}, {"id.gte", "0"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "id" IN (?, ?) AND "id" < ? AND "id" >= ?)");
}

TEST_F(ExportPlanTest, EveryParameterKindRepeatedIsADuplicate) {
  const std::vector<QueryParams> cases{
      {{"limit", "1"}, {"limit", "2"}},
      {{"columns", "id"}, {"columns", "id"}},
      {{"header", "true"}, {"header", "false"}},
      {{"delimiter", ";"}, {"delimiter", ";"}},
      {{"bom", "true"}, {"bom", "true"}},
      {{"line_ending", "lf"}, {"line_ending", "crlf"}},
      {{"id.lt", "3"}, {"id.lt", "4"}},
  };
  for (const QueryParams& params : cases) {
    ApiError error = error_for(params);
    EXPECT_EQ(error.code(), "duplicate_parameter") << params[0].first;
    EXPECT_NE(std::string(error.what()).find("'" + params[0].first + "'"), std::string::npos)
        << error.what();
  }
}

TEST_F(ExportPlanTest, PostgrestValuesAreRefusedWithTheSluiceForm) {
  const std::vector<std::pair<QueryParams, std::string>> cases{
      {{{"country", "in.(DE,FR)"}}, "write country=DE,FR"},
      {{{"country", "eq.DE"}}, "write country=DE"},
      {{{"id", "gte.5"}}, "write id.gte=5"},
      {{{"id", "neq.5"}}, "write id.ne=5"},
      {{{"country", "is.null"}}, "write country.is_null=true"},
      {{{"country", "like.D*"}}, "no 'like' operator"},
      {{{"country", "not.in.(DE)"}}, "no 'not' operator"},
  };
  for (const auto& [params, hint] : cases) {
    ApiError error = error_for(params);
    EXPECT_EQ(error.status(), 400);
    EXPECT_EQ(error.code(), "postgrest_syntax") << error.what();
    EXPECT_NE(std::string(error.what()).find(hint), std::string::npos) << error.what();
  }
  // Not PostgREST: an explicit operator takes the value literally, and other dotted values pass.
  EXPECT_EQ(plan({{"country.eq", "in.(DE)"}}).query.params, values({std::string("in.(DE)")}));
  EXPECT_EQ(plan({{"country", "DE.x"}}).query.params, values({std::string("DE.x")}));
  EXPECT_EQ(plan({{"country", "equal.x"}}).query.params, values({std::string("equal.x")}));
}

TEST_F(ExportPlanTest, CommaIsPartOfTheValueWhenInIsNotAllowed) {
  ExportPlan result = plan({{"code", "A,B"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "code" = ?)");
  EXPECT_EQ(result.query.params, values({std::string("A,B")}));
}

TEST_F(ExportPlanTest, RepeatedEqualityWithoutInIsADuplicate) {
  ApiError error = error_for({{"code", "A"}, {"code", "B"}});
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.code(), "duplicate_parameter");
  EXPECT_NE(std::string(error.what()).find("'code'"), std::string::npos) << error.what();
}

TEST_F(ExportPlanTest, RangeConditionsAreAndedWithIntParams) {
  ExportPlan result = plan({{"id.gte", "10"}, {"id.lt", "20"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "id" >= ? AND "id" < ?)");
  EXPECT_EQ(result.query.params, values({std::int64_t{10}, std::int64_t{20}}));

  result = plan({{"id.gt", "-5"}, {"id.lte", "5"}, {"since.gte", "2024-02-29"}});
  EXPECT_EQ(result.query.sql,
            all_rows() + R"( WHERE "id" > ? AND "id" <= ? AND "created_at" >= ?)");
  EXPECT_EQ(result.query.params,
            values({std::int64_t{-5}, std::int64_t{5}, std::string("2024-02-29")}));
}

TEST_F(ExportPlanTest, SameFilterAndOperatorTwiceIsRejected) {
  ApiError error = error_for({{"id.gte", "10"}, {"id.gte", "20"}});
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.code(), "duplicate_parameter");
  EXPECT_STREQ(error.what(), "parameter 'id.gte' is given more than once");
}

// The database counts the prefix's characters (length() and substr() count characters, not
// bytes), so "Łó" (2 characters, 4 bytes) compares the first 2 characters.
TEST_F(ExportPlanTest, PrefixComparesTheLeadingCharacters) {
  const std::string prefix = "\xC5\x81\xC3\xB3";  // "Łó"
  ExportPlan result = plan({{"name.prefix", prefix}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE substr("name", 1, length(?)) = ?)");
  EXPECT_EQ(result.query.params, values({prefix, prefix}));
  EXPECT_EQ(types(), (std::vector<FilterType>{FilterType::kText, FilterType::kText}));
}

TEST_F(ExportPlanTest, IsNullTakesABoolAndBindsNothing) {
  ExportPlan result = plan({{"note.is_null", "true"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "note" IS NULL)");
  EXPECT_TRUE(result.query.params.empty());

  result = plan({{"note.is_null", "false"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "note" IS NOT NULL)");
  EXPECT_TRUE(result.query.params.empty());

  result = plan({{"note.is_null", "1"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "note" IS NULL)");

  ApiError error = error_for({{"note.is_null", "yes"}});
  EXPECT_EQ(error.code(), "invalid_value");
  EXPECT_NE(std::string(error.what()).find("parameter 'note.is_null'"), std::string::npos);
}

TEST_F(ExportPlanTest, NotEqualKeepsNullRows) {
  ExportPlan result = plan({{"note.ne", "x"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE ("note" <> ? OR "note" IS NULL))");
  EXPECT_EQ(result.query.params, values({std::string("x")}));
}

TEST_F(ExportPlanTest, ColumnsSelectsASubsetInTheGivenOrder) {
  ExportPlan result = plan({{"columns", "note,id"}});
  EXPECT_EQ(result.query.sql, std::string(R"(SELECT "note", "id")") + kFrom);
  ASSERT_EQ(result.columns.size(), 2u);
  EXPECT_EQ(result.columns[0].name, "note");
  EXPECT_EQ(result.columns[0].type, LogicalType::kText);
  EXPECT_EQ(result.columns[1].name, "id");
  EXPECT_EQ(result.columns[1].type, LogicalType::kInt);
}

TEST_F(ExportPlanTest, UnknownOrDuplicateColumnsAreRejected) {
  ApiError unknown = error_for({{"columns", "id,colour"}});
  EXPECT_EQ(unknown.status(), 400);
  EXPECT_EQ(unknown.code(), "unknown_column");
  EXPECT_STREQ(unknown.what(),
               "parameter 'columns': unknown column 'colour'; allowed: id, country, code, name, "
               "note, created_at");

  ApiError duplicate = error_for({{"columns", "id,note,id"}});
  EXPECT_EQ(duplicate.status(), 400);
  EXPECT_EQ(duplicate.code(), "duplicate_column");

  ApiError empty = error_for({{"columns", ""}});
  EXPECT_EQ(empty.code(), "unknown_column");

  ApiError twice = error_for({{"columns", "id"}, {"columns", "note"}});
  EXPECT_EQ(twice.code(), "duplicate_parameter");
}

TEST_F(ExportPlanTest, LimitIsBoundLast) {
  ExportPlan result = plan({{"limit", "0"}});
  EXPECT_EQ(result.query.sql, all_rows() + " LIMIT ?");
  EXPECT_EQ(result.query.params, values({std::int64_t{0}}));

  result = plan({{"limit", "9223372036854775807"}, {"country", "DE"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "country" = ? LIMIT ?)");
  EXPECT_EQ(result.query.params, values({std::string("DE"), std::int64_t{9223372036854775807}}));
}

TEST_F(ExportPlanTest, BadLimitsAreRejected) {
  for (const char* text :
       {"-1", "1e3", "99999999999999999999", "", "+5", " 5", "5 ", "ten", "1.0"}) {
    ApiError error = error_for({{"limit", text}});
    EXPECT_EQ(error.status(), 400) << text;
    EXPECT_EQ(error.code(), "invalid_value") << text;
    EXPECT_NE(std::string(error.what()).find("parameter 'limit'"), std::string::npos) << text;
  }
  EXPECT_EQ(error_for({{"limit", "1"}, {"limit", "2"}}).code(), "duplicate_parameter");
}

TEST_F(ExportPlanTest, UnknownFilterNamesTheParameterAndListsTheAllowedOnes) {
  ApiError error = error_for({{"colour", "red"}});
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.code(), "unknown_filter");
  EXPECT_STREQ(error.what(),
               "unknown parameter 'colour'; allowed: code (text: eq), country (text: eq, in), "
               "id (int: eq, in, lt, lte, gt, gte), name (text: prefix), "
               "note (text: is_null, ne), since (date: gte), columns, limit");

  // The filter name is matched before the dot; the column name is not a parameter name.
  EXPECT_EQ(error_for({{"colour.eq", "red"}}).code(), "unknown_filter");
  EXPECT_EQ(error_for({{"created_at.gte", "2024-01-01"}}).code(), "unknown_filter");
  EXPECT_EQ(error_for({{"", "x"}}).code(), "unknown_filter");
  EXPECT_EQ(error_for({{"Country", "DE"}}).code(), "unknown_filter");
  // The client's bytes as the message can carry them: valid UTF-8, no NUL ending what() early.
  EXPECT_EQ(std::string(error_for({{std::string("a\xff" "b\0c", 5), "1"}}).what()).substr(0, 30),
            "unknown parameter 'a\xEF\xBF\xBD" "b\\x00c'");
}

TEST_F(ExportPlanTest, OperatorNotAllowedForTheFilter) {
  ApiError error = error_for({{"country.lt", "DE"}});
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.code(), "operator_not_allowed");
  EXPECT_STREQ(error.what(),
               "parameter 'country.lt': operator 'lt' is not allowed; allowed: eq, in");

  EXPECT_EQ(error_for({{"code.in", "A,B"}}).code(), "operator_not_allowed");
  EXPECT_EQ(error_for({{"name.eq", "anna"}}).code(), "operator_not_allowed");
  EXPECT_EQ(error_for({{"since.lt", "2024-01-01"}}).code(), "operator_not_allowed");
}

TEST_F(ExportPlanTest, UnknownOperator) {
  ApiError error = error_for({{"country.like", "DE%"}});
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.code(), "unknown_operator");
  EXPECT_STREQ(error.what(), "parameter 'country.like': unknown operator 'like'; allowed: eq, in");
  EXPECT_EQ(error_for({{"country.EQ", "DE"}}).code(), "unknown_operator");
  EXPECT_EQ(error_for({{"id.gte.lt", "1"}}).code(), "unknown_operator");
}

TEST_F(ExportPlanTest, WrongTypedValueNamesTheParameter) {
  ApiError error = error_for({{"id.gte", "ten"}});
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.code(), "invalid_value");
  EXPECT_STREQ(error.what(), "parameter 'id.gte': 'ten' is not an integer");

  ApiError in_list = error_for({{"id", "1,2,x"}});
  EXPECT_EQ(in_list.code(), "invalid_value");
  EXPECT_STREQ(in_list.what(), "parameter 'id': 'x' is not an integer");

  ApiError date = error_for({{"since.gte", "2023-02-29"}});
  EXPECT_EQ(date.code(), "invalid_value");
  EXPECT_NE(std::string(date.what()).find("parameter 'since.gte'"), std::string::npos);

  // Long values are cut in the message.
  ApiError long_value = error_for({{"id", std::string(500, '7')}});
  EXPECT_EQ(long_value.code(), "invalid_value");
  EXPECT_LT(std::string(long_value.what()).size(), 200u);

  EXPECT_EQ(error_for({{"country", "\xC3\x28"}}).code(), "invalid_value");
}

TEST_F(ExportPlanTest, InjectionInValuesOnlyEverReachesParams) {
  const std::string attack = "DE' OR 1=1 --";
  ExportPlan result = plan({{"country", attack}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "country" = ?)");
  EXPECT_EQ(result.query.params, values({attack}));

  const std::vector<std::string> attacks = {attack,
                                            "x\"; DROP TABLE orders; --",
                                            "') UNION SELECT * FROM sqlite_master --",
                                            "a'||'b",
                                            "$1 OR 1=1",
                                            "? OR 1=1"};
  for (const std::string& value : attacks) {
    for (const char* key : {"country", "code", "name.prefix", "note.ne"}) {
      ExportPlan planned = plan({{key, value}});
      EXPECT_EQ(planned.query.sql.find(value), std::string::npos) << key << "=" << value;
      EXPECT_EQ(planned.query.sql.find("OR 1=1"), std::string::npos) << key << "=" << value;
      EXPECT_EQ(planned.query.sql.find("UNION"), std::string::npos) << key << "=" << value;
      EXPECT_EQ(planned.query.sql.find('\''), std::string::npos) << key << "=" << value;
      EXPECT_EQ(planned.query.sql.find(';'), std::string::npos) << key << "=" << value;
      EXPECT_EQ(planned.query.sql.find("--"), std::string::npos) << key << "=" << value;
      ASSERT_FALSE(planned.query.params.empty());
      EXPECT_EQ(planned.query.params.back(), BoundValue(value)) << key;
    }
  }
  // An IN list: every piece is its own parameter.
  ExportPlan list = plan({{"country", "DE' OR '1'='1,FR"}});
  EXPECT_EQ(list.query.sql, all_rows() + R"( WHERE "country" IN (?, ?))");
  EXPECT_EQ(list.query.params, values({std::string("DE' OR '1'='1"), std::string("FR")}));
}

TEST_F(ExportPlanTest, InjectionInParameterNamesAndColumnsIsRejected) {
  EXPECT_EQ(error_for({{"country\" OR 1=1 --", "x"}}).code(), "unknown_filter");
  EXPECT_EQ(error_for({{"country) OR (1=1", "x"}}).code(), "unknown_filter");
  EXPECT_EQ(error_for({{"country.eq;DROP TABLE orders", "x"}}).code(), "unknown_operator");
  EXPECT_EQ(error_for({{"id.gte OR 1=1", "1"}}).code(), "unknown_operator");
  EXPECT_EQ(error_for({{"columns", "id) FROM orders; --"}}).code(), "unknown_column");
  EXPECT_EQ(error_for({{"columns", "\"id\""}}).code(), "unknown_column");
  EXPECT_EQ(error_for({{"columns", "id,*"}}).code(), "unknown_column");
  EXPECT_EQ(error_for({{"columns", "id, note"}}).code(), "unknown_column");
  EXPECT_EQ(error_for({{"limit", "1; DROP TABLE orders"}}).code(), "invalid_value");
}

TEST_F(ExportPlanTest, OrderSortsBySortableColumnsWithNullsAsPostgresSortsThem) {
  config_.sortable = {"created_at", "id", "name"};
  ExportPlan result = plan({{"order", "-created_at,id"}, {"limit", "5"}});
  EXPECT_EQ(result.query.sql,
            all_rows() + R"( ORDER BY "created_at" DESC NULLS FIRST, "id" ASC NULLS LAST LIMIT ?)");
  EXPECT_EQ(result.query.params, values({std::int64_t{5}}));
  result = plan({{"country", "DE"}, {"order", "name"}});
  EXPECT_EQ(result.query.sql, all_rows() + R"( WHERE "country" = ? ORDER BY "name" ASC NULLS LAST)");
}

TEST_F(ExportPlanTest, OrderMayNameAColumnThatIsNotSelected) {
  config_.sortable = {"id"};
  ExportPlan result = plan({{"columns", "country"}, {"order", "-id"}});
  EXPECT_EQ(result.query.sql, std::string(R"(SELECT "country")") + kFrom +
                                  R"( ORDER BY "id" DESC NULLS FIRST)");
}

TEST_F(ExportPlanTest, DefaultOrderAppliesUnlessTheRequestGivesOne) {
  config_.sortable = {"created_at", "id"};
  config_.order = "-created_at";
  EXPECT_EQ(plan({}).query.sql, all_rows() + R"( ORDER BY "created_at" DESC NULLS FIRST)");
  EXPECT_EQ(plan({{"order", "id"}}).query.sql, all_rows() + R"( ORDER BY "id" ASC NULLS LAST)");
}

TEST_F(ExportPlanTest, BadOrdersAreRejectedAndNameWhatIsAllowed) {
  EXPECT_EQ(error_for({{"order", "id"}}).code(), "unknown_parameter");  // nothing sortable
  config_.sortable = {"created_at", "id"};
  for (const char* text : {"note", "", "-", "--id", "id,", ",id", "id DESC", "ID", "id,-id",
                           "id;DROP TABLE orders", "\"id\"", "id) --", "+id", " id"}) {
    ApiError error = error_for({{"order", text}});
    EXPECT_EQ(error.status(), 400) << text;
    EXPECT_EQ(error.code(), "invalid_order") << text;
    std::string message = error.what();
    EXPECT_NE(message.find("parameter 'order'"), std::string::npos) << message;
    EXPECT_TRUE(message.find("allowed: created_at, id") != std::string::npos ||
                message.find("listed twice") != std::string::npos) << message;
  }
  EXPECT_EQ(error_for({{"order", "id"}, {"order", "id"}}).code(), "duplicate_parameter");
  std::string unknown = error_for({{"bogus", "1"}}).what();
  EXPECT_NE(unknown.find("columns, limit, order"), std::string::npos) << unknown;
}

TEST_F(ExportPlanTest, DollarPlaceholdersAreNumberedInOrderWithLimitLast) {
  ExportPlan result = plan_export(numbered_, Format::kCsv,
                                  {{"limit", "5"},
                                   {"country", "DE,FR"},
                                   {"name.prefix", "an"},
                                   {"note.is_null", "false"},
                                   {"id.gte", "3"},
                                   {"columns", "id,name"}});
  EXPECT_EQ(result.query.sql,
            std::string(R"(SELECT "id", "name")") + kFrom +
                R"( WHERE "country" IN ($1, $2) AND substr("name", 1, length($3)) = $4)"
                R"( AND "note" IS NOT NULL AND "id" >= $5 LIMIT $6)");
  EXPECT_EQ(result.query.params, values({std::string("DE"), std::string("FR"), std::string("an"),
                                         std::string("an"), std::int64_t{3}, std::int64_t{5}}));
  EXPECT_EQ(dollar_.types,
            (std::vector<FilterType>{FilterType::kText, FilterType::kText, FilterType::kText,
                                     FilterType::kText, FilterType::kInt, FilterType::kInt}));
}

TEST_F(ExportPlanTest, PlaceholdersCarryTheFilterType) {
  plan({{"id.gte", "1"}, {"since.gte", "2024-01-01"}, {"country", "DE"}, {"limit", "3"}});
  EXPECT_EQ(types(), (std::vector<FilterType>{FilterType::kInt, FilterType::kDate,
                                              FilterType::kText, FilterType::kInt}));
}

std::string numbers(int from, int count) {
  std::string list;
  for (int i = from; i < from + count; ++i) list += (list.empty() ? "" : ",") + std::to_string(i);
  return list;
}

TEST_F(ExportPlanTest, AtMostOneThousandInValues) {
  ExportPlan result = plan({{"id", numbers(0, 1000)}});
  EXPECT_EQ(result.query.params.size(), 1000u);
  EXPECT_EQ(result.query.params.back(), BoundValue(std::int64_t{999}));

  ApiError error = error_for({{"id", numbers(0, 1001)}});
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.code(), "too_many_values");
  EXPECT_STREQ(error.what(), "parameter 'id': at most 1000 values");

  EXPECT_EQ(error_for({{"id.in", numbers(0, 1001)}}).code(), "too_many_values");
  // A repeated list is not widened into a longer one (issue 14): it is a duplicate.
  EXPECT_EQ(error_for({{"id", numbers(0, 600)}, {"id", numbers(600, 400)}}).code(),
            "duplicate_parameter");
}

}  // namespace
}  // namespace sluice
