#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

// The server log (stderr): one line per event, each written whole with one write(2) under a
// lock, so lines of different threads never interleave. `text`: "TIME message", or for the
// access log "TIME client method target status bytes duration id". `json`: one JSON object per
// line ({"time": ..., "message": ...} or the access record's fields).
// Thread-safe.
enum class LogFormat { kText, kJson };

void set_log_format(LogFormat format);
LogFormat log_format();

// RFC 3339 UTC with milliseconds: "2026-12-06T21:55:09.123Z".
std::string rfc3339_utc(std::chrono::system_clock::time_point time);

// A plain event ("shutting down: ...").
void log_event(std::string_view message);

// Writes `line` (without its newline) as one line of the log.
void write_log_line(std::string line);

// `text` as it appears in a text log line: control characters, quotes and backslashes
// escaped (\n, \x01, \"), so a request target cannot forge a line.
std::string escape_log_text(std::string_view text);
// `text` as a JSON string, quotes included.
std::string json_string(std::string_view text);

}  // namespace sluice
