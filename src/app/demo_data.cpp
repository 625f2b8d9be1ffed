#include "app/demo_data.hpp"

#include <malloc.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include "app/demo_objects.hpp"

namespace sluice {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kDatabaseName = "orders.db";
constexpr std::string_view kConfigName = "sluice.toml";
constexpr std::uint64_t kSeed = 0x5111'ce00'0000'0001ULL;
constexpr std::uint64_t kProgressEvery = 500'000;
// 2023-07-01T00:00:00Z; orders spread over the two years that follow.
constexpr std::int64_t kFirstOrder = 1'688'169'600;
constexpr std::int64_t kOrderSpan = 730LL * 86'400;

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

DbPtr open_db(const fs::path& file, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(file.c_str(), &raw, flags, nullptr);
  DbPtr db(raw);  // SQLite hands out a handle even when opening fails; it must still be closed
  if (rc != SQLITE_OK) {
    throw std::runtime_error(std::string("cannot open: ") +
                             (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  return db;
}

void exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db));
  }
}

StmtPtr prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db));
  }
  return StmtPtr(raw);
}

// The row count of a finished demo database, or nothing when the file is missing, not a
// database, or lacks the marker (an interrupted or foreign file). Opened read-only so that
// reusing a database leaves it, and its mtime, untouched.
std::optional<std::uint64_t> complete_rows(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  try {
    DbPtr db = open_db(file, SQLITE_OPEN_READONLY);
    StmtPtr stmt =
        prepare(db.get(),
                "SELECT CAST(value AS INTEGER) FROM demo_meta WHERE key = 'rows' AND"
                " EXISTS (SELECT 1 FROM demo_meta WHERE key = 'complete' AND value = '1')");
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) return std::nullopt;
    const sqlite3_int64 rows = sqlite3_column_int64(stmt.get(), 0);
    if (rows < 0) return std::nullopt;
    return static_cast<std::uint64_t>(rows);
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

// splitmix64: its output is fixed by its definition, unlike std::*_distribution whose results
// differ between standard libraries; the demo must be byte-identical everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e37'79b9'7f4a'7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58'476d'1ce4'e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d0'49bb'1331'11ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n) by multiply-shift; the bias is far below anything a demo could show.
  std::uint64_t below(std::uint64_t n) { return ((next() >> 32) * n) >> 32; }

 private:
  std::uint64_t state_;
};

struct Weighted {
  const char* value;
  unsigned weight;
};

template <std::size_t N>
const char* pick(Rng& rng, const std::array<Weighted, N>& items) {
  unsigned total = 0;
  for (const auto& item : items) total += item.weight;
  auto r = static_cast<unsigned>(rng.below(total));
  for (const auto& item : items) {
    if (r < item.weight) return item.value;
    r -= item.weight;
  }
  return items.back().value;
}

template <std::size_t N>
std::string_view pick(Rng& rng, const std::array<std::string_view, N>& items) {
  return items[rng.below(N)];
}

constexpr std::array<Weighted, 20> kCountries{{
    {"DE", 150}, {"US", 150}, {"FR", 110}, {"GB", 100}, {"NL", 60}, {"ES", 55}, {"IT", 55},
    {"PL", 45},  {"SE", 30},  {"JP", 35},  {"BR", 30},  {"IN", 30}, {"CA", 30}, {"AU", 25},
    {"CH", 25},  {"AT", 20},  {"BE", 20},  {"DK", 10},  {"NO", 10}, {"FI", 10},
}};

constexpr std::array<std::string_view, 32> kFirstNames{
    "anna", "ben",    "carla", "david", "emma",  "felix", "greta", "hannah",
    "ivan", "julia",  "karl",  "lena",  "marco", "nina",  "oscar", "paula",
    "rosa", "sven",   "tanja", "umar",  "vera",  "xenia", "yusuf", "zoe",
    "liam", "olivia", "noah",  "sofia", "lucas", "mia",   "jan",   "ingrid",
};

constexpr std::array<std::string_view, 32> kLastNames{
    "mueller", "schmidt",  "dubois", "martin",    "smith",  "jones",  "vandijk", "garcia",
    "rossi",   "kowalski", "nowak",  "andersson", "tanaka", "sato",   "silva",   "santos",
    "sharma",  "patel",    "brown",  "wilson",    "keller", "huber",  "peeters", "jensen",
    "hansen",  "virtanen", "moreau", "bianchi",   "lopez",  "taylor", "novak",   "fischer",
};

