#include "sources/pg_connection.hpp"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>

namespace sluice {
namespace {

namespace asio = boost::asio;
using asio::posix::stream_descriptor;

std::string message_of(PGconn* conn) {
  std::string message = conn ? PQerrorMessage(conn) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

// Waits until `fd` is readable or writable, at most until `deadline`. False on timeout.
asio::awaitable<bool> wait_fd(int fd, stream_descriptor::wait_type what,
                              std::chrono::steady_clock::time_point deadline) {
  auto executor = co_await asio::this_coro::executor;
  stream_descriptor descriptor(executor, ::dup(fd));
  asio::steady_timer timer(executor, deadline);
  bool timed_out = false;
  timer.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      timed_out = true;
      descriptor.cancel();
    }
  });
  co_await descriptor.async_wait(what, asio::as_tuple(asio::use_awaitable));
  timer.cancel();
  co_return !timed_out;
}

PgError error_of(const PGresult* result, PGconn* conn) {
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  std::string message = PQresultErrorMessage(result);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  return PgError(state ? state : "", message, PQstatus(conn) == CONNECTION_BAD);
}

}  // namespace

struct PgConnection::Socket {
  stream_descriptor descriptor;
};

asio::awaitable<std::unique_ptr<PgConnection>> PgConnection::connect(
    const std::string& conninfo, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PGconn* raw = PQconnectStart(conninfo.c_str());
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(raw, PQfinish);
  if (raw == nullptr || PQstatus(raw) == CONNECTION_BAD) {
    throw PgError("", "cannot connect to PostgreSQL: " + message_of(raw), true);
  }
  PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
  while (poll != PGRES_POLLING_OK) {
    if (poll == PGRES_POLLING_FAILED) {
      throw PgError("", "cannot connect to PostgreSQL: " + message_of(raw), true);
    }
    auto what = poll == PGRES_POLLING_READING ? stream_descriptor::wait_read
                                              : stream_descriptor::wait_write;
    if (!co_await wait_fd(PQsocket(raw), what, deadline)) {
      throw PgError("", "cannot connect to PostgreSQL: timed out", true);
    }
    poll = PQconnectPoll(raw);
  }
  if (PQsetnonblocking(raw, 1) != 0) {
    throw PgError("", "cannot make the connection non-blocking: " + message_of(raw), true);
  }
  auto executor = co_await asio::this_coro::executor;
  std::unique_ptr<PgConnection> connection(new PgConnection(conn.release(), executor));
  const char* encoding = PQparameterStatus(connection->conn_, "server_encoding");
  if (encoding != nullptr && std::string_view(encoding) == "SQL_ASCII") {
    // A SQL_ASCII database stores bytes unchecked. Asked for UTF8, PostgreSQL itself fails the
    // whole query at the first byte that is not UTF-8 (22021); taken as they are, Sluice's own
    // check applies what invalid_utf8 says (U+FFFD, or an error naming the column and row).
    co_await connection->exec("SET client_encoding = 'SQL_ASCII'");
  }
  co_return connection;
}

PgConnection::PgConnection(PGconn* conn, const asio::any_io_executor& executor)
    : conn_(conn),
      socket_(std::make_unique<Socket>(Socket{stream_descriptor(executor, ::dup(PQsocket(conn)))})) {}

PgConnection::~PgConnection() {
  socket_.reset();
  PQfinish(conn_);
}

void PgConnection::fail_connection(const std::string& what) {
  broken_ = true;
  throw PgError("", what + ": " + message_of(conn_), true);
}

asio::awaitable<void> PgConnection::wait_readable() {
  auto [ec] = co_await socket_->descriptor.async_wait(stream_descriptor::wait_read,
                                                      asio::as_tuple(asio::use_awaitable));
  if (ec == asio::error::operation_aborted) {
    // The waiting coroutine was cancelled (client gone, shutdown), not the connection lost:
    // stop the server's work and let the cancellation travel on.
    if (busy_) cancel();
    broken_ = true;
    throw boost::system::system_error(ec);
  }
  if (ec) {
    broken_ = true;
    throw PgError("", "PostgreSQL connection: " + ec.message(), true);
  }
}

asio::awaitable<void> PgConnection::wait_writable() {
  auto [ec] = co_await socket_->descriptor.async_wait(stream_descriptor::wait_write,
                                                      asio::as_tuple(asio::use_awaitable));
  if (ec == asio::error::operation_aborted) {
    // The waiting coroutine was cancelled (client gone, shutdown), not the connection lost:
    // stop the server's work and let the cancellation travel on.
    if (busy_) cancel();
    broken_ = true;
    throw boost::system::system_error(ec);
  }
  if (ec) {
    broken_ = true;
    throw PgError("", "PostgreSQL connection: " + ec.message(), true);
  }
}

asio::awaitable<void> PgConnection::send_and_flush(const std::string& sql,
                                                   const std::vector<std::string>& params) {
  if (broken_) throw PgError("", "PostgreSQL connection is broken", true);
  busy_ = true;
  int sent = 0;
  if (params.empty()) {
    sent = PQsendQuery(conn_, sql.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const std::string& param : params) values.push_back(param.c_str());
    sent = PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  }
  if (sent == 0) fail_connection("cannot send the query");
  for (;;) {
    int flushed = PQflush(conn_);
    if (flushed == 0) break;
    if (flushed < 0) fail_connection("cannot send the query");
    // The server may be sending while we still send: read as well, or both sides could stall.
    co_await wait_writable();
    if (PQconsumeInput(conn_) == 0) fail_connection("lost the connection");
  }
}

