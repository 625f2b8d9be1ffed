#include "queue/pg_job_queue.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/log.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;

// The pg_advisory_xact_lock key of migrate() (any constant that no other code of the database
// uses).
constexpr const char* kMigrateLockKey = "32496264148210001";
// Most jobs per sweep step, so that each step stays a short transaction.
constexpr int kSweepBatch = 1000;
// The database's clock in milliseconds since the epoch.
#define SLUICE_PG_NOW "(extract(epoch from clock_timestamp()) * 1000)::bigint"
// A statement's `now`, taken once: CTEs with volatile functions are evaluated once.
#define SLUICE_PG_WITH_NOW "WITH t AS MATERIALIZED (SELECT " SLUICE_PG_NOW " AS now)"

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sluice_jobs (
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL,
  dataset TEXT NOT NULL,
  spec TEXT NOT NULL,
  priority INT NOT NULL DEFAULT 0,
  attempt INT NOT NULL DEFAULT 0,
  max_attempts INT NOT NULL,
  created_at BIGINT NOT NULL,
  run_at BIGINT NOT NULL,
  started_at BIGINT NOT NULL DEFAULT 0,
  finished_at BIGINT NOT NULL DEFAULT 0,
  lease_until BIGINT NOT NULL DEFAULT 0,
  worker TEXT NOT NULL DEFAULT '',
  rows BIGINT NOT NULL DEFAULT 0,
  bytes BIGINT NOT NULL DEFAULT 0,
  result_key TEXT,
  result_size BIGINT,
  result_rows BIGINT,
  result_sha256 TEXT,
  result_etag TEXT,
  result_expires_at BIGINT,
  error_code TEXT NOT NULL DEFAULT '',
  error_message TEXT NOT NULL DEFAULT '',
  idempotency_key TEXT UNIQUE,
  fingerprint TEXT NOT NULL DEFAULT '',
  data_version TEXT NOT NULL DEFAULT '',
  last_event BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sluice_job_events (
  job_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (job_id, seq)
);
)sql";

// The columns of a JobRecord in the order read_job() takes them, each qualified with `table`
// ("" or "s."), usable in SELECT and RETURNING lists.
std::string job_columns(std::string_view table) {
  static constexpr std::string_view kNames[] = {"id",
                                                "state",
                                                "dataset",
                                                "spec",
                                                "priority",
                                                "attempt",
                                                "max_attempts",
                                                "created_at",
                                                "run_at",
                                                "started_at",
                                                "finished_at",
                                                "lease_until",
                                                "worker",
                                                "rows",
                                                "bytes",
                                                "result_key",
                                                "result_size",
                                                "result_rows",
                                                "result_sha256",
                                                "result_etag",
                                                "result_expires_at",
                                                "error_code",
                                                "error_message",
                                                "idempotency_key",
                                                "fingerprint",
                                                "data_version",
                                                "last_event"};
  std::string columns;
  for (std::string_view name : kNames) {
    if (!columns.empty()) columns += ", ";
    if (name == "idempotency_key") {
      columns += "coalesce(";
      columns += table;
      columns += "idempotency_key, '') AS idempotency_key";
    } else {
      columns += table;
      columns += name;
    }
  }
  return columns;
}

// The same names unqualified, for selecting from a CTE whose RETURNING list was job_columns().
std::string job_names() {
  std::string names = job_columns("");
  const std::string coalesced = "coalesce(idempotency_key, '') AS idempotency_key";
  names.replace(names.find(coalesced), coalesced.size(), "idempotency_key");
  return names;
}

// Notices (CREATE ... IF NOT EXISTS skipping, a terminated connection's FATAL) are not errors
// and are not printed; an error is thrown with its message.
void ignore_notice(void* /*arg*/, const char* /*message*/) {}

std::string error_text(std::string message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  return "job queue (PostgreSQL): " + message;
}

// --------------------------------------------------------------------------------------------
// Values as libpq's text format
// --------------------------------------------------------------------------------------------

std::int64_t parse_int(const char* text, int length) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text, text + length, value);
  if (error != std::errc() || end != text + length) {
    throw QueueError(error_text("not an integer: " + std::string(text, length)));
  }
  return value;
}

// Bound parameters, all in text format; nullopt is SQL NULL.
class Params {
 public:
  Params& text(std::string_view value) {
    values_.emplace_back(std::string(value));
    return *this;
  }
  Params& integer(std::int64_t value) {
    values_.emplace_back(std::to_string(value));
    return *this;
  }
  Params& boolean(bool value) {
    values_.emplace_back(value ? "t" : "f");
    return *this;
  }
  Params& null() {
    values_.emplace_back(std::nullopt);
    return *this;
  }
  Params& text_or_null(const std::optional<std::string>& value) {
    values_.push_back(value);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> pointers() const {
    std::vector<const char*> pointers;
    pointers.reserve(values_.size());
    for (const auto& value : values_) pointers.push_back(value ? value->c_str() : nullptr);
    return pointers;
  }

 private:
  std::vector<std::optional<std::string>> values_;
};

// Array literals for `$n::text[]` and `$n::bigint[]` parameters.
void append_array_item(std::string& out, const std::optional<std::string>& item) {
  if (out.size() > 1) out += ',';
  if (!item) {
    out += "NULL";
    return;
  }
  out += '"';
  for (char c : *item) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

std::string text_array(const std::vector<std::optional<std::string>>& items) {
  std::string out = "{";
  for (const auto& item : items) append_array_item(out, item);
  out += '}';
  return out;
}

std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const auto& item : items) append_array_item(out, item);
  out += '}';
  return out;
}

std::string int_array(const std::vector<std::optional<std::int64_t>>& items) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += item ? std::to_string(*item) : "NULL";
  }
  out += '}';
  return out;
}

// --------------------------------------------------------------------------------------------
// Event data spliced in SQL
// --------------------------------------------------------------------------------------------

// The text of an event helper (job_queue.hpp) cut where its integer arguments go, so that a
// statement can put in numbers only the database knows (`parts[0] || n1 || parts[1] || ...`)
// and still produce the helper's bytes. Found by calling the helper with sentinel numbers and
// verified against the helper with other numbers.
class Splice {
 public:
  // `render(numbers)` calls the helper; `sentinels` are numbers that appear nowhere else.
  template <class Render>
  static Splice make(Render render, const std::vector<std::int64_t>& sentinels) {
    const std::string text = render(sentinels);
    Splice splice;
    if (!splice.cut(text, 0, sentinels, 0, render)) {
      throw QueueError(error_text("cannot splice event data: " + text));
    }
    return splice;
  }
  const std::string& part(std::size_t index) const { return parts_.at(index); }