constexpr std::array<std::string_view, 4> kEmailTags{"shop", "orders", "newsletter", "2024"};

// clang-format off
constexpr std::array<Weighted, 6> kStatuses{{
    {"delivered", 50}, {"shipped", 12}, {"paid", 10}, {"pending", 8}, {"cancelled", 12},
    {"refunded", 8}}};

constexpr std::array<std::string_view, 20> kPlainNotes{
    "Leave at the door", "Gift wrap please", "Call before delivery", "Deliver after 5 pm",
    "Use the back entrance", "No plastic please", "Fragile", "Express shipping",
    "Leave with the neighbour", "Invoice to the company address", "Regular customer",
    "Replacement order", "Second delivery attempt", "Hand to Frau Müller at reception",
    "Ask for José", "Zoë will pick it up", "Deliver to Søren", "Attn: Łukasz Wąsik",
    "Birthday present", "Do not bend"};
// clang-format on

// About 2 KB, for exports that must cope with one big cell.
const std::string& long_note() {
  static const std::string note = [] {
    std::string text;
    for (int part = 1; text.size() < 2048; ++part) {
      text += "Part " + std::to_string(part) +
              " of a very long delivery note that goes on and on so a single cell is big. ";
    }
    text.resize(2048);
    return text;
  }();
  return note;
}

// The values that break naive CSV / JSON writers and spreadsheet imports. All of them appear in
// the first 100 rows and then again every few hundred rows.
std::array<std::string_view, 18> hard_notes() {
  // clang-format off
  return {"Ring twice, then leave it with the neighbour", "He said \"hi\"",
          "First line\nsecond line", "First line\r\nsecond line", "Before a lone CR\rafter it",
          "Tab\tseparated\tnote", "  leading and trailing spaces  ", "",
          "Müller · Łódź · 東京 · Привет", "📦🚚 on its way", "C:\\orders\\inbox", "00123",
          "=SUM(A1:A9)", long_note(), "Fragile, \"glass\"\r\nhandle with care", "NULL",
          "{\"gift\": true}", "+49 30 1234567"};
  // clang-format on
}

// Formats into a fixed buffer so the row loop never allocates.
class TextBuffer {
 public:
  void clear() { size_ = 0; }
  void append(std::string_view text) {
    const std::size_t n = std::min(text.size(), data_.size() - size_);
    std::memcpy(data_.data() + size_, text.data(), n);
    size_ += n;
  }
  void append_uint(std::uint64_t value, int min_digits = 1) {
    std::array<char, 20> digits{};
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0 || n < min_digits);
    while (n > 0 && size_ < data_.size()) data_[size_++] = digits[--n];
  }
  std::string_view view() const { return {data_.data(), size_}; }

 private:
  std::array<char, 128> data_{};
  std::size_t size_ = 0;
};

void format_timestamp(std::int64_t seconds, TextBuffer& out) {
  using namespace std::chrono;
  const sys_seconds time{std::chrono::seconds{seconds}};
  const auto day = floor<days>(time);
  const year_month_day ymd{day};
  const hh_mm_ss hms{time - day};
  const std::array<std::pair<std::uint64_t, std::string_view>, 6> parts{
      {{static_cast<std::uint64_t>(static_cast<int>(ymd.year())), "-"},
       {static_cast<unsigned>(ymd.month()), "-"},
       {static_cast<unsigned>(ymd.day()), "T"},
       {static_cast<std::uint64_t>(hms.hours().count()), ":"},
       {static_cast<std::uint64_t>(hms.minutes().count()), ":"},
       {static_cast<std::uint64_t>(hms.seconds().count()), "Z"}}};
  out.clear();
  for (const auto& [value, separator] : parts) {
    out.append_uint(value, 2);  // the year has four digits on its own
    out.append(separator);
  }
}

void format_email(Rng& rng, std::uint64_t id, TextBuffer& out) {
  const std::string_view first = pick(rng, kFirstNames);
  const std::string_view last = pick(rng, kLastNames);
  out.clear();
  const auto shape = rng.below(10);
  if (shape < 6) {
    out.append(first), out.append("."), out.append(last);
    if (shape >= 3) out.append_uint(1 + rng.below(99));
  } else if (shape == 6) {
    out.append(first.substr(0, 1)), out.append("."), out.append(last);
  } else if (shape == 7) {
    out.append(last), out.append("."), out.append(first);
  } else {
    out.append(first), out.append_uint(1 + rng.below(999));
  }
  if (id % 23 == 5) out.append("+"), out.append(pick(rng, kEmailTags));
  const auto domain = rng.below(10);
  out.append(domain < 7 ? "@example.com" : domain < 9 ? "@example.org" : "@example.net");
}

