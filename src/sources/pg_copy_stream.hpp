#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sluice {

// What PgCopyStream::next() found.
enum class PgCopyStreamEvent {
  kStarted,   // CopyOutResponse: the server streams rows from here on
  kRow,       // `row` holds a CopyData message's bytes (valid until the next call)
  kNeedMore,  // no whole message left: read into space(), then call next() again
  kEnd,       // ReadyForQuery: the exchange is over (check error())
};

// The backend's side of one `COPY ... TO STDOUT` on the wire (protocol 3), parsed from the bytes
// as they are read: CopyOutResponse, one CopyData message per row, CopyDone, CommandComplete,
// ReadyForQuery; an ErrorResponse instead at any point; NoticeResponse, ParameterStatus and
// NotificationResponse may come in between and are skipped.
//
// Why not libpq's PQgetCopyData: it allocates and copies every row and reads the socket 16 KiB
// at a time, which made moving the rows cost more CPU than producing them. Here the socket is
// read into one buffer (64 KiB, larger only while one message is larger) and rows are views
// into it. No I/O: the caller reads into space() and reports filled().
// Not thread-safe.
class PgCopyStream {
 public:
  using Event = PgCopyStreamEvent;

  // A field of the ErrorResponse, as libpq names them.
  struct Error {
    std::string sqlstate;  // 'C'
    std::string message;   // "SEVERITY:  M" (+ "\nDETAIL:  D", "\nHINT:  H"), like libpq's
  };

  static constexpr std::size_t kBufferBytes = 64 * 1024;
  // PostgreSQL's own limit for one message (MaxAllocSize, 1 GiB - 1) plus its header.
  static constexpr std::size_t kMaxMessageBytes = 0x3fffffff + 5;

  PgCopyStream();

  // Where to read next: never empty; grows (doubling, as its bytes arrive) to hold a message
  // larger than the buffer.
  std::span<char> space();
  void filled(std::size_t bytes);

  // The next event. Throws std::runtime_error on bytes that break the protocol (a type that
  // has no place here, a length out of range). After kEnd, buffered() > 0 means the server sent
  // more than the exchange (the caller's protocol violation to report).
  Event next(std::string_view& row);

  // The ErrorResponse, if one came (the COPY failed; ReadyForQuery follows it).
  const std::optional<Error>& error() const { return error_; }
  // The transaction status of ReadyForQuery: 'I', 'T' or 'E' (0 before it).
  char transaction_status() const { return status_; }
  // Bytes read but not yet parsed (0 at a message boundary, and after a proper ReadyForQuery).
  std::size_t buffered() const { return end_ - begin_; }
  // Gives the memory of a buffer grown for a big message back, keeping the default size.
  void shrink();

 private:
  void make_room(std::size_t needed);
  void read_error(std::string_view body);

  std::unique_ptr<char[]> buffer_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;  // first unparsed byte
  std::size_t end_ = 0;    // one past the last byte read
  std::size_t want_ = 5;   // bytes the message at begin_ needs in the buffer
  bool copying_ = false;
  bool ended_ = false;
  char status_ = 0;
  std::optional<Error> error_;
};

}  // namespace sluice
