#include "core/log.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <mutex>

#include "core/utf8.hpp"

namespace sluice {
namespace {

std::atomic<LogFormat> format{LogFormat::kText};
// One write(2) at a time: lines never interleave. Taken before a registry's or a buffer's.
std::mutex write_mutex;

constexpr char kHex[] = "0123456789abcdef";

// Every thread's LogBuffer, so that an unbuffered line and the shutdown write them. Never
// destroyed: a thread that ends late still finds it.
struct BufferRegistry {
  std::mutex mutex;
  std::vector<LogBuffer*> buffers;
};

BufferRegistry& registry() {
  static auto* const instance = new BufferRegistry;
  return *instance;
}

void write_all(std::string_view bytes) {
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(STDERR_FILENO, bytes.data() + written, bytes.size() - written);
    if (n > 0) {
      written += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      return;  // nowhere to log to
    }
  }
}

// Moves what every buffer holds to the end of `out`. Under write_mutex.
void take_buffered_lines(std::string& out) {
  BufferRegistry& all = registry();
  const std::lock_guard lock(all.mutex);
  for (LogBuffer* buffer : all.buffers) {
    const std::lock_guard buffer_lock(buffer->mutex);
    out += buffer->lines;
    buffer->lines.clear();
  }
}

struct ThreadLogBuffer {
  ThreadLogBuffer() {
    BufferRegistry& all = registry();
    const std::lock_guard lock(all.mutex);
    all.buffers.push_back(&buffer);
  }
  ~ThreadLogBuffer() {
    flush_log_buffer(buffer);
    BufferRegistry& all = registry();
    const std::lock_guard lock(all.mutex);
    std::erase(all.buffers, &buffer);
  }
  ThreadLogBuffer(const ThreadLogBuffer&) = delete;
  ThreadLogBuffer& operator=(const ThreadLogBuffer&) = delete;

  LogBuffer buffer;
};

}  // namespace

void set_log_format(LogFormat chosen) { format.store(chosen); }
LogFormat log_format() { return format.load(); }

void append_rfc3339_utc(std::string& out, std::chrono::system_clock::time_point time) {
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const std::int64_t second = millis / 1000;
  // gmtime_r + strftime cost more than the rest of an access line: once per second and thread.
  thread_local std::int64_t cached_second = -1;
  thread_local std::string cached;  // "2026-12-06T21:55:09"
  if (second != cached_second) {
    const auto seconds = static_cast<std::time_t>(second);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buffer[40];
    const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
    cached.assign(buffer, length);
    cached_second = second;
  }
  out += cached;
  const int fraction = static_cast<int>(millis % 1000);
  out += '.';
  out += static_cast<char>('0' + fraction / 100);
  out += static_cast<char>('0' + fraction / 10 % 10);
  out += static_cast<char>('0' + fraction % 10);
  out += 'Z';
}

std::string rfc3339_utc(std::chrono::system_clock::time_point time) {
  std::string out;
  append_rfc3339_utc(out, time);
  return out;
}

LogBuffer& this_thread_log_buffer() {
  thread_local ThreadLogBuffer mine;
  return mine.buffer;
}

void flush_log_buffer(LogBuffer& buffer) {
  const std::lock_guard write_lock(write_mutex);
  std::string pending;
  {
    const std::lock_guard lock(buffer.mutex);
    if (buffer.lines.empty()) return;  // (written already, with another line)
    pending.swap(buffer.lines);
  }
  write_all(pending);
  // The buffer keeps its capacity: the next batch appends without growing it again.
  pending.clear();
  const std::lock_guard lock(buffer.mutex);
  if (buffer.lines.empty()) buffer.lines.swap(pending);
}

void flush_log_buffers() {
  const std::lock_guard write_lock(write_mutex);
  std::string pending;
  take_buffered_lines(pending);
  write_all(pending);
}

namespace {

// Escapes for a text line (\xHH) or a JSON string (\u00HH): the same characters either way.
void append_escaped(std::string& out, std::string_view text, bool json) {
  auto plain = [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 0x20 && byte < 0x7f && c != '"' && c != '\\';
  };
  // Most values (paths, ids, addresses) need no escape: appended in one piece.
  if (std::all_of(text.begin(), text.end(), plain)) {
    out += text;
    return;
  }
  // Invalid UTF-8 would make invalid JSON: then every byte >= 0x80 is escaped too.
  const bool escape_high = json && !valid_utf8(text);
  out.reserve(out.size() + text.size() + 2);
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
}

}  // namespace

void append_log_text(std::string& out, std::string_view text) { append_escaped(out, text, false); }

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  append_escaped(out, text, true);
  out += '"';
}

std::string escape_log_text(std::string_view text) {
  std::string out;
  append_log_text(out, text);
  return out;
}

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

void write_log_line(std::string line) {
  line += '\n';
  const std::lock_guard lock(write_mutex);
  std::string pending;
  take_buffered_lines(pending);
  if (pending.empty()) {
    write_all(line);
  } else {
    pending += line;
    write_all(pending);
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
