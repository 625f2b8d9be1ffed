#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/log.hpp"

namespace sluice {

// One request as the access log records it: views of the request and the responder, valid for
// the call that takes the record.
struct AccessRecord {
  std::chrono::system_clock::time_point time;  // when the request was read
  std::string_view client;                     // "127.0.0.1:51234"
  std::string_view method;
  std::string_view target;
  int status = 0;                  // 0 when nothing was answered
  std::uint64_t bytes = 0;         // body bytes handed to the socket
  std::chrono::microseconds duration{0};
  std::string_view request_id;
  std::string_view aborted;        // why the transfer was cut; "" when it was not
  std::string_view token;          // the name of the caller's API token; "" without one
};

// text: TIME CLIENT "METHOD TARGET" STATUS BYTES DURATIONms id=ID[ token=NAME][ aborted="REASON"]
// json: {"time", "client", "method", "target", "status", "bytes", "duration_ms",
//        "request_id"[, "token"][, "aborted"]}
// (the token's name from [auth], never the token)
std::string format_access_record(const AccessRecord& record, LogFormat format);
// The same line appended to `out` (without its newline).
void append_access_record(std::string& out, const AccessRecord& record, LogFormat format);

// Adds the record as one line of the server log, in the configured format, through the
// calling thread's LogBuffer: written once `executor` (the calling I/O thread's, which must run
// on this thread) has run the handlers ready before it, or at once when the buffer is full.
// Lines are not lost at shutdown: the server flushes every buffer when its threads are done.
void log_access(const AccessRecord& record, const boost::asio::any_io_executor& executor);

}  // namespace sluice
