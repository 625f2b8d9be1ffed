#include "app/demo_data.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace sluice {
namespace {

namespace fs = std::filesystem;

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// A fresh folder per test, removed afterwards; the pid keeps parallel test runs apart.
class DemoDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("sluice-demo-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  DemoSetup prepare(const std::string& sub, std::uint64_t rows,
                    const std::string& listen = "127.0.0.1:8080") {
    DemoOptions options;
    options.dir = root_ / sub;
    options.rows = rows;
    options.listen = listen;
    std::ostringstream log;
    DemoSetup setup = prepare_demo(options, log);
    last_log_ = log.str();
    return setup;
  }

  static DbPtr open(const fs::path& file) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
    DbPtr db(raw);
    EXPECT_EQ(rc, SQLITE_OK) << file;
    return db;
  }

  // All rows of `sql` with columns joined by \x1f and rows by \x1e.
  static std::string query(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
      return {};
    }
    StmtPtr stmt(raw);
    std::string out;
    while (sqlite3_step(raw) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(raw); ++i) {
        if (i > 0) out += '\x1f';
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, i));
        out.append(text != nullptr ? text : "<null>",
                   text != nullptr ? sqlite3_column_bytes(raw, i) : 6);
      }
      out += '\x1e';
    }
    if (!out.empty()) out.pop_back();
    return out;
  }

  static std::int64_t count(sqlite3* db, const std::string& where) {
    return std::stoll(query(db, "SELECT count(*) FROM orders WHERE " + where));
  }

  // FNV-1a over every value of every row, in id order.
  static std::uint64_t checksum(const fs::path& file) {
    DbPtr db = open(file);
    const std::string all =
        query(db.get(),
              "SELECT quote(id), quote(created_at), quote(email), quote(country),"
              " quote(status), quote(amount), typeof(amount), quote(quantity),"
              " quote(note) FROM orders ORDER BY id");
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (const unsigned char c : all) hash = (hash ^ c) * 0x100000001b3ULL;
    return hash;
  }

  fs::path root_;
  std::string last_log_;
};

