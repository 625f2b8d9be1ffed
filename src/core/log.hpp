#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

// The server log (stderr): one line per event, each written whole with one write(2) under a
// lock, so lines of different threads never interleave. `text`: "TIME message", or for the
// access log "TIME client method target status bytes duration id". `json`: one JSON object per
// line ({"time": ..., "message": ...} or the access record's fields).
// Lines produced at a high rate (the access log: one per request) may go through a thread's
// LogBuffer instead, written in batches (see below).
// Thread-safe.
enum class LogFormat { kText, kJson };

void set_log_format(LogFormat format);
LogFormat log_format();

// RFC 3339 UTC with milliseconds: "2026-12-06T21:55:09.123Z".
std::string rfc3339_utc(std::chrono::system_clock::time_point time);
// The same, appended to `out` (the date and time of the second are formatted once per second
// and thread).
void append_rfc3339_utc(std::string& out, std::chrono::system_clock::time_point time);

// A plain event ("shutting down: ...").
void log_event(std::string_view message);

// Writes `line` (without its newline) as one line of the log. What the threads' LogBuffers
// hold is written first, in the same write(2): the log keeps the order lines were made in.
void write_log_line(std::string line);

// Whole lines of one thread waiting to be written: a write(2) per access line cost a tenth of
// a small request's CPU (and its lock, taken for the write, made the I/O threads wait for each
// other). Whoever appends arranges the flush (the HTTP server: once the I/O thread has run the
// handlers that were ready, so a line waits microseconds, not for a timer); a buffer is also
// written when a thread appends past kLogBufferBytes, when any unbuffered line is written,
// when its thread ends, and by flush_log_buffers() (at shutdown).
struct LogBuffer {
  static constexpr std::size_t kLogBufferBytes = 64 * 1024;
  std::mutex mutex;   // the owning thread appends; any thread may flush
  std::string lines;  // whole lines, each ending in '\n'
};

// The calling thread's buffer (registered on first use, flushed and removed when the thread
// ends).
LogBuffer& this_thread_log_buffer();
// Writes what `buffer` holds with one write(2), whole, between the lines of other threads.
void flush_log_buffer(LogBuffer& buffer);
// Writes every thread's buffer: at shutdown, once the threads that append are done.
void flush_log_buffers();

// `text` as it appears in a text log line: control characters, quotes and backslashes
// escaped (\n, \x01, \"), so a request target cannot forge a line.
std::string escape_log_text(std::string_view text);
// `text` as a JSON string, quotes included.
std::string json_string(std::string_view text);
// The same two, appended to `out`.
void append_log_text(std::string& out, std::string_view text);
void append_json_string(std::string& out, std::string_view text);

}  // namespace sluice