 private:
  template <class Render>
  bool cut(const std::string& text, std::size_t from, const std::vector<std::int64_t>& sentinels,
           std::size_t index, Render& render) {
    if (index == sentinels.size()) {
      parts_.push_back(text.substr(from));
      if (verify(render, sentinels.size())) return true;
      parts_.pop_back();
      return false;
    }
    const std::string hole = std::to_string(sentinels[index]);
    for (std::size_t at = text.find(hole, from); at != std::string::npos;
         at = text.find(hole, at + 1)) {
      parts_.push_back(text.substr(from, at - from));
      if (cut(text, at + hole.size(), sentinels, index + 1, render)) return true;
      parts_.pop_back();
    }
    return false;
  }

  template <class Render>
  bool verify(Render& render, std::size_t holes) const {
    static constexpr std::int64_t kTrials[][2] = {{0, 0}, {-3, 1'700'000'000'123}, {12, 7}};
    for (const auto& trial : kTrials) {
      std::vector<std::int64_t> numbers;
      std::string spliced = parts_[0];
      for (std::size_t hole = 0; hole < holes; ++hole) {
        numbers.push_back(trial[hole % 2] + static_cast<std::int64_t>(hole));
        spliced += std::to_string(numbers.back());
        spliced += parts_[hole + 1];
      }
      if (spliced != render(numbers)) return false;
    }
    return true;
  }

  std::vector<std::string> parts_;
};

constexpr std::int64_t kSentinelA = 1'357'913'579;  // fits an int
constexpr std::int64_t kSentinelB = 8'642'086'420'864'208'642;

Splice queued_splice() {  // {priority, run_at}
  return Splice::make(
      [](const std::vector<std::int64_t>& n) {
        return queued_event_data(static_cast<int>(n[0]), n[1]);
      },
      {kSentinelA, kSentinelB});
}

Splice started_splice(std::string_view worker) {  // {attempt}
  return Splice::make(
      [worker](const std::vector<std::int64_t>& n) {
        return started_event_data(static_cast<int>(n[0]), worker);
      },
      {kSentinelA});
}

Splice retrying_splice(int attempt, std::string_view code, std::string_view message) {  // {run_at}
  return Splice::make(
      [&](const std::vector<std::int64_t>& n) {
        return retrying_event_data(attempt, code, message, n[0]);
      },
      {kSentinelB});
}

// --------------------------------------------------------------------------------------------
// Connections and the pool
// --------------------------------------------------------------------------------------------

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};