// Every row draws from one sequential stream, so the content depends only on the row count.
void insert_orders(sqlite3* db, std::uint64_t rows, std::ostream& log) {
  StmtPtr insert = prepare(db,
                           "INSERT INTO orders (id, created_at, email, country, status, amount,"
                           " quantity, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  sqlite3_stmt* stmt = insert.get();
  const auto hard = hard_notes();
  const std::int64_t step =
      rows == 0 ? 1 : std::max<std::int64_t>(1, kOrderSpan / static_cast<std::int64_t>(rows));
  Rng rng(kSeed);
  TextBuffer created_at;
  TextBuffer email;
  for (std::uint64_t id = 1; id <= rows; ++id) {
    const auto index = static_cast<std::int64_t>(id - 1);
    // Strictly increasing: each order lands somewhere inside its own slot of `step` seconds.
    format_timestamp(kFirstOrder + index * step +
                         static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(step))),
                     created_at);
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(id));
    sqlite3_bind_text(stmt, 2, created_at.view().data(), static_cast<int>(created_at.view().size()),
                      SQLITE_STATIC);
    if (id % 50 != 17) {  // exactly 2% without an email, two of them in the first 100 rows
      format_email(rng, id, email);
      sqlite3_bind_text(stmt, 3, email.view().data(), static_cast<int>(email.view().size()),
                        SQLITE_STATIC);
    }
    sqlite3_bind_text(stmt, 4, pick(rng, kCountries), 2, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, pick(rng, kStatuses), -1, SQLITE_STATIC);
    // Cubed fraction: many small orders, few big ones; integer maths keeps it exact.
    const std::uint64_t f = rng.below(1'000'000);
    const std::uint64_t cube = f * f / 1'000'000 * f / 1'000'000;
    const std::uint64_t cents = 1234 + cube * (499'999 - 1234) / 1'000'000;
    // DECIMAL has NUMERIC affinity: SQLite stores whole amounts (100.00) as the integer 100,
    // about 1% of rows. Kept, since real databases look like that and exports must cope.
    sqlite3_bind_double(stmt, 6, static_cast<double>(cents) / 100.0);
    const auto q = rng.below(100);
    sqlite3_bind_int(stmt, 7,
                     static_cast<int>(q < 50   ? 1
                                      : q < 70 ? 2
                                      : q < 80 ? 3
                                               : 4 + rng.below(17)));
    std::optional<std::string_view> note;
    if (id <= 100) {
      if (id % 4 == 2 && id / 4 < hard.size()) note = hard[id / 4];
    } else if (id % 211 == 0) {
      note = hard[(id / 211) % hard.size()];
    }
    const auto r = rng.below(100);
    if (!note && r >= 55) note = pick(rng, kPlainNotes);
    if (note) {
      sqlite3_bind_text(stmt, 8, note->data(), static_cast<int>(note->size()), SQLITE_STATIC);
    }
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      throw std::runtime_error(std::string("inserting order: ") + sqlite3_errmsg(db));
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (id % kProgressEvery == 0) log << "demo: " << id << " / " << rows << " rows\n" << std::flush;
  }
}

void build_database(const fs::path& file, std::uint64_t rows, std::ostream& log) {
  DbPtr db = open_db(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  // A crash only loses the .tmp file, which is never reused, so durability buys nothing here.
  exec(db.get(),
       "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;"
       " PRAGMA temp_store=MEMORY");
  exec(db.get(), "BEGIN");
  exec(db.get(),
       "CREATE TABLE orders (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, email TEXT,"
       " country TEXT NOT NULL, status TEXT NOT NULL, amount DECIMAL(12,2) NOT NULL,"
       " quantity INTEGER NOT NULL, note TEXT)");
  insert_orders(db.get(), rows, log);
  // After the inserts: one sort per index instead of a B-tree update per row.
  exec(db.get(), "CREATE INDEX orders_country ON orders(country)");
  exec(db.get(), "CREATE INDEX orders_status ON orders(status)");
  exec(db.get(), "CREATE TABLE demo_meta (key TEXT PRIMARY KEY, value TEXT)");
  StmtPtr meta =
      prepare(db.get(), "INSERT INTO demo_meta (key, value) VALUES ('rows', ?), ('complete', '1')");
  const std::string count = std::to_string(rows);
  sqlite3_bind_text(meta.get(), 1, count.c_str(), -1, SQLITE_STATIC);
  if (sqlite3_step(meta.get()) != SQLITE_DONE) {
    throw std::runtime_error(std::string("writing demo_meta: ") + sqlite3_errmsg(db.get()));
  }
  meta.reset();
  exec(db.get(), "COMMIT");
  exec(db.get(), "PRAGMA journal_mode=DELETE");
}

std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      std::array<char, 8> escaped{};
      std::snprintf(escaped.data(), escaped.size(), "\\u%04X", byte);
      out += escaped.data();
    } else {
      out += c;
    }
  }
  return out + "\"";
}

