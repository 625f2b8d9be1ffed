#include "sources/pg_copy_stream.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "sources/pg_wire_bytes.hpp"

namespace sluice {
namespace {

[[noreturn]] void violation(const std::string& what) {
  throw std::runtime_error("PostgreSQL protocol violation during COPY: " + what);
}

std::string type_name(char type) {
  const auto byte = static_cast<unsigned char>(type);
  if (byte >= 0x20 && byte < 0x7f) return std::string("'") + type + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[byte >> 4] + kHex[byte & 15];
}

}  // namespace

PgCopyStream::PgCopyStream()
    : buffer_(new char[kBufferBytes]), capacity_(kBufferBytes) {}

std::span<char> PgCopyStream::space() {
  make_room(want_);
  return {buffer_.get() + end_, capacity_ - end_};
}

void PgCopyStream::filled(std::size_t bytes) {
  if (bytes > capacity_ - end_) throw std::logic_error("PgCopyStream::filled beyond space()");
  end_ += bytes;
}

void PgCopyStream::make_room(std::size_t needed) {
  // Only a partial message is left when more is read: moving it to the front is cheap.
  if (begin_ > 0 && (end_ == capacity_ || capacity_ - begin_ < needed)) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (capacity_ < needed && end_ == capacity_) {
    // A message larger than the buffer: grow as its bytes arrive (doubling), not to the size
    // its header claims before they do.
    const std::size_t grown = std::min(needed, std::max(capacity_ * 2, end_ + kBufferBytes));
    std::unique_ptr<char[]> bigger(new char[grown]);
    std::memcpy(bigger.get(), buffer_.get(), end_);
    buffer_ = std::move(bigger);
    capacity_ = grown;
  }
}

void PgCopyStream::shrink() {
  if (capacity_ == kBufferBytes || end_ - begin_ > kBufferBytes) return;
  std::unique_ptr<char[]> smaller(new char[kBufferBytes]);
  std::memcpy(smaller.get(), buffer_.get() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
  buffer_ = std::move(smaller);
  capacity_ = kBufferBytes;
}

PgCopyStream::Event PgCopyStream::next(std::string_view& row) {
  for (;;) {
    const std::size_t available = end_ - begin_;
    if (ended_) return Event::kEnd;
    if (available < 5) {
      want_ = 5;
      return Event::kNeedMore;
    }
    const char* message = buffer_.get() + begin_;
    const char type = message[0];
    const std::uint32_t length = load_big_endian<std::uint32_t>(message + 1);  // counts itself, not the type
    if (length < 4 || length > kMaxMessageBytes - 1) {
      violation("message " + type_name(type) + " with length " + std::to_string(length));
    }
    const std::size_t total = std::size_t{length} + 1;
    if (available < total) {
      want_ = total;
      return Event::kNeedMore;
    }
    want_ = 5;
    const std::string_view body(message + 5, length - 4);
    begin_ += total;
    switch (type) {
      case 'd':  // CopyData: one row
        if (!copying_) violation("CopyData before CopyOutResponse");
        row = body;
        return Event::kRow;
      case 'H':  // CopyOutResponse
        if (copying_) violation("a second CopyOutResponse");
        copying_ = true;
        return Event::kStarted;
      case 'E':  // ErrorResponse: ReadyForQuery follows
        read_error(body);
        break;
      case 'Z':  // ReadyForQuery
        if (body.size() != 1) violation("ReadyForQuery of " + std::to_string(body.size()) + " bytes");
        status_ = body[0];
        ended_ = true;
        break;
      case 'c':  // CopyDone
      case 'C':  // CommandComplete
      case 'N':  // NoticeResponse
      case 'S':  // ParameterStatus
      case 'A':  // NotificationResponse
        break;
      default:
        violation("unexpected message " + type_name(type));
    }
  }
}

void PgCopyStream::read_error(std::string_view body) {
  std::string severity;
  std::string message;
  std::string detail;
  std::string hint;
  Error error;
  while (!body.empty() && body.front() != '\0') {
    const char code = body.front();
    body.remove_prefix(1);
    const std::size_t end = body.find('\0');
    if (end == std::string_view::npos) violation("an unterminated ErrorResponse field");
    const std::string_view value = body.substr(0, end);
    body.remove_prefix(end + 1);
    switch (code) {
      case 'S': severity = value; break;
      case 'C': error.sqlstate = value; break;
      case 'M': message = value; break;
      case 'D': detail = value; break;
      case 'H': hint = value; break;
      default: break;
    }
  }
  error.message = (severity.empty() ? "ERROR" : severity) + ":  " + message;
  if (!detail.empty()) error.message += "\nDETAIL:  " + detail;
  if (!hint.empty()) error.message += "\nHINT:  " + hint;
  if (!error_) error_ = std::move(error);  // the first one says why
}

}  // namespace sluice