// The rows a statement returned (text format).
class Rows {
 public:
  explicit Rows(PGresult* result) : result_(result) {}
  int size() const { return PQntuples(result_.get()); }
  bool null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  std::string text(int row, int column) const {
    return {PQgetvalue(result_.get(), row, column),
            static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
  }
  std::int64_t integer(int row, int column) const {
    if (null(row, column)) return 0;
    return parse_int(PQgetvalue(result_.get(), row, column),
                     PQgetlength(result_.get(), row, column));
  }

 private:
  std::unique_ptr<PGresult, ResultDeleter> result_;
};

// The first statement on a connection taken from the idle list found it dead (the server
// restarted or dropped it meanwhile): nothing ran, the call may be tried on a new connection.
class StaleConnection : public QueueError {
 public:
  using QueueError::QueueError;
};

// A statement, prepared once per connection under its name.
struct Statement {
  std::string name;
  std::string sql;
};

JobRecord read_job(const Rows& rows, int row, int first = 0) {
  auto text = [&](int column) { return rows.text(row, first + column); };
  auto integer = [&](int column) { return rows.integer(row, first + column); };
  JobRecord job;
  job.id = text(0);
  job.state = parse_job_state(text(1)).value_or(JobState::kQueued);
  job.dataset = text(2);
  job.spec = text(3);
  job.priority = static_cast<int>(integer(4));
  job.attempt = static_cast<int>(integer(5));
  job.max_attempts = static_cast<int>(integer(6));
  job.created_at = integer(7);
  job.run_at = integer(8);
  job.started_at = integer(9);
  job.finished_at = integer(10);
  job.lease_until = integer(11);
  job.worker = text(12);
  job.rows = static_cast<std::uint64_t>(integer(13));
  job.bytes = static_cast<std::uint64_t>(integer(14));
  if (!rows.null(row, first + 15)) {
    JobResult result;
    result.key = text(15);
    result.size = static_cast<std::uint64_t>(integer(16));
    result.rows = static_cast<std::uint64_t>(integer(17));
    result.sha256 = text(18);
    result.etag = text(19);
    result.expires_at = integer(20);
    job.result = std::move(result);
  }
  job.error_code = text(21);
  job.error_message = text(22);
  job.idempotency_key = text(23);
  job.fingerprint = text(24);
  job.data_version = text(25);
  job.last_event = static_cast<std::uint64_t>(integer(26));
  return job;
}

// Opens a libpq connection from a URL or key=value string, as "sluice-queue" unless the URL
// names the application itself. Blocking.
PGconn* connect_blocking(const std::string& url) {
  const char* keywords[] = {"fallback_application_name", "dbname", nullptr};
  const char* values[] = {"sluice-queue", url.c_str(), nullptr};
  return PQconnectdbParams(keywords, values, 1);
}

class Connection {
 public:
  static std::unique_ptr<Connection> open(const std::string& url) {
    PGconn* raw = connect_blocking(url);
    if (raw == nullptr) throw QueueError(error_text("cannot connect: out of memory"));
    if (PQstatus(raw) != CONNECTION_OK) {
      std::string message = PQerrorMessage(raw);
      PQfinish(raw);
      throw QueueError(error_text("cannot connect: " + message));
    }
    std::unique_ptr<Connection> connection(new Connection(raw));
    PQsetNoticeProcessor(raw, ignore_notice, nullptr);
    PQsetClientEncoding(raw, "UTF8");
    return connection;
  }
  ~Connection() { PQfinish(raw_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs a prepared statement (prepared on first use).
  Rows run(const Statement& statement, const Params& params = {}) {
    if (prepared_.count(statement.name) == 0) {
      check(PQprepare(raw_, statement.name.c_str(), statement.sql.c_str(), 0, nullptr));
      prepared_.insert(statement.name);
    }
    const std::vector<const char*> values = params.pointers();
    return check(PQexecPrepared(raw_, statement.name.c_str(), params.size(), values.data(), nullptr,
                                nullptr, 0));
  }
  // Runs SQL without parameters (simple protocol: may hold several statements).
  void exec(const char* sql) { check(PQexec(raw_, sql)); }

  // Taken from the idle list: its first statement may find that it died meanwhile.
  void lent(bool reused) {
    reused_ = reused;
    statements_ = 0;
  }
  // Fit to go back to the idle list: connected, no transaction left open.
  bool reusable() const {
    return PQstatus(raw_) == CONNECTION_OK && PQtransactionStatus(raw_) == PQTRANS_IDLE;
  }
  bool broken() const { return PQstatus(raw_) != CONNECTION_OK; }
  void rollback_quietly() {
    if (broken()) return;
    PQclear(PQexec(raw_, "ROLLBACK"));
  }

 private:
  explicit Connection(PGconn* raw) : raw_(raw) {}

  Rows check(PGresult* result) {
    const bool first = statements_++ == 0;
    const ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Rows(result);
    std::string message = result != nullptr ? PQresultErrorMessage(result) : "";
    if (message.empty()) message = PQerrorMessage(raw_);
    PQclear(result);
    if (broken() && first && reused_) throw StaleConnection(error_text(message));
    throw QueueError(error_text(message));
  }

  PGconn* raw_;
  std::unordered_set<std::string> prepared_;
  bool reused_ = false;
  int statements_ = 0;
};

class Pool {
 public:
  Pool(std::string url, std::size_t size)
      : url_(std::move(url)), size_(std::max<std::size_t>(size, 1)) {}

  class Lease {
   public:
    Lease(Pool& pool, std::unique_ptr<Connection> connection)
        : pool_(pool), connection_(std::move(connection)) {}
    ~Lease() { pool_.give_back(std::move(connection_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection& operator*() const { return *connection_; }

   private:
    Pool& pool_;
    std::unique_ptr<Connection> connection_;
  };

  Lease acquire() {
    std::unique_lock lock(mutex_);
    while (true) {
      available_.wait(lock, [&] { return !idle_.empty() || open_ < size_; });
      if (!idle_.empty()) {
        std::unique_ptr<Connection> connection = std::move(idle_.back());
        idle_.pop_back();
        if (connection->broken()) {
          --open_;
          lock.unlock();
          connection.reset();
          lock.lock();
          continue;
        }
        connection->lent(true);
        return Lease(*this, std::move(connection));
      }
      ++open_;
      lock.unlock();
      try {
        std::unique_ptr<Connection> connection = Connection::open(url_);
        connection->lent(false);
        return Lease(*this, std::move(connection));
      } catch (...) {
        lock.lock();
        --open_;
        available_.notify_one();
        throw;
      }
    }
  }

  // After a stale connection: the others idle as long are likely dead too (a restart).
  void drop_idle() {
    std::vector<std::unique_ptr<Connection>> dropped;
    {
      std::lock_guard lock(mutex_);
      dropped.swap(idle_);
      open_ -= dropped.size();
    }
    available_.notify_all();
  }

 private:
  void give_back(std::unique_ptr<Connection> connection) {
    if (!connection) return;
    if (!connection->reusable()) connection->rollback_quietly();
    const bool keep = connection->reusable();
    if (!keep) connection.reset();
    {
      std::lock_guard lock(mutex_);
      if (keep) {
        idle_.push_back(std::move(connection));
      } else {
        --open_;
      }
    }
    available_.notify_one();
  }

  const std::string url_;
  const std::size_t size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;  // the most recently used last
  std::size_t open_ = 0;                           // idle and lent
};

class Transaction {
 public:
  explicit Transaction(Connection& connection) : connection_(connection) {
    connection_.exec("BEGIN");
  }
  ~Transaction() {
    if (!done_) connection_.rollback_quietly();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    done_ = true;
    connection_.exec("COMMIT");
  }

 private:
  Connection& connection_;
  bool done_ = false;
};

// --------------------------------------------------------------------------------------------
// The listening connection
// --------------------------------------------------------------------------------------------

// LISTENs on its own connection and thread; hands each notification's payload to `deliver`,
// and "" after each (re)connection. Reconnects with backoff (100 ms doubling to 5 s).
class Listener {
 public:
  Listener(std::string url, std::function<void(std::string_view)> deliver)
      : url_(std::move(url)), deliver_(std::move(deliver)) {
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) throw QueueError(error_text(std::string("eventfd: ") + std::strerror(errno)));
    thread_ = std::thread([this] { run(); });
  }
  ~Listener() {
    stop_.store(true);
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(wake_, &one, sizeof one);
    thread_.join();
    ::close(wake_);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

 private:
  // Waits for `events` on `fd` (none when fd < 0) or the stop signal, at most `timeout`.
  // False when asked to stop.
  bool wait(int fd, short events, std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{wake_, POLLIN, 0}, {fd, events, 0}};
    ::poll(fds, fd >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
    return !stop_.load();
  }

  // A connection that LISTENs, or nullptr with `error` set.
  PGconn* connect(std::string& error) {
    const char* keywords[] = {"fallback_application_name", "keepalives_idle", "keepalives_interval",
                              "keepalives_count",          "dbname",          nullptr};
    const char* values[] = {"sluice-queue-listen", "30", "10", "3", url_.c_str(), nullptr};
    PGconn* conn = PQconnectStartParams(keywords, values, 1);
    if (conn == nullptr) {
      error = "out of memory";
      return nullptr;
    }
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD && status != PGRES_POLLING_OK &&
           status != PGRES_POLLING_FAILED) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms || !wait(PQsocket(conn), status == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                               std::min<std::chrono::milliseconds>(left, 1s))) {
        break;
      }
      status = PQconnectPoll(conn);
    }
    if (status != PGRES_POLLING_OK || PQstatus(conn) != CONNECTION_OK) {
      error = stop_.load() ? "stopped" : PQerrorMessage(conn);
      if (error.empty()) error = "timed out";
      PQfinish(conn);
      return nullptr;
    }
    PQsetNoticeProcessor(conn, ignore_notice, nullptr);
    PGresult* listen = PQexec(conn, "LISTEN sluice_jobs");
    const bool ok = PQresultStatus(listen) == PGRES_COMMAND_OK;
    if (!ok) error = PQresultErrorMessage(listen);
    PQclear(listen);
    if (!ok) {
      PQfinish(conn);
      return nullptr;
    }
    return conn;
  }

  void run() {
    std::chrono::milliseconds backoff = 100ms;
    bool failing = false;  // logged once per streak of failures
    while (!stop_.load()) {
      std::string error;
      PGconn* conn = connect(error);
      if (conn == nullptr) {
        if (stop_.load()) break;
        if (!failing) {
          log_event("job queue: cannot LISTEN on PostgreSQL (" + escape_log_text(trimmed(error)) +
                    "); retrying");
        }
        failing = true;
        if (!wait(-1, 0, backoff)) break;
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
        continue;
      }
      if (failing) log_event("job queue: listening on PostgreSQL again");
      failing = false;
      backoff = 100ms;
      deliver("");  // whatever was sent while nobody listened is lost
      while (true) {
        while (PGnotify* notify = PQnotifies(conn)) {
          const std::string payload = notify->extra != nullptr ? notify->extra : "";
          PQfreemem(notify);
          deliver(payload);
        }
        if (!wait(PQsocket(conn), POLLIN, 1s)) break;
        if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK) {
          log_event("job queue: the PostgreSQL LISTEN connection broke (" +
                    escape_log_text(trimmed(PQerrorMessage(conn))) + "); reconnecting");
          failing = true;
          break;
        }
      }
      PQfinish(conn);
    }
  }

  // A callback that throws must not end the thread (nor the process).
  void deliver(std::string_view id) noexcept {
    try {
      deliver_(id);
    } catch (const std::exception& error) {
      log_event(std::string("job queue: the change callback failed: ") + error.what());
    } catch (...) {
      log_event("job queue: the change callback failed");
    }
  }

  static std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }

  const std::string url_;
  const std::function<void(std::string_view)> deliver_;
  int wake_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// --------------------------------------------------------------------------------------------
// The queue
// --------------------------------------------------------------------------------------------

Statement statement(std::string name, std::string sql) {
  return {std::move(name), std::move(sql)};
}

class PgJobQueue final : public JobQueue {
 public:
  PgJobQueue(const std::string& url, std::size_t pool_size, QueueTuning tuning)
      : url_(url), tuning_(tuning), pool_(url, pool_size), queued_(queued_splice()) {
    // A wrong URL or an unreachable server fails here; the connection stays in the pool.
    [[maybe_unused]] Pool::Lease first = pool_.acquire();
  }

  ~PgJobQueue() override { listener_.reset(); }
  PgJobQueue(const PgJobQueue&) = delete;
  PgJobQueue& operator=(const PgJobQueue&) = delete;

  void migrate() override {
    with_connection([&](Connection& connection) {
      Transaction transaction(connection);
      connection.exec(
          (std::string("SELECT pg_advisory_xact_lock(") + kMigrateLockKey + ")").c_str());
      connection.exec(kSchema);
      connection.exec(kJobIndexesSql);
      transaction.commit();
      return 0;
    });
  }

  Enqueued enqueue(const NewJob& job) override {
    static const Statement insert = statement("enqueue", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
ins AS (
  INSERT INTO sluice_jobs (id, state, dataset, spec, priority, max_attempts, created_at, run_at,
    finished_at, rows, bytes, result_key, result_size, result_rows, result_sha256, result_etag,
    result_expires_at, idempotency_key, fingerprint, data_version, last_event)
  SELECT $1::text, $2::text, $3::text, $4::text, $5::int, $6::int, t.now,
    CASE WHEN $7::bigint > 0 THEN $7::bigint ELSE t.now END,
    CASE WHEN $2::text = 'succeeded' THEN t.now ELSE 0 END,
    $8::bigint, $9::bigint, $10::text, $11::bigint, $12::bigint, $13::text, $14::text,
    $15::bigint, $16::text, $17::text, $18::text, $19::bigint
  FROM t
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING )sql" + job_columns("") + R"sql(),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, 1, 'queued', $20::text || priority::text || $21::text || run_at::text || $22::text,
    created_at FROM ins
  UNION ALL
  SELECT id, 2, 'succeeded', $23::text, created_at FROM ins WHERE $23::text IS NOT NULL)
SELECT )sql" + job_names() + ", pg_notify('sluice_jobs', id) FROM ins");
    static const Statement by_key =
        statement("by_key", "SELECT " + job_columns("") +
                                " FROM sluice_jobs WHERE idempotency_key = $1::text");

    const bool done = job.reuse.has_value();
    Params params;
    params.text(new_job_id()).text(done ? "succeeded" : "queued").text(job.dataset).text(job.spec);
    params.integer(job.priority).integer(std::max(job.max_attempts, 1)).integer(job.run_at);
    if (done) {
      const JobResult& result = *job.reuse;
      params.integer(static_cast<std::int64_t>(result.rows));
      params.integer(static_cast<std::int64_t>(result.size));
      params.text(result.key);
      params.integer(static_cast<std::int64_t>(result.size));
      params.integer(static_cast<std::int64_t>(result.rows));
      params.text(result.sha256).text(result.etag).integer(result.expires_at);
    } else {
      params.integer(0).integer(0).null().null().null().null().null().null();
    }
    if (job.idempotency_key.empty()) {
      params.null();
    } else {
      params.text(job.idempotency_key);
    }
    params.text(job.fingerprint).text(job.data_version).integer(done ? 2 : 1);
    params.text(queued_.part(0)).text(queued_.part(1)).text(queued_.part(2));
    if (done) {
      params.text(succeeded_event_data(*job.reuse));
    } else {
      params.null();
    }

    Enqueued enqueued = with_connection([&](Connection& connection) {
      for (int round = 0;; ++round) {
        Rows rows = connection.run(insert, params);
        if (rows.size() == 1) return Enqueued{read_job(rows, 0), true};
        // The key is taken (ON CONFLICT waited for its transaction): that job, unless it was
        // deleted in between, when the insert is tried again.
        Rows existing = connection.run(by_key, Params().text(job.idempotency_key));
        if (existing.size() == 1) return Enqueued{read_job(existing, 0), false};
        if (round == 3) throw QueueError(error_text("idempotency key keeps vanishing"));
      }
    });
    if (enqueued.created) changed({enqueued.job.id});
    return enqueued;
  }