constexpr std::string_view kOrdersQuery =
    "SELECT id, created_at, email, country, status, amount, quantity, note FROM orders";
// CROSS JOIN fixes r as the outer loop, so ids come out ascending and rows stream at once.
constexpr std::string_view kOrdersBigQuery =
    "SELECT o.id + (r.n - 1) * (SELECT max(id) FROM orders) AS id, o.created_at, o.email,"
    " o.country, o.status, o.amount, o.quantity, o.note FROM (WITH RECURSIVE r(n) AS"
    " (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 50) SELECT n FROM r) AS r"
    " CROSS JOIN orders AS o";
constexpr std::string_view kCountriesQuery =
    "SELECT country, count(*) AS orders, round(sum(amount), 2) AS revenue FROM orders"
    " GROUP BY country";

std::string config_text(const std::string& listen) {
  std::ostringstream out;
  const auto filter = [&out](std::string_view param, std::string_view type, std::string_view ops) {
    out << "\n[datasets.filters." << param << "]\ntype = \"" << type << "\"\noperators = " << ops
        << "\n";
  };
  const auto column = [&out](std::string_view name, std::string_view type) {
    out << "\n[datasets.columns." << name << "]\ntype = \"" << type << "\"\n";
  };
  const auto dataset = [&out](std::string_view name, std::string_view query,
                              std::string_view description) {
    out << "\n[[datasets]]\nname = \"" << name
        << "\"\nsource = \"demo\"\nquery = " << toml_string(query) << "\nfile_name = \"" << name
        << "\"\ndescription = " << toml_string(description) << "\n";
  };
  constexpr std::string_view kEqIn = R"(["eq", "in"])";
  constexpr std::string_view kRange = R"(["lt", "lte", "gt", "gte"])";
  constexpr std::string_view kAll = R"(["eq", "in", "lt", "lte", "gt", "gte"])";

  out << "# Written by `sluice demo` on every run: edit a copy, not this file.\n\n"
      << "[server]\nlisten = " << toml_string(listen) << "\n\n"
      << "[sources.demo]\nkind = \"sqlite\"\npath = \"orders.db\"\n";
  out << "\n[storage]\nkind = \"local\"\npath = \"objects\"\n";  // sample objects for archives
  dataset("orders", kOrdersQuery,
          "Demo orders, one row per order; the note column is full of CSV/JSON edge cases");
  out << R"(sortable = ["id", "created_at", "amount", "country"])" << "\n";
  filter("country", "text", kEqIn);
  filter("status", "text", kEqIn);
  filter("id", "int", kAll);
  filter("quantity", "int", kAll);
  filter("created_at", "timestamp", kRange);
  column("amount", "decimal");
  column("created_at", "timestamp");
  dataset("orders_big", kOrdersBigQuery,
          "The orders repeated 50 times (50× orders, ids continue upwards), generated on the fly:"
          " a multi-gigabyte export for load and disconnect tests");
  filter("country", "text", kEqIn);
  // SQLite declares no type for computed columns: say what they are.
  column("id", "int");
  column("amount", "decimal");
  column("created_at", "timestamp");
  // The orders as a person reads them: every kind of column transform that needs no secret.
  dataset("orders_report", kOrdersQuery,
          "The orders for people: Berlin time in German notation, masked emails, country names,"
          " two decimals, short notes (column transforms)");
  out << R"(sortable = ["id", "created_at"])" << "\n";
  filter("country", "text", kEqIn);
  out << R"toml(
[datasets.columns.id]
rename = "Order"

[datasets.columns.created_at]
type = "timestamp"
rename = "Ordered (Berlin)"
format = "%d.%m.%Y %H:%M"
time_zone = "Europe/Berlin"

[datasets.columns.email]
mask = "email"
null_text = ""

[datasets.columns.country]
map = { DE = "Germany", US = "United States", FR = "France", GB = "United Kingdom", NL = "Netherlands", ES = "Spain", IT = "Italy", PL = "Poland" }
default = "Other"

[datasets.columns.status]
case = "upper"

[datasets.columns.amount]
type = "decimal"
places = 2

[datasets.columns.note]
truncate = 40
null_text = ""
)toml";
  dataset("countries", kCountriesQuery, "Number of orders and revenue per country");
  out << R"(sortable = ["country", "orders", "revenue"])" << "\norder = \"-revenue\"\n";
  column("orders", "int");
  column("revenue", "decimal");
  // A cube: one file per country and month, a record per status and day of the month.
  out << R"toml(
