#include "core/config.hpp"
#include "core/config_test_dir.hpp"

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

class ConfigTest : public ConfigDirTest {
 protected:
  void SetUp() override {
    ConfigDirTest::SetUp();
    file_ = dir_ / "sluice.toml";
  }

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
                ":2: storage.kind: unsupported kind \"ftp\" (expected one of: local, s3)");
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

// [storage] kind = "s3". Only syntax is checked at load: nothing is resolved, connected or read
// from the environment.
class ConfigS3Test : public ConfigTest {
 protected:
  // An S3 store with its required keys; `extra` starts on line 4.
  static std::string s3(std::string_view extra) {
    return "[storage]\nkind = \"s3\"\nbucket = \"examplebucket\"\n" + std::string(extra);
  }

  // The message of a config with `key = value` on line 4, or "" when it loads.
  std::string message(std::string_view key, std::string_view value) {
    return error_of([&] { parse(s3(std::string(key) + " = " + std::string(value) + "\n")); });
  }
};

TEST_F(ConfigS3Test, BucketAloneIsAwsS3InUsEast1) {
  Config config = parse(s3(""));
  ASSERT_TRUE(config.storage.has_value());
  EXPECT_EQ(config.storage->kind, "s3");
  EXPECT_EQ(config.storage->line, 1);
  EXPECT_TRUE(config.storage->path.empty());
  EXPECT_EQ(config.storage->link_secret_env, "SLUICE_LINK_SECRET");
  ASSERT_TRUE(config.storage->s3.has_value());
  const S3StorageConfig& s3 = *config.storage->s3;
  EXPECT_EQ(s3.bucket, "examplebucket");
  EXPECT_EQ(s3.endpoint, "");
  EXPECT_EQ(s3.region, "us-east-1");
  EXPECT_EQ(s3.addressing, "auto");
  EXPECT_EQ(s3.prefix, "");
  EXPECT_EQ(s3.access_key_id_env, "AWS_ACCESS_KEY_ID");
  EXPECT_EQ(s3.secret_access_key_env, "AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(s3.session_token_env, "AWS_SESSION_TOKEN");
  EXPECT_TRUE(s3.ca_file.empty());
  EXPECT_EQ(s3.connect_timeout_ms, 5000);
  EXPECT_EQ(s3.request_timeout_ms, 30000);
  EXPECT_EQ(s3.max_attempts, 4);
  EXPECT_EQ(s3.max_connections, 64);
  EXPECT_FALSE(parse("[storage]\npath = \".\"\n").storage->s3.has_value());
}

TEST_F(ConfigS3Test, ReadsEveryKey) {
  fs::create_directories(dir_ / "certs");
  std::ofstream(dir_ / "certs" / "ca.pem") << "-----BEGIN CERTIFICATE-----\n";
  Config config = parse(s3(R"(endpoint = "https://minio.example.com:9443"
region = "eu-west-3"
addressing = "virtual"
prefix = "sluice/exports/"
access_key_id_env = "MINIO_KEY_ID"
secret_access_key_env = "MINIO_SECRET"
session_token_env = "MINIO_TOKEN"
ca_file = "certs/../certs/ca.pem"
connect_timeout_ms = 1
request_timeout_ms = 3600000
max_attempts = 10
max_connections = 1024
link_secret_env = "LINKS"
)"));
  const S3StorageConfig& s3 = *config.storage->s3;
  EXPECT_EQ(s3.endpoint, "https://minio.example.com:9443");
  EXPECT_EQ(s3.region, "eu-west-3");
  EXPECT_EQ(s3.addressing, "virtual");
  EXPECT_EQ(s3.prefix, "sluice/exports/");
  EXPECT_EQ(s3.access_key_id_env, "MINIO_KEY_ID");
  EXPECT_EQ(s3.secret_access_key_env, "MINIO_SECRET");
  EXPECT_EQ(s3.session_token_env, "MINIO_TOKEN");
  EXPECT_EQ(s3.ca_file, dir_ / "certs" / "ca.pem");
  EXPECT_EQ(s3.connect_timeout_ms, 1);
  EXPECT_EQ(s3.request_timeout_ms, 3600000);
  EXPECT_EQ(s3.max_attempts, 10);
  EXPECT_EQ(s3.max_connections, 1024);
  EXPECT_EQ(config.storage->link_secret_env, "LINKS");
}

TEST_F(ConfigS3Test, AcceptedEndpoints) {
  for (std::string_view endpoint :
       {"https://s3.eu-central-1.amazonaws.com", "https://s3.eu-central-1.amazonaws.com/",
        "http://127.0.0.1:9000", "http://[::1]:9000", "http://[2001:db8::7]",
        "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com",
        "https://minio.example.com:443/", "HTTPS://MinIO.Example.COM", "http://minio:9000",
        "http://s3_service.local:65535", ""}) {
    Config config = parse(s3("endpoint = \"" + std::string(endpoint) + "\"\n"));
    EXPECT_EQ(config.storage->s3->endpoint, endpoint);
  }
}

TEST_F(ConfigS3Test, EndpointErrorsNameTheKeyAndLine) {
  const std::string key = "storage.endpoint";
  auto bad = [&](std::string_view endpoint, std::string_view problem) {
    return fails_with(
        s3("endpoint = \"" + std::string(endpoint) + "\"\n"), 4, key,
        "invalid endpoint \"" + std::string(endpoint) + "\": " + std::string(problem));
  };
  EXPECT_TRUE(bad("s3.amazonaws.com", "expected https://HOST[:PORT] or http://HOST[:PORT]"));
  EXPECT_TRUE(bad("ftp://s3.amazonaws.com", "expected https://HOST[:PORT] or http://HOST[:PORT]"));
  EXPECT_TRUE(bad("https://s3.amazonaws.com/examplebucket", "no path allowed (the bucket goes in"));
  EXPECT_TRUE(bad("https://s3.amazonaws.com//", "no path allowed"));
  EXPECT_TRUE(bad("https://s3.amazonaws.com?x=1", "no query or fragment allowed"));
  EXPECT_TRUE(bad("https://s3.amazonaws.com/#top", "no query or fragment allowed"));
  EXPECT_TRUE(bad("https://AKID:secret@s3.amazonaws.com",
                  "no user info (credentials come only from the environment)"));
  EXPECT_TRUE(bad("https://", "no host"));
  EXPECT_TRUE(bad("http://:9000", "no host"));
  for (std::string_view port : {"0", "65536", "", "90a", "123456"}) {
    EXPECT_TRUE(bad("http://127.0.0.1:" + std::string(port), "the port must be a number 1..65535"));
  }
  EXPECT_TRUE(bad("http://[::1]:0", "the port must be a number 1..65535"));
  EXPECT_TRUE(bad("http://::1:9000", "an IPv6 address must be in brackets"));
  EXPECT_TRUE(bad("http://[::1", "no ']' after the IPv6 address"));
  EXPECT_TRUE(bad("http://[::1]9000", "unexpected text after ']'"));
  EXPECT_TRUE(bad("http://[fe80::1%eth0]:9000", "invalid IPv6 address"));
  EXPECT_TRUE(bad("http://[example.com]", "invalid IPv6 address"));
  EXPECT_TRUE(bad("http://256.0.0.1:9000", "invalid IPv4 address"));
  EXPECT_TRUE(bad("https://s3..amazonaws.com", "empty label in the host name"));
  EXPECT_TRUE(bad("https://s3.amazonaws.com.", "empty label in the host name"));
  EXPECT_TRUE(bad("https://" + std::string(64, 'a') + ".com", "host name label longer than 63"));
  EXPECT_TRUE(bad("https://s3 .amazonaws.com", "the host may hold only letters, digits"));
  EXPECT_TRUE(fails_with(s3("\nendpoint = 9000\n"), 5, key, "expected a string, got an integer"));
}

TEST_F(ConfigS3Test, BucketNames) {
  for (const std::string& bucket :
       {std::string("abc"), std::string("my.bucket-1"), std::string("0-9"), std::string(63, 'a')}) {
    EXPECT_EQ(parse("[storage]\nkind = \"s3\"\nbucket = \"" + bucket + "\"\n").storage->s3->bucket,
              bucket);
  }
  auto bad = [&](std::string_view bucket, std::string_view problem) {
    return fails_with(
        "[storage]\nkind = \"s3\"\n\nbucket = \"" + std::string(bucket) + "\"\n", 4,
        "storage.bucket",
        "invalid bucket name \"" + std::string(bucket) + "\": " + std::string(problem));
  };
  EXPECT_TRUE(bad("ab", "must be 3 to 63 characters long"));
  EXPECT_TRUE(bad(std::string(64, 'a'), "must be 3 to 63 characters long"));
  EXPECT_TRUE(bad("My-Bucket", "may hold only lower-case letters, digits, '.' and '-'"));
  EXPECT_TRUE(bad("my_bucket", "may hold only lower-case letters, digits, '.' and '-'"));
  EXPECT_TRUE(bad("-bucket", "must begin and end with a letter or digit"));
  EXPECT_TRUE(bad("bucket.", "must begin and end with a letter or digit"));
  EXPECT_TRUE(bad("my..bucket", "must not contain \"..\""));
  EXPECT_TRUE(bad("192.168.1.1", "must not be an IP address"));
  EXPECT_TRUE(
      fails_with("\n[storage]\nkind = \"s3\"\n", 2, "storage.bucket", "missing required key"));
}

TEST_F(ConfigS3Test, Prefixes) {
  for (std::string_view prefix : {"", "sluice/", "a/b/c/", "été 2024/", "a.b/..c/"}) {
    EXPECT_EQ(parse(s3("prefix = \"" + std::string(prefix) + "\"\n")).storage->s3->prefix, prefix);
  }
  auto bad = [&](std::string_view toml_value, std::string_view problem) {
    return fails_with(s3("prefix = " + std::string(toml_value) + "\n"), 4, "storage.prefix",
                      "invalid prefix " + std::string(toml_value) + ": " + std::string(problem));
  };
  EXPECT_TRUE(bad("\"sluice\"", "must end with '/'"));
  EXPECT_TRUE(bad("\"/sluice/\"", "must not begin with '/'"));
  EXPECT_TRUE(bad("\"/\"", "must not begin with '/'"));
  EXPECT_TRUE(bad("\"a//b/\"", "must not contain \"//\""));
  EXPECT_TRUE(bad("\"./\"", "must not contain \".\" or \"..\" segments"));
  EXPECT_TRUE(bad("\"a/../\"", "must not contain \".\" or \"..\" segments"));
  EXPECT_TRUE(bad("\"a/./b/\"", "must not contain \".\" or \"..\" segments"));
  EXPECT_TRUE(bad("\"a\\u0009b/\"", "must not contain control characters"));
  EXPECT_TRUE(bad("\"" + std::string(1024, 'a') + "/\"", "longer than 1024 bytes"));
}

TEST_F(ConfigS3Test, Regions) {
  EXPECT_EQ(parse(s3("endpoint = \"http://127.0.0.1:9000\"\nregion = \"My_Region\"\n"))
                .storage->s3->region,
            "My_Region");
  EXPECT_EQ(parse(s3("endpoint = \"https://a.r2.cloudflarestorage.com\"\nregion = \"auto\"\n"))
                .storage->s3->region,
            "auto");
  EXPECT_TRUE(fails_with(s3("region = \"\"\n"), 4, "storage.region",
                         "invalid region \"\": must be 1 to 64 characters long"));
  EXPECT_TRUE(fails_with(s3("region = \"auto\"\n"), 4, "storage.region",
                         "invalid region \"auto\": \"auto\" needs an endpoint (Cloudflare R2's"));
  EXPECT_TRUE(fails_with(s3("region = \"EU_West\"\n"), 4, "storage.region",
                         "without an endpoint it names an AWS region"));
  EXPECT_TRUE(fails_with(s3("endpoint = \"http://127.0.0.1:9000\"\nregion = \"eu/west\"\n"), 5,
                         "storage.region",
                         "invalid region \"eu/west\": may hold only letters, digits, '-' and '_'"));
}

TEST_F(ConfigS3Test, Addressing) {
  for (std::string_view addressing : {"auto", "path", "virtual"}) {
    EXPECT_EQ(
        parse(s3("addressing = \"" + std::string(addressing) + "\"\n")).storage->s3->addressing,
        addressing);
  }
  // Plain HTTP has no certificate for a dotted bucket name to fail.
  EXPECT_NO_THROW(
      parse("[storage]\nkind = \"s3\"\nbucket = \"a.b.c\"\naddressing = \"virtual\"\n"
            "endpoint = \"http://minio.local:9000\"\n"));
  EXPECT_TRUE(fails_with(s3("addressing = \"dns\"\n"), 4, "storage.addressing",
                         "expected one of: auto, path, virtual, got \"dns\""));
  EXPECT_TRUE(fails_with(s3("endpoint = \"http://127.0.0.1:9000\"\naddressing = \"virtual\"\n"), 5,
                         "storage.addressing",
                         "\"virtual\" puts the bucket in the host name, an IP address has none; "
                         "use \"path\""));
  EXPECT_TRUE(fails_with(s3("addressing = \"virtual\"\nendpoint = \"http://[::1]:9000\"\n"), 4,
                         "storage.addressing", "an IP address has none"));
  EXPECT_TRUE(
      fails_with("[storage]\nkind = \"s3\"\nbucket = \"a.b.c\"\naddressing = \"virtual\"\n", 4,
                 "storage.addressing",
                 "\"virtual\" with a bucket name holding '.' fails the TLS certificate check; "
                 "use \"path\""));
}

TEST_F(ConfigS3Test, CredentialsNeverComeFromTheFile) {
  const std::pair<std::string_view, std::string_view> secrets[] = {
      {"access_key_id", "access_key_id_env"},
      {"aws_access_key_id", "access_key_id_env"},
      {"secret_access_key", "secret_access_key_env"},
      {"aws_secret_access_key", "secret_access_key_env"},
      {"password", "secret_access_key_env"},
      {"session_token", "session_token_env"},
      {"aws_session_token", "session_token_env"},
  };
  for (const auto& [key, env_key] : secrets) {
    const std::string value = "\"wJalrXUtnFEMI/K7MDENG\"\n";
    const std::string problem =
        "credentials come only from the environment, never from this file: set " +
        std::string(env_key) + " to the name of the variable that holds it";
    EXPECT_TRUE(fails_with(s3(std::string(key) + " = " + value), 4, "storage." + std::string(key),
                           problem));
    // Also in a local store, before its own keys are looked at; the value is never repeated.
    EXPECT_TRUE(fails_with("[storage]\n" + std::string(key) + " = " + value, 2,
                           "storage." + std::string(key), problem));
    EXPECT_EQ(message(key, value).find("wJalr"), std::string::npos);
  }
}

TEST_F(ConfigS3Test, EnvironmentIsNotReadAtLoad) {
  ASSERT_EQ(unsetenv("SLUICE_TEST_UNSET_KEY_ID"), 0);
  Config config = parse(s3("access_key_id_env = \"SLUICE_TEST_UNSET_KEY_ID\"\n"));
  EXPECT_EQ(config.storage->s3->access_key_id_env, "SLUICE_TEST_UNSET_KEY_ID");
  for (std::string_view key : {"access_key_id_env", "secret_access_key_env", "session_token_env"}) {
    EXPECT_TRUE(fails_with(s3(std::string(key) + " = \"AWS-KEY\"\n"), 4,
                           "storage." + std::string(key),
                           "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*), not "
                           "\"AWS-KEY\""));
  }
  EXPECT_TRUE(fails_with(s3("session_token_env = \"\"\n"), 4, "storage.session_token_env",
                         "must be an environment variable name"));
}

TEST_F(ConfigS3Test, KindDecidesTheKeys) {
  EXPECT_TRUE(fails_with(s3("path = \"objects\"\n"), 4, "storage.path",
                         "not used with kind = \"s3\": objects live in the bucket"));
  for (std::string_view key :
       {"endpoint", "bucket", "region", "addressing", "prefix", "access_key_id_env",
        "secret_access_key_env", "session_token_env", "ca_file", "connect_timeout_ms",
        "request_timeout_ms", "max_attempts", "max_connections"}) {
    const std::string problem =
        "an S3 setting, only with kind = \"s3\" (this store is kind = \"local\")";
    EXPECT_TRUE(fails_with("[storage]\npath = \".\"\n" + std::string(key) + " = \"x\"\n", 3,
                           "storage." + std::string(key), problem));
    EXPECT_TRUE(
        fails_with("[storage]\nkind = \"local\"\n" + std::string(key) + " = 1\npath = \".\"\n", 3,
                   "storage." + std::string(key), problem));
  }
  EXPECT_TRUE(fails_with(s3("bukket = \"x\"\n"), 4, "storage.bukket",
                         "unknown key (expected one of: kind, link_secret_env, endpoint, bucket, "
                         "region, addressing, prefix, access_key_id_env, secret_access_key_env, "
                         "session_token_env, ca_file, connect_timeout_ms, request_timeout_ms, "
                         "max_attempts, max_connections)"));
}

TEST_F(ConfigS3Test, CaFileMustExist) {
  EXPECT_TRUE(fails_with(s3("ca_file = \"certs/ca.pem\"\n"), 4, "storage.ca_file",
                         "no such file: " + (dir_ / "certs" / "ca.pem").string()));
  EXPECT_TRUE(fails_with(s3("ca_file = \".\"\n"), 4, "storage.ca_file",
                         "is a folder, not a PEM file: " + dir_.string()));
  EXPECT_TRUE(fails_with(s3("ca_file = \"\"\n"), 4, "storage.ca_file",
                         "must not be empty (leave ca_file out to trust the system's "
                         "certificates)"));
}

TEST_F(ConfigS3Test, NumberRanges) {
  EXPECT_EQ(message("max_attempts", "1"), "");
  EXPECT_TRUE(
      fails_with(s3("max_attempts = 0\n"), 4, "storage.max_attempts", "must be at least 1"));
  EXPECT_TRUE(
      fails_with(s3("max_attempts = 11\n"), 4, "storage.max_attempts", "must be at most 10"));
  EXPECT_TRUE(
      fails_with(s3("max_connections = 0\n"), 4, "storage.max_connections", "must be at least 1"));
  EXPECT_TRUE(fails_with(s3("max_connections = 1025\n"), 4, "storage.max_connections",
                         "must be at most 1024"));
  EXPECT_TRUE(fails_with(s3("connect_timeout_ms = 0\n"), 4, "storage.connect_timeout_ms",
                         "must be at least 1"));
  EXPECT_TRUE(fails_with(s3("connect_timeout_ms = 600001\n"), 4, "storage.connect_timeout_ms",
                         "must be at most 600000"));
  EXPECT_TRUE(fails_with(s3("request_timeout_ms = 3600001\n"), 4, "storage.request_timeout_ms",
                         "must be at most 3600000"));
  EXPECT_TRUE(fails_with(s3("request_timeout_ms = \"30s\"\n"), 4, "storage.request_timeout_ms",
                         "expected an integer, got a string"));
}

// [[cubes]]: a valid cube after kSource and a [storage] (lines 4-5); `extra` starts on line 13.
class ConfigCubeTest : public ConfigTest {
 protected:
  static std::string cube(std::string_view extra) {
    return std::string(kSource) + "[storage]\npath = \".\"\n[[cubes]]\nname = \"sales\"\nsource = \"demo\"\n" +
           "query = \"q\"\npath = [\"country\"]\nfile = [\"status\", {name = \"day\", from = \"2026-01-30\", to = "
           "\"2026-02-02\", step = \"day\"}]\nmetrics = [{name = \"orders\", type = \"int64\"}]\n" +
           std::string(extra);
  }
};

TEST_F(ConfigCubeTest, ReadsDimensionsRangesAndMetrics) {
  Config config = parse(cube("body = [\"product\"]\nmax_age_s = 60\n"));
  ASSERT_EQ(config.cubes.size(), 1u);
  const CubeConfig& c = config.cubes[0];
  EXPECT_EQ(c.path, std::vector<std::string>{"country"});
  ASSERT_EQ(c.file.size(), 2u);
  EXPECT_TRUE(c.file[0].values.empty());  // from the data
  EXPECT_EQ(c.file[1].values, (std::vector<std::string>{"2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"}));
  EXPECT_EQ(c.body[0].name, "product");
  EXPECT_EQ(c.max_age, std::chrono::seconds(60));
  EXPECT_EQ(config.find_cube("sales"), &c);
}

TEST_F(ConfigCubeTest, MonthAndIntegerRangesAndDeclaredValues) {
  Config config = parse(cube(
      "body = [{name = \"m\", from = \"2025-11\", to = \"2026-02\", step = \"month\"}, {name = \"n\", from = 1, "
      "to = 7, step = 3}, {name = \"v\", values = [\"x\", 2]}]\n"));
  const CubeConfig& c = config.cubes[0];
  EXPECT_EQ(c.body[0].values, (std::vector<std::string>{"2025-11", "2025-12", "2026-01", "2026-02"}));
  EXPECT_EQ(c.body[1].values, (std::vector<std::string>{"1", "4", "7"}));
  EXPECT_EQ(c.body[2].values, (std::vector<std::string>{"x", "2"}));
}

TEST_F(ConfigCubeTest, ErrorsNameKeyAndLine) {
  EXPECT_TRUE(fails_with(cube("colour = 1\n"), 13, "cubes[0].colour", "unknown key"));
  EXPECT_TRUE(fails_with(cube("body = [\"orders\"]\n"), 12, "cubes[0].metrics[0]",
                         "column \"orders\" is already used by cubes[0].body[0]"));
  EXPECT_TRUE(fails_with(cube("body = [{name = \"x\", values = []}]\n"), 13, "cubes[0].body[0].values",
                         "must not be empty"));
  EXPECT_TRUE(fails_with(cube("body = [{name = \"x\", from = \"2026-02-30\", to = \"2026-03-01\", step = \"day\"}]\n"),
                         13, "cubes[0].body[0].from", "expected a date YYYY-MM-DD"));
  EXPECT_TRUE(fails_with(cube("body = [{name = \"x\", from = 5, to = 1}]\n"), 13, "cubes[0].body[0].to",
                         "is before `from`"));
  EXPECT_TRUE(fails_with(cube("body = [\"bad name\"]\n"), 13, "cubes[0].body[0]", "invalid dimension name"));
  EXPECT_TRUE(fails_with(cube("max_slice = 0\n"), 13, "cubes[0].max_slice", "must be at least 1"));
  EXPECT_TRUE(fails_with(cube("keep_versions_s = 1\nrefresh_ms = 600\n"), 13, "cubes[0].keep_versions_s",
                         "at least twice refresh_ms"));
  EXPECT_TRUE(fails_with(cube("refresh_ms = 3600000\n"), 6, "cubes[0].keep_versions_s", "at least twice refresh_ms"));
}

TEST_F(ConfigCubeTest, MetricTypesNeedTheirParameters) {
  const std::string head = std::string(kSource) +
                           "[storage]\npath = \".\"\n[[cubes]]\nname = \"c\"\nsource = \"demo\"\nquery = \"q\"\n";
  EXPECT_TRUE(fails_with(head + "metrics = [{name = \"r\", type = \"decimal\"}]\n", 10, "cubes[0].metrics[0].scale",
                         "missing required key"));
  EXPECT_TRUE(fails_with(head + "metrics = [{name = \"r\", type = \"text\"}]\n", 10,
                         "cubes[0].metrics[0].max_length", "missing required key"));
  EXPECT_TRUE(fails_with(head + "metrics = [{name = \"r\", type = \"int64\", scale = 2}]\n", 10,
                         "cubes[0].metrics[0].scale", "only for type = \"decimal\""));
  EXPECT_TRUE(fails_with(head + "metrics = [{name = \"r\", type = \"money\"}]\n", 10, "cubes[0].metrics[0].type",
                         "unknown type \"money\""));
  EXPECT_TRUE(fails_with(head + "metrics = []\n", 10, "cubes[0].metrics", "needs at least one metric"));
  EXPECT_TRUE(fails_with(head + "changed_query = \"q\"\nmetrics = [{name = \"r\", type = \"int64\"}]\n", 10,
                         "cubes[0].changed_query", "needs path dimensions"));
  EXPECT_TRUE(fails_with(std::string(kSource) + "[[cubes]]\nname = \"c\"\n", 4, "cubes",
                         "cubes are stored in [storage]: add it"));
  EXPECT_TRUE(fails_with(std::string(kSource) + "[storage]\npath = \".\"\n[[cubes]]\nname = \"c\"\nsource = \"x\"\n" +
                             "query = \"q\"\nmetrics = [{name = \"r\", type = \"int64\"}]\n",
                         8, "cubes[0].source", "unknown source \"x\""));
}

}  // namespace
}  // namespace sluice