  std::vector<std::string> enqueue_many(const std::vector<NewJob>& jobs) override {
    static const Statement insert =
        statement("enqueue_many", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
input AS MATERIALIZED (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],
    $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[],
    $13::bigint[], $14::text[], $15::text[], $16::text[]) WITH ORDINALITY
  AS u(id, state, dataset, spec, priority, max_attempts, run_at, rows, bytes, result_key,
    result_sha256, result_etag, result_expires_at, fingerprint, data_version, done_data, ord)),
ins AS (
  INSERT INTO sluice_jobs (id, state, dataset, spec, priority, max_attempts, created_at, run_at,
    finished_at, rows, bytes, result_key, result_size, result_rows, result_sha256, result_etag,
    result_expires_at, fingerprint, data_version, last_event)
  SELECT u.id, u.state, u.dataset, u.spec, u.priority, u.max_attempts, t.now,
    CASE WHEN u.run_at > 0 THEN u.run_at ELSE t.now END,
    CASE WHEN u.state = 'succeeded' THEN t.now ELSE 0 END, u.rows, u.bytes, u.result_key,
    CASE WHEN u.result_key IS NULL THEN NULL ELSE u.bytes END,
    CASE WHEN u.result_key IS NULL THEN NULL ELSE u.rows END,
    u.result_sha256, u.result_etag, u.result_expires_at, u.fingerprint, u.data_version,
    CASE WHEN u.done_data IS NULL THEN 1 ELSE 2 END
  FROM input u, t ORDER BY u.ord
  RETURNING id, priority, run_at, created_at),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, 1, 'queued', $17::text || priority::text || $18::text || run_at::text || $19::text,
    created_at FROM ins
  UNION ALL
  SELECT u.id, 2, 'succeeded', u.done_data, t.now FROM input u, t WHERE u.done_data IS NOT NULL)
SELECT pg_notify('sluice_jobs', id) FROM ins)sql");
    if (jobs.empty()) return {};
    std::vector<std::string> ids, states, datasets, specs;
    std::vector<std::optional<std::int64_t>> priorities, max_attempts, run_ats, rows, bytes,
        expires;
    std::vector<std::optional<std::string>> keys, sha256s, etags, fingerprints, versions, done;
    for (const NewJob& job : jobs) {
      ids.push_back(new_job_id());
      states.emplace_back(job.reuse ? "succeeded" : "queued");
      datasets.push_back(job.dataset);
      specs.push_back(job.spec);
      priorities.emplace_back(job.priority);
      max_attempts.emplace_back(std::max(job.max_attempts, 1));
      run_ats.emplace_back(job.run_at);
      fingerprints.emplace_back(job.fingerprint);
      versions.emplace_back(job.data_version);
      if (job.reuse) {
        rows.emplace_back(static_cast<std::int64_t>(job.reuse->rows));
        bytes.emplace_back(static_cast<std::int64_t>(job.reuse->size));
        keys.emplace_back(job.reuse->key);
        sha256s.emplace_back(job.reuse->sha256);
        etags.emplace_back(job.reuse->etag);
        expires.emplace_back(job.reuse->expires_at);
        done.emplace_back(succeeded_event_data(*job.reuse));
      } else {
        rows.emplace_back(0);
        bytes.emplace_back(0);
        keys.emplace_back();
        sha256s.emplace_back();
        etags.emplace_back();
        expires.emplace_back();
        done.emplace_back();
      }
    }
    Params params;
    params.text(text_array(ids)).text(text_array(states)).text(text_array(datasets));
    params.text(text_array(specs)).text(int_array(priorities)).text(int_array(max_attempts));
    params.text(int_array(run_ats)).text(int_array(rows)).text(int_array(bytes));
    params.text(text_array(keys)).text(text_array(sha256s)).text(text_array(etags));
    params.text(int_array(expires)).text(text_array(fingerprints)).text(text_array(versions));
    params.text(text_array(done));
    params.text(queued_.part(0)).text(queued_.part(1)).text(queued_.part(2));
    with_connection([&](Connection& connection) { return connection.run(insert, params).size(); });
    changed(ids);
    return ids;
  }

  std::optional<JobRecord> get(std::string_view id) override {
    return with_connection([&](Connection& connection) { return find(connection, id); });
  }

  std::vector<JobRecord> list(const JobFilter& filter) override {
    std::string sql = "SELECT " + job_columns("") + " FROM sluice_jobs WHERE true";
    std::string name = "list";
    Params params;
    int index = 0;
    if (filter.state) {
      sql += " AND state = $" + std::to_string(++index) + "::text";
      params.text(to_string(*filter.state));
      name += "_s";
    }
    if (!filter.dataset.empty()) {
      sql += " AND dataset = $" + std::to_string(++index) + "::text";
      params.text(filter.dataset);
      name += "_d";
    }
    if (!filter.before_id.empty()) {
      sql += " AND seq < (SELECT seq FROM sluice_jobs WHERE id = $" + std::to_string(++index) +
             "::text)";
      params.text(filter.before_id);
      name += "_b";
    }
    sql += " ORDER BY seq DESC LIMIT $" + std::to_string(++index) + "::bigint";
    params.integer(static_cast<std::int64_t>(
        std::min<std::size_t>(filter.limit, std::numeric_limits<std::int64_t>::max())));
    const Statement query = statement(name, sql);
    return with_connection([&](Connection& connection) {
      Rows rows = connection.run(query, params);
      std::vector<JobRecord> jobs;
      jobs.reserve(rows.size());
      for (int row = 0; row < rows.size(); ++row) jobs.push_back(read_job(rows, row));
      return jobs;
    });
  }

  std::optional<JobRecord> cancel(std::string_view id) override {
    static const Statement lock =
        statement("cancel_lock",
                  "SELECT " + job_columns("") + " FROM sluice_jobs WHERE id = $1::text FOR UPDATE");
    static const Statement update = statement("cancel", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
j AS (
  UPDATE sluice_jobs SET state = 'cancelled', finished_at = (SELECT now FROM t), lease_until = 0,
    last_event = last_event + 1
  WHERE id = $1::text RETURNING )sql" + job_columns("") + R"sql(),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'cancelled', $2::text, finished_at FROM j)
SELECT )sql" + job_names() + ", pg_notify('sluice_jobs', id) FROM j");
    bool cancelled = false;
    std::optional<JobRecord> job = with_connection([&](Connection& connection) {
      Transaction transaction(connection);
      Rows rows = connection.run(lock, Params().text(id));
      if (rows.size() == 0) return std::optional<JobRecord>();
      JobRecord found = read_job(rows, 0);
      if (is_final(found.state)) return std::optional<JobRecord>(std::move(found));
      Rows updated =
          connection.run(update, Params().text(id).text(cancelled_event_data(found.state)));
      transaction.commit();
      cancelled = true;
      return std::optional<JobRecord>(read_job(updated, 0));
    });
    if (cancelled) changed({job->id});
    return job;
  }

  std::vector<JobRecord> claim(std::string_view worker, std::size_t max,
                               std::chrono::milliseconds lease) override {
    static const Statement update = statement("claim", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
picked AS MATERIALIZED (
  SELECT seq FROM sluice_jobs
  WHERE state = 'queued' AND run_at <= (SELECT now FROM t)
  ORDER BY priority DESC, run_at, seq
  LIMIT $1::bigint
  FOR UPDATE SKIP LOCKED),
j AS (
  UPDATE sluice_jobs s SET state = 'running', attempt = s.attempt + 1, started_at = t.now,
    lease_until = t.now + $2::bigint, worker = $3::text, rows = 0, bytes = 0,
    last_event = s.last_event + 1
  FROM picked, t WHERE s.seq = picked.seq
  RETURNING s.seq, )sql" + job_columns("s.") + R"sql(),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'started', $4::text || attempt::text || $5::text, started_at FROM j)
SELECT )sql" + job_names() + R"sql(, pg_notify('sluice_jobs', id) FROM j
ORDER BY priority DESC, run_at, seq)sql");
    if (max == 0) return {};
    const Splice started = started_splice(worker);
    Params params;
    params.integer(static_cast<std::int64_t>(std::min<std::size_t>(max, 1'000'000)));
    params.integer(lease.count()).text(worker).text(started.part(0)).text(started.part(1));
    std::vector<JobRecord> jobs = with_connection([&](Connection& connection) {
      Rows rows = connection.run(update, params);
      std::vector<JobRecord> claimed;
      claimed.reserve(rows.size());
      for (int row = 0; row < rows.size(); ++row) claimed.push_back(read_job(rows, row));
      return claimed;
    });
    if (!jobs.empty()) {
      std::vector<std::string> ids;
      ids.reserve(jobs.size());
      for (const JobRecord& job : jobs) ids.push_back(job.id);
      changed(ids);
    }
    return jobs;
  }

  Fenced heartbeat(std::string_view id, int attempt, std::uint64_t rows, std::uint64_t bytes,
                   std::chrono::milliseconds lease, bool event) override {
    static const Statement quiet = statement(
        "heartbeat",
        "UPDATE sluice_jobs SET lease_until = " SLUICE_PG_NOW
        " + $3::bigint, rows = $4::bigint,"
        " bytes = $5::bigint WHERE id = $1::text AND attempt = $2::int AND state = 'running'"
        " RETURNING 1");
    static const Statement loud =
        statement("heartbeat_event", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
j AS (
  UPDATE sluice_jobs SET lease_until = (SELECT now FROM t) + $3::bigint, rows = $4::bigint,
    bytes = $5::bigint, last_event = last_event + 1
  WHERE id = $1::text AND attempt = $2::int AND state = 'running'
  RETURNING id, last_event),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'progress', $6::text, (SELECT now FROM t) FROM j)
SELECT pg_notify('sluice_jobs', id) FROM j)sql");
    Params params;
    params.text(id).integer(attempt).integer(lease.count());
    params.integer(static_cast<std::int64_t>(rows)).integer(static_cast<std::int64_t>(bytes));
    if (event) params.text(progress_event_data(rows, bytes));
    const bool applied = with_connection([&](Connection& connection) {
      return connection.run(event ? loud : quiet, params).size() == 1;
    });
    if (!applied) return Fenced::kLost;
    if (event) changed({std::string(id)});
    return Fenced::kOk;
  }

  Fenced succeed(std::string_view id, int attempt, const JobResult& result) override {
    static const Statement update = statement("succeed", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
j AS (
  UPDATE sluice_jobs SET state = 'succeeded', finished_at = (SELECT now FROM t), lease_until = 0,
    rows = $4::bigint, bytes = $3::bigint, result_key = $5::text, result_size = $3::bigint,
    result_rows = $4::bigint, result_sha256 = $6::text, result_etag = $7::text,
    result_expires_at = $8::bigint, error_code = '', error_message = '',
    last_event = last_event + 1
  WHERE id = $1::text AND attempt = $2::int AND state = 'running'
  RETURNING id, last_event, finished_at),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'succeeded', $9::text, finished_at FROM j)
SELECT pg_notify('sluice_jobs', id) FROM j)sql");
    Params params;
    params.text(id).integer(attempt).integer(static_cast<std::int64_t>(result.size));
    params.integer(static_cast<std::int64_t>(result.rows)).text(result.key).text(result.sha256);
    params.text(result.etag).integer(result.expires_at).text(succeeded_event_data(result));
    const bool applied = with_connection(
        [&](Connection& connection) { return connection.run(update, params).size() == 1; });
    if (!applied) return Fenced::kLost;
    changed({std::string(id)});
    return Fenced::kOk;
  }

  std::vector<Fenced> succeed_many(const std::vector<JobCompletion>& completions) override {
    // succeed()'s statement over arrays: the rows joined to the input by id and attempt are the
    // ones that apply; RETURNING names the input item (its ordinal) each update used. A repeated
    // (id, attempt) is not sent (an UPDATE ... FROM would pick one of the copies at random): like
    // the SQLite queue's, the first item that can apply does, the others are refused.
    static const Statement update =
        statement("succeed_many", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
c AS (
  SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[],
    $6::text[], $7::text[], $8::bigint[], $9::text[]) WITH ORDINALITY
  AS c(id, attempt, key, size, rows, sha256, etag, expires_at, data, ord)),
j AS (
  UPDATE sluice_jobs s SET state = 'succeeded', finished_at = t.now, lease_until = 0,
    rows = c.rows, bytes = c.size, result_key = c.key, result_size = c.size,
    result_rows = c.rows, result_sha256 = c.sha256, result_etag = c.etag,
    result_expires_at = c.expires_at, error_code = '', error_message = '',
    last_event = s.last_event + 1
  FROM c, t WHERE s.id = c.id AND s.attempt = c.attempt AND s.state = 'running'
  RETURNING s.id, s.last_event, s.finished_at, c.data, c.ord),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'succeeded', data, finished_at FROM j)