[[cubes]]
name = "sales"
source = "demo"
description = "Orders, revenue and items per country, month, status and day of the month"
query = """SELECT country, substr(created_at, 1, 7) AS month, status,
  CAST(substr(created_at, 9, 2) AS INTEGER) AS day, count(*) AS orders,
  round(sum(amount), 2) AS revenue, sum(quantity) AS quantity
  FROM orders GROUP BY 1, 2, 3, 4"""
path = ["country", "month"]
file = ["status", {name = "day", from = 1, to = 31}]
metrics = [{name = "orders", type = "int64"}, {name = "revenue", type = "decimal", scale = 2},
           {name = "quantity", type = "int64"}]
max_age_s = 3600
)toml";
  return out.str();
}

// Through a temporary file and a rename, so a server reading the config never sees half of it.
void write_config(const fs::path& file, const std::string& listen) {
  fs::path tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << config_text(listen);
    out.close();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp.string() + ": " + ec.message());
}

}  // namespace

DemoSetup prepare_demo(const DemoOptions& options, std::ostream& log) {
  if (options.dir.empty()) throw std::runtime_error("demo: no folder given");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec || !fs::is_directory(options.dir)) {
    throw std::runtime_error("demo: cannot create folder " + options.dir.string() +
                             (ec ? ": " + ec.message() : ": not a directory"));
  }
  DemoSetup setup;
  setup.database = options.dir / kDatabaseName;
  setup.config_file = options.dir / kConfigName;

  if (const auto rows = complete_rows(setup.database)) {
    setup.rows = *rows;
    log << "demo: reusing " << setup.database.string() << " with " << *rows << " rows";
    if (*rows != options.rows) log << " (not the " << options.rows << " requested)";
    log << "; delete " << options.dir.string() << " to regenerate it\n";
  } else {
    if (fs::exists(setup.database, ec)) {
      log << "demo: " << setup.database.string() << " is incomplete, regenerating it\n";
    }
    // Built beside the target and renamed at the end: a half-written database never carries
    // the final name, and a stale .tmp from an interrupted run is simply thrown away.
    fs::path tmp = setup.database;
    tmp += ".tmp";
    fs::remove(tmp, ec);
    log << "demo: generating " << options.rows << " orders into " << setup.database.string()
        << "\n";
    const auto start = std::chrono::steady_clock::now();
    try {
      build_database(tmp, options.rows, log);
      fs::rename(tmp, setup.database);
      // The build's page cache and in-memory index sort (~200 MB for 3M rows) went back to
      // malloc, which keeps freed memory: hand it to the system, so that the server the demo
      // starts next runs at its normal footprint (a few MB), as it does on existing data.
      ::malloc_trim(0);
    } catch (const std::exception& e) {
      fs::remove(tmp, ec);
      throw std::runtime_error("demo: cannot create " + setup.database.string() + ": " + e.what());
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    const auto bytes = fs::file_size(setup.database, ec);
    std::array<char, 32> seconds{};
    std::snprintf(seconds.data(), seconds.size(), "%.1f", took.count());
    log << "demo: generated " << options.rows << " rows in " << seconds.data() << " s ("
        << (ec ? 0 : bytes / (1024 * 1024)) << " MiB)\n";
    setup.created = true;
    setup.rows = options.rows;
  }

  setup.objects = options.dir / "objects";
  prepare_demo_objects(setup.objects, log);
  try {
    write_config(setup.config_file, options.listen);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("demo: ") + e.what());
  }
  log << "demo: wrote " << setup.config_file.string() << "\n";
  return setup;
}

}  // namespace sluice