TEST_F(DemoDataTest, CreatesExactRowCount) {
  const DemoSetup setup = prepare("a", 1234);
  EXPECT_TRUE(setup.created);
  EXPECT_EQ(setup.rows, 1234u);
  EXPECT_EQ(setup.database, root_ / "a" / "orders.db");
  EXPECT_EQ(setup.config_file, root_ / "a" / "sluice.toml");
  EXPECT_FALSE(fs::exists(root_ / "a" / "orders.db.tmp"));
  DbPtr db = open(setup.database);
  EXPECT_EQ(query(db.get(), "SELECT count(*), min(id), max(id) FROM orders"),
            "1234\x1f"
            "1\x1f"
            "1234");
  EXPECT_EQ(
      query(db.get(), "SELECT value FROM demo_meta WHERE key IN ('complete', 'rows') ORDER BY key"),
      "1\x1e"
      "1234");
  EXPECT_EQ(query(db.get(),
                  "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                  " AND name IN ('orders_country', 'orders_status')"),
            "2");
}

TEST_F(DemoDataTest, ColumnsHaveTheDocumentedShape) {
  const DemoSetup setup = prepare("a", 5000);
  DbPtr db = open(setup.database);
  sqlite3* d = db.get();
  EXPECT_EQ(count(d,
                  "created_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T"
                  "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z'"),
            0);
  // Strictly increasing with id, spread over about two years.
  EXPECT_EQ(query(d,
                  "SELECT count(*) FROM orders a JOIN orders b ON b.id = a.id + 1"
                  " WHERE b.created_at <= a.created_at"),
            "0");
  EXPECT_EQ(
      query(d, "SELECT julianday(max(created_at)) - julianday(min(created_at)) > 700 FROM orders"),
      "1");
  EXPECT_EQ(count(d,
                  "country NOT IN ('DE','FR','US','GB','NL','ES','IT','PL','SE','JP','BR','IN',"
                  "'CA','AU','CH','AT','BE','DK','NO','FI')"),
            0);
  EXPECT_GE(std::stoi(query(d, "SELECT count(DISTINCT country) FROM orders")), 18);
  EXPECT_EQ(
      count(d, "status NOT IN ('pending','paid','shipped','delivered','cancelled','refunded')"), 0);
  EXPECT_EQ(query(d, "SELECT count(DISTINCT status) FROM orders"), "6");
  // SQLite renders the stored double with at most two decimals: it was bound as cents / 100.
  EXPECT_EQ(count(d, "amount < 12.34 OR amount > 4999.99 OR CAST(amount AS TEXT) GLOB '*.???*'"),
            0);
  EXPECT_EQ(count(d, "typeof(amount) NOT IN ('real', 'integer')"), 0);
  EXPECT_EQ(count(d, "quantity < 1 OR quantity > 20"), 0);
  EXPECT_EQ(count(d, "email IS NULL"), 100);  // 2%
  EXPECT_EQ(count(d, "email IS NOT NULL AND email NOT GLOB '*@example.[cno][oer][mgt]'"), 0);
  EXPECT_GT(count(d, "email GLOB '[a-z]*.[a-z]*[0-9]@example.com'"), 0);
  // The hard cases keep coming after the first 100 rows.
  EXPECT_GT(count(d, "id > 100 AND instr(note, char(13, 10)) > 0"), 0);
  EXPECT_GT(count(d, "id > 100 AND note = ''"), 0);
  EXPECT_GT(count(d, "id > 100 AND note = '00123'"), 0);
}

TEST_F(DemoDataTest, SameRowCountGivesIdenticalContent) {
  const DemoSetup a = prepare("a", 1000);
  const DemoSetup b = prepare("b", 1000);
  EXPECT_EQ(checksum(a.database), checksum(b.database));
  const DemoSetup c = prepare("c", 1001);
  EXPECT_NE(checksum(a.database), checksum(c.database));
}

TEST_F(DemoDataTest, ReusesACompleteDatabase) {
  const DemoSetup first = prepare("a", 300);
  const auto mtime = fs::last_write_time(first.database);
  const auto before = checksum(first.database);
  const DemoSetup second = prepare("a", 999, "127.0.0.1:9999");
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.rows, 300u);
  EXPECT_EQ(fs::last_write_time(second.database), mtime);
  EXPECT_EQ(checksum(second.database), before);
  EXPECT_NE(last_log_.find("reusing"), std::string::npos) << last_log_;
  EXPECT_NE(last_log_.find("300 rows"), std::string::npos) << last_log_;
  EXPECT_NE(last_log_.find("delete"), std::string::npos) << last_log_;
  // The config is rewritten with the new listen address even when the database is reused.
  const auto config = toml::parse_file(second.config_file.string());
  EXPECT_EQ(config["server"]["listen"].value_or(std::string()), "127.0.0.1:9999");
}

TEST_F(DemoDataTest, AllHardCasesAreInTheFirst100Rows) {
  const DemoSetup setup = prepare("a", 1000);
  DbPtr db = open(setup.database);
  const auto first = [&](const std::string& where) {
    return count(db.get(), "id <= 100 AND (" + where + ")");
  };
  EXPECT_GT(first("instr(note, ',') > 0"), 0) << "comma";
  EXPECT_GT(first("note = 'He said \"hi\"'"), 0) << "double quotes";
  EXPECT_GT(first("instr(note, char(10)) > 0 AND instr(note, char(13)) = 0"), 0) << "LF";
  EXPECT_GT(first("instr(note, char(13, 10)) > 0"), 0) << "CRLF";
  EXPECT_GT(first("instr(note, char(13)) > 0 AND instr(note, char(10)) = 0"), 0) << "lone CR";
  EXPECT_GT(first("instr(note, char(9)) > 0"), 0) << "tab";
  EXPECT_GT(first("note GLOB ' *' AND note GLOB '* '"), 0) << "leading/trailing spaces";
  EXPECT_GT(first("note = ''"), 0) << "empty string";
  EXPECT_GT(first("note IS NULL"), 0) << "NULL";
  for (const char* word : {"Müller", "Łódź", "東京", "Привет", "📦", "🚚"}) {
    EXPECT_GT(first(std::string("instr(note, '") + word + "') > 0"), 0) << word;
  }
  EXPECT_GT(first("instr(note, '\\') > 0"), 0) << "backslash";
  EXPECT_GT(first("note = '00123'"), 0) << "number-like";
  EXPECT_GT(first("note GLOB '=*'"), 0) << "formula";
  EXPECT_GT(first("length(note) >= 2000"), 0) << "long note";
  EXPECT_GT(first("email GLOB '*+*@*'"), 0) << "+tag email";
  EXPECT_GT(first("email IS NULL"), 0) << "NULL email";
  EXPECT_EQ(query(db.get(),
                  "SELECT typeof(note) FROM orders WHERE note = ''"
                  " UNION SELECT typeof(note) FROM orders WHERE note IS NULL ORDER BY 1"),
            "null\x1etext");
}

