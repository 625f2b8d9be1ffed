#pragma once

#include <libpq-fe.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sources/source_error.hpp"

namespace sluice {

// A PostgreSQL error with its SQLSTATE ("" when the connection itself failed).
class PgError : public SourceError {
 public:
  PgError(std::string sqlstate, const std::string& message, bool connection_lost)
      : SourceError(message, connection_lost && sqlstate.empty() ? "08006" : std::move(sqlstate)),
        connection_lost_(connection_lost) {}
  // True when the connection is gone (server restart, network): retrying on a fresh
  // connection may succeed.
  bool connection_lost() const { return connection_lost_; }

 private:
  bool connection_lost_;
};

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

struct PgFreeMem {
  void operator()(char* bytes) const { PQfreemem(bytes); }
};

// One CopyData message of a COPY TO STDOUT: one row. Valid until the next read.
struct CopyRow {
  std::unique_ptr<char, PgFreeMem> bytes;  // libpq's copy of the row (TLS connections)
  std::string_view data;                   // the row: in `bytes` or in the connection's buffer
  std::string_view view() const { return data; }
};

class PgCopyStream;
enum class PgCopyStreamEvent;

// One libpq connection driven asynchronously: the socket is awaited with Asio, libpq runs in
// non-blocking mode, no call blocks the I/O thread (except PQconnectStart's name lookup for a
// host name; use an IP address or a socket folder to avoid it).
// Not thread-safe: used by one coroutine at a time (the pool hands it over).
class PgConnection {
 public:
  // Connects; throws PgError on failure or after `timeout`.
  static boost::asio::awaitable<std::unique_ptr<PgConnection>> connect(
      const std::string& conninfo, std::chrono::milliseconds timeout);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql` (one statement when `params` is non-empty; text parameters) and returns the
  // last result. Throws PgError when any statement fails.
  boost::asio::awaitable<PgResult> exec(const std::string& sql,
                                        const std::vector<std::string>& params = {});
  // Sends `COPY (...) TO STDOUT ...` and completes once the server streams rows. On a plain
  // connection (no TLS or GSS encryption) the COPY is read off the socket directly
  // (PgCopyStream: large reads, rows as views, no allocation per row); otherwise through
  // libpq. Either way the rows come from the calls below.
  boost::asio::awaitable<void> start_copy(const std::string& sql);
  // The next row of the COPY; false at its end (the final status consumed). Throws PgError.
  // When the socket is empty after a read that found rows, it first sleeps long enough for
  // about a buffer's worth to arrive (at the rate seen, at most 1 ms), instead of waking for
  // every 8 KiB the server sends: fewer, larger reads, and larger writes to the client.
  boost::asio::awaitable<bool> read_copy_row(CopyRow& row);
  // The next row only if it has already arrived (in libpq's buffer or the socket's): 1 = row,
  // 0 = would wait, -1 = end of the COPY, after which the caller must co_await finish_copy().
  int try_read_copy_row(CopyRow& row);
  // While rows flow (some were read since the last wait), waits as read_copy_row would before
  // its next read (the gathering sleep) and returns true; otherwise returns false at once. The
  // rows that came are then taken with try_read_copy_row().
  boost::asio::awaitable<bool> gather_rows();
  // Consumes the COPY's final status; throws PgError when it failed.
  boost::asio::awaitable<void> finish_copy();

  // Asks the server to cancel the running query (PQcancel, on a short-lived thread: it opens
  // its own connection) and marks this connection broken so it is discarded, not drained.
  void cancel() noexcept;
  // False once anything went wrong, or while a result or COPY is unfinished.
  bool reusable() const;
  // True when cancel() ended it while the server was fine (not a lost connection or an error):
  // the pool then opens a replacement at once rather than on the next request.
  bool cancelled_healthy() const;
  // The executor its socket waits on (the thread of the request that last used it).
  boost::asio::any_io_executor executor() const;
  // Moves the socket's readiness waits to `executor` (the caller's): a pooled connection taken
  // by a request on another I/O thread then wakes that thread, not the one it was opened on.
  // REQUIRES: no wait in progress.
  void bind_to(const boost::asio::any_io_executor& executor);
  PGconn* native() const { return conn_; }
  // True when the server sends UTF-8 it has validated: client_encoding is UTF8 (every database
  // encoding but SQL_ASCII checks text on input and converts it to the client's encoding;
  // connect() leaves a SQL_ASCII database's bytes unconverted and unchecked).
  bool sends_valid_utf8() const;

 private:
  PgConnection(PGconn* conn, const boost::asio::any_io_executor& executor);
  boost::asio::awaitable<void> send_and_flush(const std::string& sql,
                                              const std::vector<std::string>& params);
  boost::asio::awaitable<void> wait_readable();
  boost::asio::awaitable<void> wait_writable();
  boost::asio::awaitable<void> wait_socket(int what);  // a stream_descriptor::wait_type
  // A wait's outcome: cancelled (the request went away: the query is cancelled too) or failed.
  void check_wait(const boost::system::error_code& ec);
  // `during` names the step in the error when the connection is lost meanwhile.
  boost::asio::awaitable<void> consume_until_ready(const char* during = "lost the connection");
  [[noreturn]] void fail_connection(const std::string& what);
  // The raw COPY's failures: the connection is lost (with the server's reason, if it gave one).
  [[noreturn]] void fail_raw(const std::string& what);
  boost::asio::awaitable<void> start_raw_copy(const std::string& sql);
  // The next event of the raw COPY; a protocol violation breaks the connection (PgError).
  PgCopyStreamEvent next_copy_event(std::string_view& row);
  // The same, reading and waiting for the socket until there is one (never kNeedMore).
  boost::asio::awaitable<PgCopyStreamEvent> await_copy_event(std::string_view& row);
  // One non-blocking read of the socket into the COPY buffer: false when it had nothing.
  bool read_socket();
  // Waits until rows may have arrived: sleeps (see read_copy_row) or waits for the socket.
  boost::asio::awaitable<void> wait_for_rows();
  boost::asio::awaitable<void> sleep_for(std::chrono::microseconds delay);

  PGconn* conn_;
  struct Waits;
  std::unique_ptr<Waits> waits_;
  bool broken_ = false;
  bool cancelled_ = false;  // broken_ by cancel() alone
  bool busy_ = false;  // a query or COPY is in flight
  std::unique_ptr<PgCopyStream> copy_;  // while a COPY is read off the socket directly
  bool drained_ = false;  // the last read emptied the socket; nothing was waited for since
  // Bytes of rows read since the last wait for rows began, and when it began.
  std::size_t copied_since_wait_ = 0;
  std::chrono::steady_clock::time_point wait_began_;
};

}  // namespace sluice