SELECT ord, pg_notify('sluice_jobs', id) FROM j)sql");
    std::vector<Fenced> answers(completions.size(), Fenced::kLost);
    if (completions.empty()) return answers;
    std::vector<std::size_t> sent;  // the index in `completions` of each item sent
    sent.reserve(completions.size());
    std::unordered_set<std::string> seen;
    std::vector<std::optional<std::string>> ids, keys, sha256s, etags, datas;
    std::vector<std::optional<std::int64_t>> attempts, sizes, rows, expires;
    for (std::size_t index = 0; index < completions.size(); ++index) {
      const JobCompletion& completion = completions[index];
      if (!seen.insert(completion.id + '/' + std::to_string(completion.attempt)).second) continue;
      sent.push_back(index);
      const JobResult& result = completion.result;
      ids.emplace_back(completion.id);
      attempts.emplace_back(completion.attempt);
      keys.emplace_back(result.key);
      sizes.emplace_back(static_cast<std::int64_t>(result.size));
      rows.emplace_back(static_cast<std::int64_t>(result.rows));
      sha256s.emplace_back(result.sha256);
      etags.emplace_back(result.etag);
      expires.emplace_back(result.expires_at);
      datas.emplace_back(succeeded_event_data(result));
    }
    Params params;
    params.text(text_array(ids)).text(int_array(attempts)).text(text_array(keys));
    params.text(int_array(sizes)).text(int_array(rows)).text(text_array(sha256s));
    params.text(text_array(etags)).text(int_array(expires)).text(text_array(datas));
    with_connection([&](Connection& connection) {
      Rows updated = connection.run(update, params);
      for (int row = 0; row < updated.size(); ++row) {
        const std::int64_t ord = updated.integer(row, 0);
        if (ord < 1 || static_cast<std::size_t>(ord) > sent.size()) {
          throw QueueError(error_text("succeed_many: no such item " + std::to_string(ord)));
        }
        answers[sent[static_cast<std::size_t>(ord - 1)]] = Fenced::kOk;
      }
      return 0;
    });
    std::vector<std::string> applied;  // in the order given
    for (std::size_t index = 0; index < completions.size(); ++index) {
      if (answers[index] == Fenced::kOk) applied.push_back(completions[index].id);
    }
    changed(applied);
    return answers;
  }

  Fenced fail(std::string_view id, int attempt, std::string_view code, std::string_view message,
              bool retryable) override {
    // Retried when `retryable` and attempts are left (the database decides the second, under
    // the row's lock); both events are ready, the retry's run_at spliced in.
    static const Statement update = statement("fail", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
j AS (
  UPDATE sluice_jobs SET
    state = CASE WHEN $3::bool AND attempt < max_attempts THEN 'queued' ELSE 'failed' END,
    run_at = CASE WHEN $3::bool AND attempt < max_attempts
                  THEN (SELECT now FROM t) + $4::bigint ELSE run_at END,
    finished_at = CASE WHEN $3::bool AND attempt < max_attempts THEN 0
                       ELSE (SELECT now FROM t) END,
    lease_until = 0, error_code = $5::text, error_message = $6::text,
    last_event = last_event + 1
  WHERE id = $1::text AND attempt = $2::int AND state = 'running'
  RETURNING id, state, run_at, last_event),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, CASE WHEN state = 'queued' THEN 'retrying' ELSE 'failed' END,
    CASE WHEN state = 'queued' THEN $7::text || run_at::text || $8::text ELSE $9::text END,
    (SELECT now FROM t) FROM j)
SELECT pg_notify('sluice_jobs', id) FROM j)sql");
    const Splice retrying = retrying_splice(attempt, code, message);
    Params params;
    params.text(id).integer(attempt).boolean(retryable);
    params.integer(retry_backoff(tuning_, attempt).count()).text(code).text(message);
    params.text(retrying.part(0)).text(retrying.part(1));
    params.text(failed_event_data(attempt, code, message));
    const bool applied = with_connection(
        [&](Connection& connection) { return connection.run(update, params).size() == 1; });
    if (!applied) return Fenced::kLost;
    changed({std::string(id)});
    return Fenced::kOk;
  }

  Fenced release(std::string_view id, int attempt) override {
    static const Statement update = statement("release", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
j AS (
  UPDATE sluice_jobs SET state = 'queued', attempt = attempt - 1, run_at = (SELECT now FROM t),
    lease_until = 0, last_event = last_event + 1
  WHERE id = $1::text AND attempt = $2::int AND state = 'running'
  RETURNING id, priority, run_at, last_event),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'queued',
    $3::text || priority::text || $4::text || run_at::text || $5::text, run_at FROM j)
SELECT pg_notify('sluice_jobs', id) FROM j)sql");
    Params params;
    params.text(id).integer(attempt);
    params.text(queued_.part(0)).text(queued_.part(1)).text(queued_.part(2));
    const bool applied = with_connection(
        [&](Connection& connection) { return connection.run(update, params).size() == 1; });
    if (!applied) return Fenced::kLost;
    changed({std::string(id)});
    return Fenced::kOk;
  }

  std::optional<JobRecord> find_reusable(std::string_view fingerprint,
                                         std::string_view data_version,
                                         std::chrono::milliseconds margin) override {
    static const Statement query =
        statement("find_reusable",
                  "SELECT " + job_columns("") +
                      " FROM sluice_jobs WHERE state = 'succeeded' AND fingerprint = $1::text"
                      " AND data_version = $2::text AND result_expires_at > " SLUICE_PG_NOW
                      " + $3::bigint"
                      " ORDER BY result_expires_at DESC, seq DESC LIMIT 1");
    if (data_version.empty()) return std::nullopt;
    return with_connection([&](Connection& connection) -> std::optional<JobRecord> {
      Rows rows = connection.run(
          query, Params().text(fingerprint).text(data_version).integer(margin.count()));
      if (rows.size() == 0) return std::nullopt;
      return read_job(rows, 0);
    });
  }

  std::vector<JobEvent> events(std::string_view id, std::uint64_t after, std::size_t max) override {
    static const Statement query = statement(
        "events",
        "SELECT job_id, seq, type, data, at FROM sluice_job_events WHERE job_id = $1::text"
        " AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint");
    Params params;
    params.text(id).integer(static_cast<std::int64_t>(after));
    params.integer(static_cast<std::int64_t>(
        std::min<std::size_t>(max, std::numeric_limits<std::int64_t>::max())));
    return with_connection([&](Connection& connection) {
      Rows rows = connection.run(query, params);
      std::vector<JobEvent> events;
      events.reserve(rows.size());
      for (int row = 0; row < rows.size(); ++row) {
        JobEvent event;
        event.job_id = rows.text(row, 0);
        event.seq = static_cast<std::uint64_t>(rows.integer(row, 1));
        event.type = rows.text(row, 2);
        event.data = rows.text(row, 3);
        event.at = rows.integer(row, 4);
        events.push_back(std::move(event));
      }
      return events;
    });
  }

  std::vector<std::pair<std::string, std::uint64_t>> last_events(
      const std::vector<std::string>& ids) override {
    static const Statement query = statement(
        "last_events", "SELECT id, last_event FROM sluice_jobs WHERE id = ANY($1::text[])");
    if (ids.empty()) return {};
    std::unordered_map<std::string, std::uint64_t> seqs =
        with_connection([&](Connection& connection) {
          Rows rows = connection.run(query, Params().text(text_array(ids)));
          std::unordered_map<std::string, std::uint64_t> found;
          for (int row = 0; row < rows.size(); ++row) {
            found.emplace(rows.text(row, 0), static_cast<std::uint64_t>(rows.integer(row, 1)));
          }
          return found;
        });
    std::vector<std::pair<std::string, std::uint64_t>> found;  // in the order asked
    for (const std::string& id : ids) {
      const auto seq = seqs.find(id);
      if (seq != seqs.end()) found.emplace_back(id, seq->second);
    }
    return found;
  }

  SweepReport sweep() override {
    SweepReport report;
    std::vector<std::string> touched;
    sweep_lapsed(report, touched);
    sweep_expired(report, touched);
    sweep_retention(report);
    changed(touched);
    return report;
  }

  void on_change(std::function<void(std::string_view job_id)> callback) override {
    std::unique_lock lock(callback_mutex_);
    callback_ = std::move(callback);
  }

  void start_listening() override {
    std::lock_guard lock(listener_mutex_);
    if (listener_) return;
    listening_.store(true);
    listener_ = std::make_unique<Listener>(url_, [this](std::string_view id) { notify(id); });
  }

  bool notifies_across_processes() const override { return true; }

  std::int64_t now() override {
    static const Statement query = statement("now", "SELECT " SLUICE_PG_NOW);
    return with_connection(
        [&](Connection& connection) { return connection.run(query).integer(0, 0); });
  }

 private:
  // Runs `work` on a pooled connection; once more on a new one when the first statement found
  // an idle connection dead (nothing ran).
  template <class Work>
  auto with_connection(Work&& work) -> decltype(work(std::declval<Connection&>())) {
    for (int round = 0;; ++round) {
      Pool::Lease lease = pool_.acquire();
      try {
        return work(*lease);
      } catch (const StaleConnection&) {
        if (round > 0) throw;
      }
      pool_.drop_idle();
    }
  }

  std::optional<JobRecord> find(Connection& connection, std::string_view id) {
    static const Statement query =
        statement("get", "SELECT " + job_columns("") + " FROM sluice_jobs WHERE id = $1::text");
    Rows rows = connection.run(query, Params().text(id));
    if (rows.size() == 0) return std::nullopt;
    return read_job(rows, 0);
  }

  // 1. Leases that lapsed: the worker died or lost the database; its attempt is over.
  void sweep_lapsed(SweepReport& report, std::vector<std::string>& touched) {
    static const Statement select =
        statement("sweep_lapsed_select", std::string(SLUICE_PG_WITH_NOW) + R"sql(
SELECT s.seq, s.id, s.attempt, s.max_attempts, s.worker, t.now FROM sluice_jobs s, t
WHERE s.state = 'running' AND s.lease_until < t.now
ORDER BY s.lease_until LIMIT $1::bigint
FOR UPDATE OF s SKIP LOCKED)sql");
    static const Statement apply = statement("sweep_lapsed_apply", R"sql(
WITH u AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[])
  AS u(seq, state, run_at, message, data)),
