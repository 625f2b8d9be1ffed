#include "core/config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <string>

namespace sluice {
namespace {

namespace fs = std::filesystem;

// The example of docs/CONFIG.md, verbatim.
constexpr std::string_view kExample = R"([server]
listen = "127.0.0.1:8080"

[sources.demo]
kind = "sqlite"
path = "orders.db"

[[datasets]]
name = "orders"
source = "demo"
query = "SELECT id, created_at, email, country, status, amount, quantity, note FROM orders"
file_name = "orders"
description = "All orders"

[datasets.filters.country]
column = "country"
type = "text"
operators = ["eq", "in"]

[datasets.filters.status]
type = "text"

[datasets.filters.id]
type = "int"
operators = ["eq", "in", "lt", "lte", "gt", "gte"]

[datasets.columns.amount]
type = "decimal"
)";

// Three lines, so a [[datasets]] that follows starts on line 4.
constexpr std::string_view kSource = R"([sources.demo]
kind = "sqlite"
path = "orders.db"
)";

// The message of the ConfigError that `action` throws; empty when it throws none.
template <typename Action>
std::string error_of(Action action) {
  try {
    action();
  } catch (const ConfigError& error) {
    return error.what();
  }
  return {};
}

std::string describe(const ServerConfig& server) {
  std::ostringstream out;
  out << server.listen << " threads=" << server.threads << " header=" << server.max_header_bytes
      << " body=" << server.max_body_bytes << " read=" << server.read_timeout.count()
      << " idle=" << server.idle_timeout.count() << " write=" << server.write_timeout.count()
      << " grace=" << server.shutdown_grace.count() << " buffer=" << server.stream_buffer_bytes
      << " streams=" << server.max_streams;
  return out.str();
}

std::string describe(const FilterConfig& filter) {
  std::ostringstream out;
  out << filter.name << " column=" << filter.column << " type=" << to_string(filter.type)
      << " line=" << filter.line << " ops=";
  for (FilterOp op : filter.operators) out << to_string(op) << ",";
  return out.str();
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "sluice-config-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    std::ofstream(dir_ / "orders.db").flush();
    file_ = dir_ / "sluice.toml";
  }

  void TearDown() override { fs::remove_all(dir_); }

  Config parse(std::string_view text) { return parse_config(text, file_); }

  // Passes when parsing fails with exactly "FILE:LINE: KEY: " followed by text containing
  // `problem`; a failure shows the actual message (empty when parsing succeeded).
  ::testing::AssertionResult fails_with(std::string_view text, int line, std::string_view key,
                                        std::string_view problem) {
    std::string prefix =
        file_.string() + ":" + std::to_string(line) + ": " + std::string(key) + ": ";
    std::string message = error_of([&] { parse(text); });
    if (message.starts_with(prefix) && message.find(problem, prefix.size()) != std::string::npos) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "message: " << message << "\nwanted prefix: " << prefix
                                         << "\nand problem: " << problem;
  }

  // A dataset after kSource: `body` lines follow the [[datasets]] header on line 4.
  static std::string dataset(std::string_view body) {
    return std::string(kSource) + "[[datasets]]\n" + std::string(body);
  }

  // A complete dataset after kSource: `extra` starts on line 8.
  static std::string complete(std::string_view extra) {
    return dataset("name = \"a\"\nsource = \"demo\"\nquery = \"q\"\n" + std::string(extra));
  }

  fs::path dir_;
  fs::path file_;
};

TEST(ConfigNamesTest, FilterTypesAndOpsRoundTrip) {
  for (std::string_view name : {"int", "decimal", "float", "text", "bool", "date", "timestamp"}) {
    ASSERT_TRUE(parse_filter_type(name).has_value()) << name;
    EXPECT_EQ(to_string(*parse_filter_type(name)), name);
  }
  for (std::string_view name : {"eq", "ne", "in", "lt", "lte", "gt", "gte", "prefix", "is_null"}) {
    ASSERT_TRUE(parse_filter_op(name).has_value()) << name;
    EXPECT_EQ(to_string(*parse_filter_op(name)), name);
  }
  EXPECT_EQ(parse_filter_type("timestamp"), FilterType::kTimestamp);
  EXPECT_EQ(parse_filter_op("is_null"), FilterOp::kIsNull);
  EXPECT_EQ(parse_filter_op("lte"), FilterOp::kLte);
  EXPECT_FALSE(parse_filter_type("json").has_value());
  EXPECT_FALSE(parse_filter_type("Int").has_value());
  EXPECT_FALSE(parse_filter_op("like").has_value());
}

