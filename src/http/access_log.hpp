#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/log.hpp"

namespace sluice {

// One request as the access log records it.
struct AccessRecord {
  std::chrono::system_clock::time_point time;  // when the request was read
  std::string client;                          // "127.0.0.1:51234"
  std::string method;
  std::string target;
  int status = 0;                  // 0 when nothing was answered
  std::uint64_t bytes = 0;         // body bytes handed to the socket
  std::chrono::microseconds duration{0};
  std::string request_id;
  std::string aborted;             // why the transfer was cut; "" when it was not
};

// text: TIME CLIENT "METHOD TARGET" STATUS BYTES DURATIONms id=ID[ aborted="REASON"]
// json: {"time", "client", "method", "target", "status", "bytes", "duration_ms",
//        "request_id"[, "aborted"]}
std::string format_access_record(const AccessRecord& record, LogFormat format);

// Writes the record as one line of the server log, in the configured format.
void log_access(const AccessRecord& record);

}  // namespace sluice
