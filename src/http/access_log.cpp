#include "http/access_log.hpp"

#include <boost/asio/post.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <string_view>

namespace sluice {
namespace {

// Long targets are cut: a log line stays readable and bounded.
constexpr std::size_t kMaxTarget = 2000;

void append_number(std::string& out, std::uint64_t value) {
  char buffer[24];
  const auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
  out.append(buffer, end);
}

// Milliseconds with one decimal ("1523.4"), as printf's "%.1f" of micros / 1000.0 writes them
// (the access log always did): integer arithmetic, except at a tie (x.x5 ms), where the
// double's own rounding decides, so printf is asked.
void append_milliseconds(std::string& out, std::chrono::microseconds duration) {
  const std::int64_t micros = duration.count() < 0 ? 0 : duration.count();
  std::int64_t tenths = micros / 100;
  const std::int64_t rest = micros % 100;
  if (rest == 50) {
    char tie[32];
    std::snprintf(tie, sizeof tie, "%.1f", static_cast<double>(micros) / 1000.0);
    out += tie;
    return;
  }
  if (rest > 50) ++tenths;
  append_number(out, static_cast<std::uint64_t>(tenths / 10));
  out += '.';
  out += static_cast<char>('0' + tenths % 10);
}

// A presigned link's signature (the `sig` query parameter of /v1/files) is a credential until
// the link expires: whoever reads the log must not be able to reuse the link. Long targets are
// cut. Returns `target` itself when neither applies (most requests), else the shown copy in
// `scratch`.
std::string_view shown_target(std::string_view target, std::string& scratch) {
  const std::size_t query = target.find('?');
  if (query == std::string_view::npos && target.size() <= kMaxTarget) return target;
  std::string_view shown = target;
  if (query != std::string_view::npos) {
    scratch.assign(target.substr(0, query + 1));
    std::size_t start = query + 1;
    for (;;) {
      const std::size_t end = std::min(target.find('&', start), target.size());
      const std::string_view param = target.substr(start, end - start);
      scratch += param.starts_with("sig=") ? std::string_view("sig=REDACTED") : param;
      if (end == target.size()) break;
      scratch += '&';
      start = end + 1;
    }
    shown = scratch;
  }
  if (shown.size() <= kMaxTarget) return shown;
  if (shown.data() != scratch.data()) scratch.assign(shown);
  scratch.resize(kMaxTarget);
  scratch += "...";
  return scratch;
}

}  // namespace

void append_access_record(std::string& out, const AccessRecord& record, LogFormat format) {
  thread_local std::string scratch;
  const std::string_view target = shown_target(record.target, scratch);
  if (format == LogFormat::kJson) {
    out += "{\"time\":\"";
    append_rfc3339_utc(out, record.time);
    out += "\",\"client\":";
    append_json_string(out, record.client);
    out += ",\"method\":";
    append_json_string(out, record.method);
    out += ",\"target\":";
    append_json_string(out, target);
    out += ",\"status\":";
    append_number(out, static_cast<std::uint64_t>(record.status < 0 ? 0 : record.status));
    out += ",\"bytes\":";
    append_number(out, record.bytes);
    out += ",\"duration_ms\":";
    append_milliseconds(out, record.duration);
    out += ",\"request_id\":";
    append_json_string(out, record.request_id);
    if (!record.token.empty()) {
      out += ",\"token\":";
      append_json_string(out, record.token);
    }
    if (!record.aborted.empty()) {
      out += ",\"aborted\":";
      append_json_string(out, record.aborted);
    }
    out += '}';
    return;
  }
  append_rfc3339_utc(out, record.time);
  out += ' ';
  append_log_text(out, record.client);
  out += " \"";
  append_log_text(out, record.method);
  out += ' ';
  append_log_text(out, target);
  out += "\" ";
  append_number(out, static_cast<std::uint64_t>(record.status < 0 ? 0 : record.status));
  out += ' ';
  append_number(out, record.bytes);
  out += ' ';
  append_milliseconds(out, record.duration);
  out += "ms id=";
  append_log_text(out, record.request_id);
  if (!record.token.empty()) {
    out += " token=";
    append_log_text(out, record.token);
  }
  if (!record.aborted.empty()) {
    out += " aborted=\"";
    append_log_text(out, record.aborted);
    out += '"';
  }
}

std::string format_access_record(const AccessRecord& record, LogFormat format) {
  std::string line;
  append_access_record(line, record, format);
  return line;
}

void log_access(const AccessRecord& record, const boost::asio::any_io_executor& executor) {
  LogBuffer& buffer = this_thread_log_buffer();
  bool first = false;
  bool full = false;
  {
    const std::lock_guard lock(buffer.mutex);
    first = buffer.lines.empty();
    append_access_record(buffer.lines, record, log_format());
    buffer.lines += '\n';
    full = buffer.lines.size() >= LogBuffer::kLogBufferBytes;
  }
  if (full) {
    flush_log_buffer(buffer);
  } else if (first) {
    // Runs after the handlers that are ready now (the other requests this thread answers in
    // this turn of its event loop): one write for all their lines.
    boost::asio::post(executor, [&buffer] { flush_log_buffer(buffer); });
  }
}

}  // namespace sluice
