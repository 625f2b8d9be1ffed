#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>
#include <mutex>

#include "core/utf8.hpp"

namespace sluice {
namespace {

std::atomic<LogFormat> format{LogFormat::kText};
std::mutex write_mutex;

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

void set_log_format(LogFormat chosen) { format.store(chosen); }
LogFormat log_format() { return format.load(); }

std::string rfc3339_utc(std::chrono::system_clock::time_point time) {
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string out(buffer, length);
  const int fraction = static_cast<int>(millis % 1000);
  out += '.';
  out += static_cast<char>('0' + fraction / 100);
  out += static_cast<char>('0' + fraction / 10 % 10);
  out += static_cast<char>('0' + fraction % 10);
  out += 'Z';
  return out;
}

namespace {

// Escapes for a text line (\xHH) or a JSON string (\u00HH): the same characters either way.
std::string escaped(std::string_view text, bool json) {
  // Invalid UTF-8 would make invalid JSON: then every byte >= 0x80 is escaped too.
  const bool escape_high = json && !valid_utf8(text);
  std::string out;
  out.reserve(text.size() + 2);
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f || (escape_high && byte >= 0x80)) {
      out += json ? "\\u00" : "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escape_log_text(std::string_view text) { return escaped(text, false); }

std::string json_string(std::string_view text) { return '"' + escaped(text, true) + '"'; }

void write_log_line(std::string line) {
  line += '\n';
  std::lock_guard lock(write_mutex);
  std::size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (n > 0) {
      written += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      return;  // nowhere to log to
    }
  }
}

void log_event(std::string_view message) {
  const std::string time = rfc3339_utc(std::chrono::system_clock::now());
  if (log_format() == LogFormat::kJson) {
    write_log_line("{\"time\":\"" + time + "\",\"message\":" + json_string(message) + "}");
  } else {
    write_log_line(time + " " + escape_log_text(message));
  }
}

}  // namespace sluice