j AS (
  UPDATE sluice_jobs s SET state = u.state,
    run_at = CASE WHEN u.state = 'queued' THEN u.run_at ELSE s.run_at END,
    finished_at = CASE WHEN u.state = 'queued' THEN 0 ELSE $6::bigint END, lease_until = 0,
    error_code = 'lease_lapsed', error_message = u.message, last_event = s.last_event + 1
  FROM u WHERE s.seq = u.seq
  RETURNING s.id, s.last_event, u.state AS new_state, u.data),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, CASE WHEN new_state = 'queued' THEN 'retrying' ELSE 'failed' END, data,
    $6::bigint FROM j)
SELECT id, new_state, pg_notify('sluice_jobs', id) FROM j)sql");
    with_connection([&](Connection& connection) {
      Transaction transaction(connection);
      Rows lapsed = connection.run(select, Params().integer(kSweepBatch));
      if (lapsed.size() == 0) return 0;
      const std::int64_t at = lapsed.integer(0, 5);
      std::vector<std::optional<std::int64_t>> seqs, run_ats;
      std::vector<std::optional<std::string>> states, messages, datas;
      for (int row = 0; row < lapsed.size(); ++row) {
        const int attempt = static_cast<int>(lapsed.integer(row, 2));
        const bool retry = attempt < lapsed.integer(row, 3);
        const std::int64_t run_at = at + retry_backoff(tuning_, attempt).count();
        std::string message = "the worker " + lapsed.text(row, 4) + " stopped renewing its lease";
        seqs.emplace_back(lapsed.integer(row, 0));
        states.emplace_back(retry ? "queued" : "failed");
        run_ats.emplace_back(run_at);
        datas.emplace_back(retry ? retrying_event_data(attempt, "lease_lapsed", message, run_at)
                                 : failed_event_data(attempt, "lease_lapsed", message));
        messages.emplace_back(std::move(message));
      }
      Params params;
      params.text(int_array(seqs)).text(text_array(states)).text(int_array(run_ats));
      params.text(text_array(messages)).text(text_array(datas)).integer(at);
      Rows applied = connection.run(apply, params);
      transaction.commit();
      for (int row = 0; row < applied.size(); ++row) {
        touched.push_back(applied.text(row, 0));
        ++(applied.text(row, 1) == "queued" ? report.lapsed_requeued : report.lapsed_failed);
      }
      return 0;
    });
  }

  // 2. Results whose time is up. A key is reported once no succeeded job refers to it, checked
  // after the commit so that concurrent sweeps of jobs sharing a key cannot both miss it.
  void sweep_expired(SweepReport& report, std::vector<std::string>& touched) {
    static const Statement expire =
        statement("sweep_expire", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
picked AS MATERIALIZED (
  SELECT seq FROM sluice_jobs
  WHERE state = 'succeeded' AND result_expires_at <= (SELECT now FROM t)
  ORDER BY result_expires_at LIMIT $1::bigint
  FOR UPDATE SKIP LOCKED),
j AS (
  UPDATE sluice_jobs s SET state = 'expired', last_event = s.last_event + 1
  FROM picked WHERE s.seq = picked.seq
  RETURNING s.id, s.last_event, s.result_key),
ev AS (
  INSERT INTO sluice_job_events (job_id, seq, type, data, at)
  SELECT id, last_event, 'expired', $2::text, (SELECT now FROM t) FROM j)
SELECT id, result_key, pg_notify('sluice_jobs', id) FROM j)sql");
    static const Statement unused = statement("sweep_unused_keys", R"sql(
SELECT DISTINCT k.key FROM unnest($1::text[]) AS k(key)
WHERE NOT EXISTS (
  SELECT 1 FROM sluice_jobs WHERE state = 'succeeded' AND result_key = k.key))sql");
    with_connection([&](Connection& connection) {
      Rows expired =
          connection.run(expire, Params().integer(kSweepBatch).text(expired_event_data()));
      std::vector<std::optional<std::string>> keys;
      for (int row = 0; row < expired.size(); ++row) {
        touched.push_back(expired.text(row, 0));
        ++report.expired;
        if (!expired.null(row, 1)) keys.emplace_back(expired.text(row, 1));
      }
      if (keys.empty()) return 0;
      Rows free_keys = connection.run(unused, Params().text(text_array(keys)));
      for (int row = 0; row < free_keys.size(); ++row) {
        report.expired_keys.push_back(free_keys.text(row, 0));
      }
      std::sort(report.expired_keys.begin(), report.expired_keys.end());
      return 0;
    });
  }

  // 3. Final jobs past the retention, with their events.
  void sweep_retention(SweepReport& report) {
    static const Statement remove =
        statement("sweep_retention", std::string(SLUICE_PG_WITH_NOW) + R"sql(,
d AS (
  DELETE FROM sluice_jobs WHERE seq IN (
    SELECT seq FROM sluice_jobs
    WHERE state IN ('failed', 'cancelled', 'expired') AND finished_at > 0
      AND finished_at < (SELECT now FROM t) - $1::bigint
    ORDER BY finished_at LIMIT $2::bigint
    FOR UPDATE SKIP LOCKED)
  RETURNING id),
e AS (DELETE FROM sluice_job_events WHERE job_id IN (SELECT id FROM d))
SELECT count(*) FROM d)sql");
    report.deleted = with_connection([&](Connection& connection) {
      return static_cast<std::size_t>(
          connection.run(remove, Params().integer(tuning_.retention.count()).integer(kSweepBatch))
              .integer(0, 0));
    });
  }

  // After a commit: the callback hears of this process's changes directly unless the listener
  // runs (then they come back through the server).
  // (The callback runs under a shared lock that on_change takes exclusively, so once
  // on_change({}) returned no call of the old callback is still running.)
  void changed(const std::vector<std::string>& ids) {
    if (listening_.load() || ids.empty()) return;
    std::shared_lock lock(callback_mutex_);
    if (!callback_) return;
    for (const std::string& id : ids) callback_(id);
  }

  void notify(std::string_view id) {
    std::shared_lock lock(callback_mutex_);
    if (callback_) callback_(id);
  }

  const std::string url_;
  const QueueTuning tuning_;
  Pool pool_;
  const Splice queued_;  // queued_event_data: {priority, run_at}
  std::shared_mutex callback_mutex_;
  std::function<void(std::string_view)> callback_;
  std::atomic<bool> listening_{false};
  std::mutex listener_mutex_;
  std::unique_ptr<Listener> listener_;
};

}  // namespace

std::unique_ptr<JobQueue> open_pg_job_queue(const std::string& url, std::size_t pool_size,
                                            QueueTuning tuning) {
  return std::make_unique<PgJobQueue>(url, pool_size, tuning);
}

}  // namespace sluice