asio::awaitable<void> PgConnection::consume_until_ready(const char* during) {
  while (PQisBusy(conn_)) {
    co_await wait_readable();
    if (PQconsumeInput(conn_) == 0) fail_connection(during);
  }
}

asio::awaitable<PgResult> PgConnection::exec(const std::string& sql,
                                             const std::vector<std::string>& params) {
  co_await send_and_flush(sql, params);
  PgResult last;
  std::unique_ptr<PgError> error;
  for (;;) {
    co_await consume_until_ready();
    PgResult result(PQgetResult(conn_));
    if (!result) break;
    ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_FATAL_ERROR && !error) {
      error = std::make_unique<PgError>(error_of(result.get(), conn_));
    } else if (status == PGRES_COPY_OUT || status == PGRES_COPY_IN || status == PGRES_COPY_BOTH) {
      broken_ = true;  // a COPY where none was expected: not reusable
      throw PgError("", "unexpected COPY in exec()", false);
    }
    last = std::move(result);
  }
  busy_ = false;
  if (PQstatus(conn_) == CONNECTION_BAD) broken_ = true;
  if (error) throw *error;
  co_return last;
}

asio::awaitable<void> PgConnection::start_copy(const std::string& sql) {
  co_await send_and_flush(sql, {});
  co_await consume_until_ready();
  PgResult result(PQgetResult(conn_));
  if (!result) fail_connection("no result for COPY");
  if (PQresultStatus(result.get()) == PGRES_COPY_OUT) co_return;
  PgError error = error_of(result.get(), conn_);
  // Drain the remaining results so the connection can be reused after a query error.
  for (;;) {
    co_await consume_until_ready();
    PgResult rest(PQgetResult(conn_));
    if (!rest) break;
  }
  busy_ = false;
  broken_ = broken_ || PQstatus(conn_) == CONNECTION_BAD;
  throw error;
}

int PgConnection::try_read_copy_row(CopyRow& row) {
  char* bytes = nullptr;
  int size = PQgetCopyData(conn_, &bytes, 1);
  if (size == 0) {
    // libpq's buffer holds no whole row: take what the socket already has (a non-blocking
    // read) before reporting "would wait". Batches then span many socket reads, so a stream
    // writes to its client in large pieces instead of once per 16 KiB from the database.
    if (PQconsumeInput(conn_) == 0) fail_connection("lost the connection during COPY");
    size = PQgetCopyData(conn_, &bytes, 1);
  }
  if (size > 0) {
    row.bytes.reset(bytes);
    row.size = static_cast<std::size_t>(size);
    return 1;
  }
  if (size == 0) return 0;
  if (size == -2) fail_connection("COPY failed");
  return -1;
}

asio::awaitable<bool> PgConnection::read_copy_row(CopyRow& row) {
  for (;;) {
    int got = try_read_copy_row(row);
    if (got == 1) co_return true;
    if (got == -1) break;
    co_await wait_readable();
    if (PQconsumeInput(conn_) == 0) fail_connection("lost the connection during COPY");
  }
  co_await finish_copy();
  co_return false;
}

asio::awaitable<void> PgConnection::finish_copy() {
  // The COPY ended: its final status says whether it completed.
  std::unique_ptr<PgError> error;
  for (;;) {
    // A backend that went away mid-COPY may be noticed only here, after libpq ended the COPY.
    co_await consume_until_ready("lost the connection during COPY");
    PgResult result(PQgetResult(conn_));
    if (!result) break;
    if (PQresultStatus(result.get()) != PGRES_COMMAND_OK && !error) {
      error = std::make_unique<PgError>(error_of(result.get(), conn_));
    }
  }
  busy_ = false;
  if (error) throw *error;
}

void PgConnection::cancel() noexcept {
  if (!broken_) cancelled_ = true;
  broken_ = true;
  if (!busy_) return;
  PGcancel* handle = PQgetCancel(conn_);
  if (handle == nullptr) return;
  try {
    std::thread([handle] {
      char message[256];
      PQcancel(handle, message, sizeof message);
      PQfreeCancel(handle);
    }).detach();
  } catch (...) {
    PQfreeCancel(handle);
  }
}

void PgConnection::bind_to(const asio::any_io_executor& executor) {
  if (socket_->descriptor.get_executor() == executor) return;
  socket_ = std::make_unique<Socket>(Socket{stream_descriptor(executor, ::dup(PQsocket(conn_)))});
}

bool PgConnection::cancelled_healthy() const {
  return cancelled_ && PQstatus(conn_) == CONNECTION_OK;
}

asio::any_io_executor PgConnection::executor() const { return socket_->descriptor.get_executor(); }

bool PgConnection::reusable() const {
  return !broken_ && !busy_ && PQstatus(conn_) == CONNECTION_OK &&
         PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

}  // namespace sluice
