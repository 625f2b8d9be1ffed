#include "sources/pg_connection.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "sources/pg_copy_stream.hpp"
#include "sources/pg_wire_bytes.hpp"
#include "sources/source_metrics.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
using asio::posix::stream_descriptor;

std::string message_of(PGconn* conn) {
  std::string message = conn ? PQerrorMessage(conn) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

// A dup of libpq's socket registered with an io_context's reactor. Closing a dup does not take
// it out of the epoll set while libpq's descriptor keeps the socket open, and Asio, closing a
// descriptor, counts on exactly that: the dead registration would then wake that thread for
// every packet the server sends (and name a reactor state Asio may have reused). So it is
// deregistered explicitly (release()) before the dup is closed.
class DupDescriptor {
 public:
  DupDescriptor(const asio::any_io_executor& executor, int fd)
      : descriptor_(executor, ::dup(fd)) {}
  ~DupDescriptor() {
    boost::system::error_code ignored;
    descriptor_.cancel(ignored);
    ::close(descriptor_.release());
  }
  DupDescriptor(const DupDescriptor&) = delete;
  DupDescriptor& operator=(const DupDescriptor&) = delete;
  stream_descriptor& get() { return descriptor_; }

 private:
  stream_descriptor descriptor_;
};

// Waits until `fd` is readable or writable, at most until `deadline`. False on timeout.
asio::awaitable<bool> wait_fd(int fd, stream_descriptor::wait_type what,
                              std::chrono::steady_clock::time_point deadline) {
  auto executor = co_await asio::this_coro::executor;
  DupDescriptor descriptor(executor, fd);
  asio::steady_timer timer(executor, deadline);
  bool timed_out = false;
  timer.async_wait([&](boost::system::error_code ec) {
    if (!ec) {
      timed_out = true;
      descriptor.get().cancel();
    }
  });
  co_await descriptor.get().async_wait(what, asio::as_tuple(asio::use_awaitable));
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

// How long read_copy_row may sleep for rows to gather: the time a buffer's worth takes at the
// rate seen, within these bounds (the longest is also the most a row waits for its turn).
constexpr std::chrono::microseconds kMinGather{50};
constexpr std::chrono::microseconds kMaxGather{1000};

// Why the COPY of a plain connection is read by libpq after all: SLUICE_PG_COPY_VIA_LIBPQ=1
// (tests run both readers; benchmarks compare them).
bool copy_via_libpq() {
  static const bool forced = [] {
    const char* value = std::getenv("SLUICE_PG_COPY_VIA_LIBPQ");
    return value != nullptr && std::string_view(value) == "1";
  }();
  return forced;
}

// Where the connection's waits run: the executor of the request using it (its I/O thread).
struct PgConnection::Waits {
  explicit Waits(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;  // read_copy_row's sleeps
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

bool PgConnection::sends_valid_utf8() const {
  const char* encoding = PQparameterStatus(conn_, "client_encoding");
  return encoding != nullptr && std::string_view(encoding) == "UTF8";
}

PgConnection::PgConnection(PGconn* conn, const asio::any_io_executor& executor)
    : conn_(conn),
      waits_(std::make_unique<Waits>(executor)) {}

PgConnection::~PgConnection() {
  waits_.reset();
  PQfinish(conn_);
}

void PgConnection::fail_connection(const std::string& what) {
  broken_ = true;
  throw PgError("", what + ": " + message_of(conn_), true);
}

asio::awaitable<void> PgConnection::wait_readable() {
  co_await wait_socket(stream_descriptor::wait_read);
}

asio::awaitable<void> PgConnection::wait_writable() {
  co_await wait_socket(stream_descriptor::wait_write);
}

// The socket is in the reactor only while it is waited for: registered for good, every packet
// the server sends would wake the thread, even while read_copy_row sleeps to let rows gather.
asio::awaitable<void> PgConnection::wait_socket(int what) {
  DupDescriptor descriptor(waits_->timer.get_executor(), PQsocket(conn_));
  auto [ec] = co_await descriptor.get().async_wait(static_cast<stream_descriptor::wait_type>(what),
                                                   asio::as_tuple(asio::use_awaitable));
  drained_ = false;
  check_wait(ec);
}

void PgConnection::check_wait(const boost::system::error_code& ec) {
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
  copied_since_wait_ = 0;
  wait_began_ = std::chrono::steady_clock::now();
  if (PQsslInUse(conn_) == 0 && PQgssEncInUse(conn_) == 0 && !copy_via_libpq()) {
    source_metrics().pg_copies_socket.add(1);
    co_await start_raw_copy(sql);
    co_return;
  }
  source_metrics().pg_copies_libpq.add(1);
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

// The raw COPY: libpq has read everything up to the last ReadyForQuery (exec() returns only
// then, and the server says nothing unasked between statements), so the socket is at a message
// boundary and libpq's own buffer is empty. The Query message goes out here, and everything up
// to the next ReadyForQuery is read here; libpq's state is as exec() left it, so the COMMIT
// after the COPY goes through libpq again.
asio::awaitable<void> PgConnection::start_raw_copy(const std::string& sql) {
  if (broken_) throw PgError("", "PostgreSQL connection is broken", true);
  busy_ = true;
  copy_ = std::make_unique<PgCopyStream>();
  drained_ = false;
  // Query: 'Q', the length (counting itself), the statement, its NUL.
  std::string message(1, 'Q');
  put_be32(message, static_cast<std::int64_t>(4 + sql.size() + 1));
  message.append(sql).push_back('\0');
  const int fd = PQsocket(conn_);
  for (std::size_t sent = 0; sent < message.size();) {
    const ssize_t n = ::send(fd, message.data() + sent, message.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      co_await wait_writable();
    } else if (errno != EINTR) {
      fail_raw(std::string("cannot send the query: ") + std::strerror(errno));
    }
  }
  // Until CopyOutResponse, or the error that ends the exchange instead (the parser refuses rows
  // before CopyOutResponse).
  std::string_view row;
  if (co_await await_copy_event(row) == PgCopyStream::Event::kStarted) co_return;
  co_await finish_copy();  // throws the query's error
  broken_ = true;
  throw PgError("08P01", "the server answered the COPY without rows or an error", false);
}

asio::awaitable<PgCopyStreamEvent> PgConnection::await_copy_event(std::string_view& row) {
  for (;;) {
    const PgCopyStream::Event event = next_copy_event(row);
    if (event != PgCopyStream::Event::kNeedMore) co_return event;
    if (!read_socket()) co_await wait_readable();
  }
}

PgCopyStreamEvent PgConnection::next_copy_event(std::string_view& row) {
  try {
    return copy_->next(row);
  } catch (const std::runtime_error& error) {
    broken_ = true;
    throw PgError("08P01", error.what(), true);
  }
}

void PgConnection::fail_raw(const std::string& what) {
  broken_ = true;
  // A backend that is told to go (FATAL, e.g. pg_terminate_backend) says why before it closes.
  if (copy_ && copy_->error()) throw PgError(copy_->error()->sqlstate, copy_->error()->message, true);
  throw PgError("", what, true);
}

bool PgConnection::read_socket() {
  // A read that found the socket emptied (a short read or EAGAIN) is not repeated until a wait:
  // the rows in hand go on their way first.
  if (drained_) return false;
  const int fd = PQsocket(conn_);
  for (;;) {
    const std::span<char> space = copy_->space();
    const ssize_t n = ::recv(fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n > 0) {
      copy_->filled(static_cast<std::size_t>(n));
      drained_ = static_cast<std::size_t>(n) < space.size();
      return true;
    }
    if (n == 0) fail_raw("lost the connection during COPY: server closed the connection unexpectedly");
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      drained_ = true;
      return false;
    }
    if (errno != EINTR) fail_raw(std::string("lost the connection during COPY: ") + std::strerror(errno));
  }
}

int PgConnection::try_read_copy_row(CopyRow& row) {
  if (copy_) {
    for (;;) {
      std::string_view bytes;
      switch (next_copy_event(bytes)) {
        case PgCopyStream::Event::kRow:
          row.bytes.reset();
          row.data = bytes;
          copied_since_wait_ += bytes.size();
          return 1;
        case PgCopyStream::Event::kEnd: return -1;
        case PgCopyStream::Event::kStarted: continue;  // (only the first message)
        case PgCopyStream::Event::kNeedMore:
          if (!read_socket()) return 0;
          continue;
      }
    }
  }
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
    row.data = std::string_view(bytes, static_cast<std::size_t>(size));
    copied_since_wait_ += row.data.size();
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
    co_await wait_for_rows();
    if (!copy_ && PQconsumeInput(conn_) == 0) fail_connection("lost the connection during COPY");
  }
  co_await finish_copy();
  co_return false;
}

asio::awaitable<void> PgConnection::wait_for_rows() {
  const auto now = std::chrono::steady_clock::now();
  const std::size_t copied = std::exchange(copied_since_wait_, 0);
  if (copied > 0) {
    // Rows flowed since the last wait: the server is producing. Waking for the socket would
    // wake for each 8 KiB it sends; sleep until about a buffer's worth has gathered instead.
    // The rate: what arrived since the last wait began (during it, and since).
    const auto since = std::chrono::duration_cast<std::chrono::microseconds>(now - wait_began_);
    const auto gather = std::chrono::microseconds(static_cast<std::int64_t>(
        static_cast<double>(since.count()) * PgCopyStream::kBufferBytes / static_cast<double>(copied)));
    co_await sleep_for(std::clamp(gather, kMinGather, kMaxGather));
  } else {
    co_await wait_readable();  // nothing came since the last wait: the server is busy elsewhere
  }
  wait_began_ = now;
}

asio::awaitable<bool> PgConnection::gather_rows() {
  if (copied_since_wait_ == 0) co_return false;
  co_await wait_for_rows();
  co_return true;
}

asio::awaitable<void> PgConnection::sleep_for(std::chrono::microseconds delay) {
  waits_->timer.expires_after(delay);
  auto [ec] = co_await waits_->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  drained_ = false;
  check_wait(ec);
}

asio::awaitable<void> PgConnection::finish_copy() {
  if (copy_) {
    // Read to ReadyForQuery (rows that still come are dropped), then report the COPY's error.
    std::string_view row;
    while (co_await await_copy_event(row) != PgCopyStream::Event::kEnd) {
    }
    const std::unique_ptr<PgCopyStream> stream = std::move(copy_);
    busy_ = false;
    if (stream->buffered() != 0) {
      broken_ = true;
      throw PgError("08P01", "PostgreSQL protocol violation during COPY: bytes after ReadyForQuery", true);
    }
    if (stream->error()) throw PgError(stream->error()->sqlstate, stream->error()->message, false);
    co_return;
  }
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
  if (waits_->timer.get_executor() == executor) return;
  waits_ = std::make_unique<Waits>(executor);
}

bool PgConnection::cancelled_healthy() const {
  return cancelled_ && PQstatus(conn_) == CONNECTION_OK;
}

asio::any_io_executor PgConnection::executor() const { return waits_->timer.get_executor(); }

bool PgConnection::reusable() const {
  return !broken_ && !busy_ && !copy_ && PQstatus(conn_) == CONNECTION_OK &&
         PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

}  // namespace sluice