TEST_F(DemoDataTest, WritesAConfigWhoseQueriesRun) {
  const DemoSetup setup = prepare("a", 200, "127.0.0.1:0");
  const toml::table config = toml::parse_file(setup.config_file.string());
  EXPECT_EQ(config["server"]["listen"].value_or(std::string()), "127.0.0.1:0");
  EXPECT_EQ(config["sources"]["demo"]["kind"].value_or(std::string()), "sqlite");
  EXPECT_EQ(config["sources"]["demo"]["path"].value_or(std::string()), "orders.db");
  const toml::array* datasets = config["datasets"].as_array();
  ASSERT_NE(datasets, nullptr);
  ASSERT_EQ(datasets->size(), 4u);
  const toml::table& orders = *datasets->at(0).as_table();
  const toml::table& big = *datasets->at(1).as_table();
  const toml::table& report = *datasets->at(2).as_table();
  const toml::table& countries = *datasets->at(3).as_table();
  EXPECT_EQ(orders["name"].value_or(std::string()), "orders");
  EXPECT_EQ(big["name"].value_or(std::string()), "orders_big");
  EXPECT_EQ(report["name"].value_or(std::string()), "orders_report");
  EXPECT_EQ(report["columns"]["created_at"]["time_zone"].value_or(std::string()), "Europe/Berlin");
  EXPECT_EQ(countries["name"].value_or(std::string()), "countries");
  EXPECT_EQ(orders["filters"]["created_at"]["type"].value_or(std::string()), "timestamp");
  EXPECT_EQ(orders["filters"]["quantity"]["operators"].as_array()->size(), 6u);
  EXPECT_EQ(orders["columns"]["amount"]["type"].value_or(std::string()), "decimal");
  EXPECT_EQ(big["filters"]["country"]["type"].value_or(std::string()), "text");
  EXPECT_EQ(countries["columns"]["revenue"]["type"].value_or(std::string()), "decimal");

  DbPtr db = open(setup.database);
  const auto run = [&](const toml::table& dataset, const std::string& select) {
    return query(db.get(), select + " FROM (" + dataset["query"].value_or(std::string()) + ")");
  };
  EXPECT_EQ(run(orders, "SELECT count(*)"), "200");
  EXPECT_EQ(run(big, "SELECT count(*), count(DISTINCT id), min(id), max(id)"),
            "10000\x1f"
            "10000\x1f"
            "1\x1f"
            "10000");
  EXPECT_EQ(run(countries, "SELECT sum(orders)"), "200");
}

TEST_F(DemoDataTest, LeftoverTmpIsNotTakenForACompleteDatabase) {
  // Even a .tmp that looks finished is never trusted: only the renamed file counts.
  const DemoSetup donor = prepare("donor", 50);
  fs::create_directories(root_ / "a");
  fs::copy_file(donor.database, root_ / "a" / "orders.db.tmp");
  const DemoSetup setup = prepare("a", 120);
  EXPECT_TRUE(setup.created);
  EXPECT_EQ(setup.rows, 120u);
  EXPECT_FALSE(fs::exists(root_ / "a" / "orders.db.tmp"));
  DbPtr db = open(setup.database);
  EXPECT_EQ(query(db.get(), "SELECT count(*) FROM orders"), "120");
}

TEST_F(DemoDataTest, IncompleteDatabaseIsRegenerated) {
  fs::create_directories(root_ / "a");
  {
    std::ofstream junk(root_ / "a" / "orders.db", std::ios::binary);
    junk << "not a database";
  }
  const DemoSetup setup = prepare("a", 80);
  EXPECT_TRUE(setup.created);
  DbPtr db = open(setup.database);
  EXPECT_EQ(query(db.get(), "SELECT count(*) FROM orders"), "80");
}

TEST_F(DemoDataTest, FailsClearlyWhenTheFolderCannotBeCreated) {
  fs::create_directories(root_);
  std::ofstream(root_ / "file") << "x";
  try {
    prepare("file", 10);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sluice