TEST_F(ConfigTest, ParsesTheDocumentedExample) {
  Config config = parse(kExample);
  EXPECT_EQ(config.file, file_);
  EXPECT_EQ(config.server.listen, "127.0.0.1:8080");

  ASSERT_EQ(config.sources.size(), 1u);
  const SourceConfig& source = config.sources.at("demo");
  EXPECT_EQ(source.name, "demo");
  EXPECT_EQ(source.kind, "sqlite");
  EXPECT_EQ(source.path, dir_ / "orders.db");
  EXPECT_EQ(source.blocking_threads, 0u);
  EXPECT_EQ(source.line, 4);

  ASSERT_EQ(config.datasets.size(), 1u);
  const DatasetConfig& orders = config.datasets[0];
  EXPECT_EQ(orders.name, "orders");
  EXPECT_EQ(orders.source, "demo");
  EXPECT_EQ(orders.query,
            "SELECT id, created_at, email, country, status, amount, quantity, note FROM orders");
  EXPECT_EQ(orders.file_name, "orders");
  EXPECT_EQ(orders.description, "All orders");
  EXPECT_EQ(orders.line, 8);

  ASSERT_EQ(orders.filters.size(), 3u);
  EXPECT_EQ(describe(orders.filters[0]), "country column=country type=text line=15 ops=eq,in,");
  EXPECT_EQ(describe(orders.filters[1]), "id column=id type=int line=23 ops=eq,in,lt,lte,gt,gte,");
  EXPECT_EQ(describe(orders.filters[2]), "status column=status type=text line=20 ops=eq,in,");
  EXPECT_EQ(orders.column_types,
            (std::map<std::string, LogicalType>{{"amount", LogicalType::kDecimal}}));
  EXPECT_EQ(config.find_dataset("orders"), &orders);
  EXPECT_EQ(config.find_dataset("order"), nullptr);
}

TEST_F(ConfigTest, EmptyFileGivesDefaults) {
  Config config = parse("");
  EXPECT_EQ(describe(config.server),
            "127.0.0.1:8080 threads=0 header=8192 body=1048576 read=30000 idle=60000 write=60000 "
            "grace=10000 buffer=262144 streams=1024");
  EXPECT_TRUE(config.sources.empty());
  EXPECT_TRUE(config.datasets.empty());
  EXPECT_TRUE(parse("[server]\n").sources.empty());
}

