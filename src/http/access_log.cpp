#include "http/access_log.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>

namespace sluice {
namespace {

// Long targets are cut: a log line stays readable and bounded.
constexpr std::size_t kMaxTarget = 2000;

std::string milliseconds(std::chrono::microseconds duration) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", static_cast<double>(duration.count()) / 1000.0);
  return buffer;
}

// A presigned link's signature (the `sig` query parameter of /v1/files) is a credential until
// the link expires: whoever reads the log must not be able to reuse the link.
std::string without_signatures(const std::string& target) {
  const std::size_t query = target.find('?');
  if (query == std::string::npos) return target;
  std::string shown = target.substr(0, query + 1);
  std::size_t start = query + 1;
  for (;;) {
    const std::size_t end = std::min(target.find('&', start), target.size());
    const std::string_view param(target.data() + start, end - start);
    shown += param.starts_with("sig=") ? std::string_view("sig=REDACTED") : param;
    if (end == target.size()) break;
    shown += '&';
    start = end + 1;
  }
  return shown;
}

std::string shown_target(const std::string& target) {
  std::string shown = without_signatures(target);
  if (shown.size() <= kMaxTarget) return shown;
  return shown.substr(0, kMaxTarget) + "...";
}

}  // namespace

std::string format_access_record(const AccessRecord& record, LogFormat format) {
  const std::string time = rfc3339_utc(record.time);
  if (format == LogFormat::kJson) {
    std::string line = "{\"time\":\"" + time + "\",\"client\":" + json_string(record.client) +
                       ",\"method\":" + json_string(record.method) +
                       ",\"target\":" + json_string(shown_target(record.target)) +
                       ",\"status\":" + std::to_string(record.status) +
                       ",\"bytes\":" + std::to_string(record.bytes) +
                       ",\"duration_ms\":" + milliseconds(record.duration) +
                       ",\"request_id\":" + json_string(record.request_id);
    if (!record.aborted.empty()) line += ",\"aborted\":" + json_string(record.aborted);
    return line + "}";
  }
  std::string line = time + ' ' + escape_log_text(record.client) + " \"" +
                     escape_log_text(record.method) + ' ' +
                     escape_log_text(shown_target(record.target)) + "\" " +
                     std::to_string(record.status) + ' ' + std::to_string(record.bytes) + ' ' +
                     milliseconds(record.duration) + "ms id=" + escape_log_text(record.request_id);
  if (!record.aborted.empty()) line += " aborted=\"" + escape_log_text(record.aborted) + '"';
  return line;
}

void log_access(const AccessRecord& record) {
  write_log_line(format_access_record(record, log_format()));
}

}  // namespace sluice