TEST_F(ConfigTest, DatasetAndFilterDefaults) {
  Config config = parse(dataset(R"(name = "sales-2024"
source = "demo"
query = "SELECT 1"
[datasets.filters.region]
)"));
  ASSERT_EQ(config.datasets.size(), 1u);
  const DatasetConfig& sales = config.datasets[0];
  EXPECT_EQ(sales.file_name, "sales-2024");
  EXPECT_EQ(sales.description, "");
  EXPECT_TRUE(sales.column_types.empty());
  ASSERT_EQ(sales.filters.size(), 1u);
  EXPECT_EQ(describe(sales.filters[0]), "region column=region type=text line=8 ops=eq,in,");
}

TEST_F(ConfigTest, ReadsEveryServerKey) {
  Config config = parse(R"([server]
listen = "[::1]:0"
threads = 3
max_header_bytes = 1024
max_body_bytes = 0
read_timeout_ms = 1
idle_timeout_ms = 2
write_timeout_ms = 3
shutdown_grace_ms = 0
stream_buffer_bytes = 65536
max_streams = 1
)");
  EXPECT_EQ(describe(config.server),
            "[::1]:0 threads=3 header=1024 body=0 read=1 idle=2 write=3 grace=0 buffer=65536 "
            "streams=1");
}

TEST_F(ConfigTest, SourceOptionsAndPaths) {
  fs::create_directory(dir_ / "data");
  std::ofstream(dir_ / "data" / "a.db").flush();
  Config config = parse(R"([sources.rel]
kind = "sqlite"
path = "data/../data/a.db"
blocking_threads = 5
[sources.abs]
kind = "sqlite"
path = ")" + (dir_ / "orders.db").string() +
                        "\"\n");
  EXPECT_EQ(config.sources.at("rel").path, dir_ / "data" / "a.db");
  EXPECT_EQ(config.sources.at("rel").blocking_threads, 5u);
  EXPECT_EQ(config.sources.at("abs").path, dir_ / "orders.db");
  EXPECT_EQ(config.sources.at("abs").line, 5);
}

TEST_F(ConfigTest, SyntaxErrorNamesTomlLine) {
  std::string message = error_of([&] { parse("[server]\nlisten = = 1\n"); });
  EXPECT_TRUE(message.starts_with(file_.string() + ":2: Error while parsing")) << message;
}

TEST_F(ConfigTest, UnknownKeysAtEveryLevel) {
  EXPECT_TRUE(fails_with("title = 1\n", 1, "title", "unknown key"));
  EXPECT_TRUE(fails_with("[server]\nlisten = \"a:1\"\nthread = 2\n", 3, "server.thread",
                         "unknown key (expected one of: listen, threads,"));
  EXPECT_TRUE(fails_with("[sources.demo]\nkind = \"sqlite\"\npath = \"orders.db\"\nmode = \"ro\"\n",
                         4, "sources.demo.mode", "unknown key"));
  EXPECT_TRUE(fails_with(complete("sql = \"q\"\n"), 8, "datasets[0].sql", "unknown key"));
  EXPECT_TRUE(fails_with(complete("[datasets.filters.x]\nop = []\n"), 9, "datasets[0].filters.x.op",
                         "unknown key"));
  EXPECT_TRUE(fails_with(complete("[datasets.columns.\"a b\"]\ntype = \"int\"\nnull = true\n"), 10,
                         "datasets[0].columns.\"a b\".null", "unknown key"));
}

TEST_F(ConfigTest, MissingRequiredKeyNamesTheTableLine) {
  EXPECT_TRUE(fails_with(dataset("name = \"a\"\nsource = \"demo\"\n"), 4, "datasets[0].query",
                         "missing required key"));
  EXPECT_TRUE(fails_with(dataset("source = \"demo\"\nquery = \"q\"\n"), 4, "datasets[0].name",
                         "missing required key"));
  EXPECT_TRUE(fails_with("\n[sources.x]\npath = \"orders.db\"\n", 2, "sources.x.kind",
                         "missing required key"));
  EXPECT_TRUE(
      fails_with("[sources.x]\nkind = \"sqlite\"\n", 1, "sources.x.path", "missing required key"));
  EXPECT_TRUE(fails_with(complete("[datasets.columns.amount]\n"), 8,
                         "datasets[0].columns.amount", "is empty"));
}

TEST_F(ConfigTest, WrongValueTypes) {
  EXPECT_TRUE(fails_with("[server]\n\nthreads = \"4\"\n", 3, "server.threads",
                         "expected an integer, got a string"));
  EXPECT_TRUE(fails_with("server = 1\n", 1, "server", "expected a table, got an integer"));
  EXPECT_TRUE(fails_with("sources = [1]\n", 1, "sources", "expected a table, got an array"));
  EXPECT_TRUE(fails_with("[sources]\ndemo = \"x\"\n", 2, "sources.demo", "expected a table"));
  EXPECT_TRUE(fails_with("[datasets]\nname = \"a\"\n", 1, "datasets",
                         "expected an array of tables ([[datasets]]), got a table"));
  EXPECT_TRUE(fails_with("datasets = [1]\n", 1, "datasets[0]", "expected a table"));
  EXPECT_TRUE(fails_with(complete("[datasets.filters.x]\noperators = \"eq\"\n"), 9,
                         "datasets[0].filters.x.operators", "expected an array, got a string"));
  EXPECT_TRUE(fails_with(complete("[datasets.filters.x]\noperators = [\"eq\",\n  1]\n"), 10,
                         "datasets[0].filters.x.operators[1]", "expected a string"));
  EXPECT_TRUE(fails_with(complete("[datasets.columns]\namount = \"decimal\"\n"), 9,
                         "datasets[0].columns.amount", "expected a table, got a string"));
}

TEST_F(ConfigTest, ServerValueTypesAndRanges) {
  for (std::string_view line : {
           "listen = 8080|expected a string, got an integer",
           "read_timeout_ms = 1.5|expected an integer, got a float",
           "max_header_bytes = 1023|must be at least 1024",
           "threads = -1|must be at least 0",
           "threads = 4294967296|must be at most 4294967295",
           "read_timeout_ms = 0|must be at least 1",
           "idle_timeout_ms = 0|must be at least 1",
           "write_timeout_ms = 0|must be at least 1",
           "shutdown_grace_ms = -1|must be at least 0",
           "max_body_bytes = -1|must be at least 0",
           "stream_buffer_bytes = 65535|must be at least 65536",
           "max_streams = 0|must be at least 1",
       }) {
    std::string_view setting = line.substr(0, line.find('|'));
    std::string key = "server." + std::string(setting.substr(0, setting.find(' ')));
    EXPECT_TRUE(fails_with("[server]\n" + std::string(setting) + "\n", 2, key,
                           line.substr(line.find('|') + 1)));
  }
  EXPECT_TRUE(
      fails_with("[sources.demo]\nkind = \"sqlite\"\npath = \"orders.db\"\n"
                 "blocking_threads = -2\n",
                 4, "sources.demo.blocking_threads", "must be at least 0"));
}

TEST_F(ConfigTest, ListenMustBeHostPort) {
  auto listen = [](std::string_view value) {
    return "# comment\n[server]\nlisten = \"" + std::string(value) + "\"\n";
  };
  for (std::string_view bad :
       {"localhost", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:80a", "127.0.0.1:-1", ":8080",
        "::1:8080", "[::1]", "[::1:80", "[]:80", "[zz]:80", "my host:80", "127.0.0.1:123456"}) {
    EXPECT_TRUE(fails_with(listen(bad), 3, "server.listen", "expected HOST:PORT")) << bad;
  }
  for (std::string_view good :
       {"0.0.0.0:0", "localhost:65535", "[::1]:8080", "[fe80::1%eth0]:80", "my-host.example:443"}) {
    EXPECT_EQ(parse(listen(good)).server.listen, good);
  }
}

TEST_F(ConfigTest, SourceKindAndName) {
  EXPECT_TRUE(fails_with("[sources.pg]\nkind = \"mysql\"\n", 2, "sources.pg.kind",
                         "unsupported kind \"mysql\" (expected one of: sqlite, postgres)"));
  EXPECT_TRUE(fails_with("[sources.pg]\nkind = \"postgres\"\n", 1, "sources.pg.url",
                         "give exactly one of url and url_env"));
  EXPECT_TRUE(fails_with("[sources.pg]\nkind = \"postgres\"\nurl_env = \"SLUICE_NO_SUCH_VAR\"\n",
                         3, "sources.pg.url_env",
                         "environment variable \"SLUICE_NO_SUCH_VAR\" is not set"));
  EXPECT_TRUE(fails_with("[sources.pg]\nkind = \"postgres\"\nurl = \"x\"\npool_size = 0\n", 4,
                         "sources.pg.pool_size", "must be at least 1"));
  EXPECT_TRUE(fails_with("[sources.\"a b\"]\nkind = \"sqlite\"\npath = \"orders.db\"\n", 1,
                         "sources.\"a b\"", "invalid source name"));
  EXPECT_TRUE(fails_with("[sources.'q\"\\']\n", 1, "sources.\"q\\\"\\\\\"", "invalid source name"));
}

TEST_F(ConfigTest, MissingSqliteFileNamesResolvedPath) {
  std::string resolved = (dir_ / "missing.db").string();
  EXPECT_TRUE(fails_with("[sources.demo]\nkind = \"sqlite\"\npath = \"sub/../missing.db\"\n", 3,
                         "sources.demo.path", "does not exist: " + resolved));
  EXPECT_TRUE(fails_with("[sources.demo]\nkind = \"sqlite\"\npath = \".\"\n", 3,
                         "sources.demo.path", "is a directory"));
  EXPECT_TRUE(fails_with("[sources.demo]\nkind = \"sqlite\"\npath = \"\"\n", 3, "sources.demo.path",
                         "must not be empty"));
}

TEST_F(ConfigTest, DuplicateDatasetName) {
  std::string text = dataset("name = \"orders\"\nsource = \"demo\"\nquery = \"q\"\n") +
                     "\n[[datasets]]\nsource = \"demo\"\nname = \"orders\"\nquery = \"q\"\n";
  EXPECT_TRUE(fails_with(text, 11, "datasets[1].name",
                         "duplicate dataset name \"orders\" (first defined on line 4)"));
}

TEST_F(ConfigTest, DatasetNameRules) {
  auto named = [](std::string_view name) {
    return dataset("name = \"" + std::string(name) + "\"\nsource = \"demo\"\nquery = \"q\"\n");
  };
  for (const std::string& bad :
       std::vector<std::string>{"", "a b", "a.b", "\u00e4", std::string(65, 'a')}) {
    EXPECT_TRUE(fails_with(named(bad), 5, "datasets[0].name", "invalid dataset name")) << bad;
  }
  EXPECT_EQ(parse(named(std::string(64, 'a'))).datasets.at(0).name, std::string(64, 'a'));
  EXPECT_EQ(parse(named("A_z-09")).datasets.at(0).name, "A_z-09");
}

TEST_F(ConfigTest, UnknownSource) {
  EXPECT_TRUE(fails_with(dataset("name = \"a\"\nsource = \"prod\"\nquery = \"q\"\n"), 6,
                         "datasets[0].source", "unknown source \"prod\""));
  EXPECT_TRUE(fails_with("[[datasets]]\nname = \"a\"\nsource = \"demo\"\nquery = \"q\"\n", 3,
                         "datasets[0].source", "unknown source \"demo\""));
}

TEST_F(ConfigTest, EmptyQuery) {
  EXPECT_TRUE(fails_with(dataset("name = \"a\"\nsource = \"demo\"\nquery = \"  \\n\"\n"), 7,
                         "datasets[0].query", "must not be empty"));
}

TEST_F(ConfigTest, FileNameRules) {
  auto with_file_name = [](std::string_view file_name) {
    return complete("file_name = \"" + std::string(file_name) + "\"\n");
  };
  for (std::string_view bad : {"a/b", "a\\\\b", "a\\\"b", "a\\tb", "a\\u007fb", ""}) {
    EXPECT_TRUE(fails_with(with_file_name(bad), 8, "datasets[0].file_name", "must not")) << bad;
  }
  EXPECT_EQ(parse(with_file_name("Orders 2024 (all)")).datasets.at(0).file_name,
            "Orders 2024 (all)");
}

TEST_F(ConfigTest, FileNameTemplates) {
  EXPECT_EQ(parse(complete("file_name = \"orders-{date}\"\n")).datasets.at(0).file_name,
            "orders-{date}");
  EXPECT_TRUE(fails_with(complete("file_name = \"orders-{day}\"\n"), 8, "datasets[0].file_name",
                         "unknown placeholder {day}"));
  EXPECT_TRUE(fails_with(complete("file_name = \"orders-{date\"\n"), 8, "datasets[0].file_name",
                         "without a matching '}'"));
}

TEST_F(ConfigTest, SortableColumnsAndDefaultOrder) {
  Config config = parse(complete("sortable = [\"created_at\", \"id\"]\norder = \"-created_at\"\n"));
  EXPECT_EQ(config.datasets.at(0).sortable, (std::vector<std::string>{"created_at", "id"}));
  EXPECT_EQ(config.datasets.at(0).order, "-created_at");
  EXPECT_EQ(config.datasets.at(0).order_line, 9);
  EXPECT_TRUE(parse(complete("")).datasets.at(0).sortable.empty());
  EXPECT_TRUE(fails_with(complete("sortable = [\"id\", \"id\"]\n"), 8, "datasets[0].sortable[1]",
                         "duplicate column \"id\""));
  EXPECT_TRUE(fails_with(complete("sortable = [\"\"]\n"), 8, "datasets[0].sortable[0]",
                         "must not be empty"));
  EXPECT_TRUE(fails_with(complete("sortable = [1]\n"), 8, "datasets[0].sortable[0]",
                         "expected a string"));
  EXPECT_TRUE(fails_with(complete("order = \"id\"\n"), 8, "datasets[0].order",
                         "needs a `sortable` list"));
}

TEST_F(ConfigTest, BadOperators) {
  auto with_operators = [](std::string_view operators) {
    return dataset(
        "name = \"a\"\nsource = \"demo\"\nquery = \"q\"\n[datasets.filters.x]\n"
        "operators = [\n  \"eq\",\n  \"in\",\n  " +
        std::string(operators) + "]\n");
  };
  EXPECT_TRUE(fails_with(with_operators("\"like\""), 12, "datasets[0].filters.x.operators[2]",
                         "unknown operator \"like\" (expected one of: eq, ne, in, lt, lte, gt, "
                         "gte, prefix, is_null)"));
  EXPECT_TRUE(fails_with(with_operators("\"eq\""), 12, "datasets[0].filters.x.operators[2]",
                         "duplicate operator \"eq\""));
  EXPECT_TRUE(fails_with(complete("[datasets.filters.x]\noperators = []\n"), 9,
                         "datasets[0].filters.x.operators", "must list at least one operator"));
  Config config = parse(with_operators("\"is_null\", \"prefix\", \"ne\""));
  EXPECT_EQ(config.datasets[0].filters[0].operators,
            (std::vector{FilterOp::kEq, FilterOp::kIn, FilterOp::kIsNull, FilterOp::kPrefix,
                         FilterOp::kNe}));
}

TEST_F(ConfigTest, FilterNameRules) {
  auto with_filter = [](std::string_view name) {
    return complete("\n[datasets.filters." + std::string(name) + "]\n");
  };
  for (std::string_view reserved : {"columns", "order", "limit", "format"}) {
    EXPECT_TRUE(fails_with(with_filter(reserved), 9, "datasets[0].filters." + std::string(reserved),
                           "reserved"));
  }
  EXPECT_TRUE(fails_with(with_filter("1st"), 9, "datasets[0].filters.1st", "invalid filter name"));
  EXPECT_TRUE(fails_with(with_filter("a-b"), 9, "datasets[0].filters.a-b", "invalid filter name"));
  std::string long_name(65, 'f');
  EXPECT_TRUE(fails_with(with_filter(long_name), 9, "datasets[0].filters." + long_name,
                         "invalid filter name"));
  EXPECT_EQ(parse(with_filter("_Limit2")).datasets[0].filters[0].name, "_Limit2");
}

TEST_F(ConfigTest, FilterTypeMatchesDocumentedMessage) {
  std::string text = dataset(
      "name = \"a\"\nsource = \"demo\"\nquery = \"q\"\n"
      "[datasets.filters.country]\ntype = \"strng\"\n");
  EXPECT_EQ(error_of([&] { parse(text); }),
            file_.string() +
                ":9: datasets[0].filters.country.type: unknown type \"strng\" (expected one of: "
                "int, decimal, float, text, bool, date, timestamp)");
}

TEST_F(ConfigTest, BadColumnType) {
  std::string text = dataset(
      "name = \"a\"\nsource = \"demo\"\nquery = \"q\"\n"
      "[datasets.columns.amount]\ntype = \"money\"\n");
  EXPECT_TRUE(fails_with(text, 9, "datasets[0].columns.amount.type",
                         "unknown type \"money\" (expected one of: int, decimal, float, bool, "
                         "text, timestamp, date, json, bytes)"));
  Config config =
      parse(complete("[datasets.columns.raw]\ntype = \"bytes\"\n"
                     "[datasets.columns.\"Total Amount\"]\ntype = \"json\"\n"));
  EXPECT_EQ(config.datasets[0].column_types,
            (std::map<std::string, LogicalType>{{"Total Amount", LogicalType::kJson},
                                                {"raw", LogicalType::kBytes}}));
}

TEST_F(ConfigTest, LaterDatasetsReportTheirOwnIndexAndLine) {
  std::string text = complete("") +
                     "[[datasets]]\nname = \"b\"\nsource = \"demo\"\nquery = \"q\"\n"
                     "[datasets.filters.f]\noperators = [\"eq\", \"gt\", \"between\"]\n";
  EXPECT_TRUE(fails_with(text, 13, "datasets[1].filters.f.operators[2]", "unknown operator"));
}

TEST_F(ConfigTest, LoadConfigReadsTheFile) {
  std::ofstream(file_) << kExample;
  Config config = load_config(file_);
  EXPECT_EQ(config.file, file_);
  ASSERT_EQ(config.datasets.size(), 1u);
  EXPECT_EQ(config.sources.at("demo").path, dir_ / "orders.db");
}

TEST_F(ConfigTest, LoadConfigResolvesAgainstTheFileButReportsThePathAsGiven) {
  fs::create_directory(dir_ / "conf");
  std::ofstream(dir_ / "conf" / "sluice.toml") << "[sources.demo]\nkind = \"sqlite\"\n"
                                               << "path = \"../orders.db\"\n";
  std::ofstream(dir_ / "conf" / "bad.toml") << "[server]\n\nlisten = \"unterminated\n";
  struct CurrentPath {
    fs::path previous = fs::current_path();
    ~CurrentPath() { fs::current_path(previous); }
  } restore;
  fs::current_path(dir_);
  Config config = load_config("conf/sluice.toml");
  EXPECT_EQ(config.file, dir_ / "conf" / "sluice.toml");
  EXPECT_EQ(config.sources.at("demo").path, dir_ / "orders.db");
  std::string message = error_of([] { load_config("conf/bad.toml"); });
  EXPECT_TRUE(message.starts_with("conf/bad.toml:3: ")) << message;
}

TEST_F(ConfigTest, LoadConfigReportsUnreadableFile) {
  fs::path missing = dir_ / "nope.toml";
  EXPECT_EQ(error_of([&] { load_config(missing); }),
            missing.string() + ": cannot read: No such file or directory");
  EXPECT_EQ(error_of([&] { load_config(dir_); }), dir_.string() + ": cannot read: Is a directory");
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(ConfigStorageTest, LocalFolderIsResolvedAgainstTheConfigFile) {
  auto dir = std::filesystem::temp_directory_path() / "sluice-config-storage-test";
  std::filesystem::create_directories(dir / "objects");
  Config config = parse_config("[storage]\nkind = \"local\"\npath = \"objects\"\n", dir / "s.toml");
  ASSERT_TRUE(config.storage.has_value());
  EXPECT_EQ(config.storage->kind, "local");
  EXPECT_EQ(config.storage->path, dir / "objects");
  EXPECT_EQ(config.storage->line, 1);
  EXPECT_FALSE(parse_config("", dir / "s.toml").storage.has_value());
}

TEST(ConfigStorageTest, ErrorsNameKeyAndLine) {
  auto dir = std::filesystem::temp_directory_path() / "sluice-config-storage-test";
  std::filesystem::create_directories(dir);
  auto message = [&](const std::string& text) {
    try {
      parse_config(text, dir / "s.toml");
    } catch (const ConfigError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("[storage]\npath = \"missing\"\n"),
            (dir / "s.toml").string() + ":2: storage.path: no such folder: " +
                (dir / "missing").string());
  EXPECT_EQ(message("[storage]\nkind = \"ftp\"\npath = \".\"\n"),
            (dir / "s.toml").string() +
                ":2: storage.kind: unsupported kind \"ftp\" (expected one of: local)");
  EXPECT_EQ(message("\n[storage]\nkind = \"local\"\n"),
            (dir / "s.toml").string() + ":2: storage.path: missing required key");
  EXPECT_EQ(message("[storage]\npath = \".\"\nroot = 1\n"),
            (dir / "s.toml").string() +
                ":3: storage.root: unknown key (expected one of: kind, path, link_secret_env)");
  EXPECT_EQ(message("[storage]\npath = \".\"\nlink_secret_env = \"1A\"\n"),
            (dir / "s.toml").string() +
                ":3: storage.link_secret_env: must be an environment variable name "
                "([A-Za-z_][A-Za-z0-9_]*), not \"1A\"");
}

TEST(ConfigStorageTest, LinkSecretEnvHasADefault) {
  auto dir = std::filesystem::temp_directory_path() / "sluice-config-storage-test";
  std::filesystem::create_directories(dir);
  EXPECT_EQ(parse_config("[storage]\npath = \".\"\n", dir / "s.toml").storage->link_secret_env,
            "SLUICE_LINK_SECRET");
  EXPECT_EQ(parse_config("[storage]\npath = \".\"\nlink_secret_env = \"MY_KEY\"\n", dir / "s.toml")
                .storage->link_secret_env,
            "MY_KEY");
}

}  // namespace
}  // namespace sluice
