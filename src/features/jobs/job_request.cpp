#include "features/jobs/job_request.hpp"

#include <boost/json.hpp>
#include <algorithm>
#include <charconv>
#include <ctime>

#include "core/api_error.hpp"
#include "core/sha256.hpp"
#include "core/utf8.hpp"

namespace sluice {
namespace {

namespace json = boost::json;

[[noreturn]] void invalid(std::string_view field, std::string_view problem) {
  throw ApiError(400, "invalid_field", std::string(field) + ": " + std::string(problem),
                 {{"field", std::string(field)}});
}

// A filter value as the URL form writes it: numbers and booleans as text, a list joined by ','.
std::string scalar_text(const json::value& value, std::string_view field) {
  if (value.is_string()) return std::string(value.get_string());
  if (value.is_int64()) return std::to_string(value.get_int64());
  if (value.is_uint64()) return std::to_string(value.get_uint64());
  if (value.is_double()) {
    // As the URL form writes it: 1.95, not JSON's 1.95E0 (which no filter type reads).
    char digits[512];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value.get_double(),
                                         std::chars_format::fixed);
    if (ec != std::errc()) invalid(field, "a number out of range");
    return std::string(digits, end);
  }
  if (value.is_bool()) return value.get_bool() ? "true" : "false";
  invalid(field, "expected a string, a number or a boolean");
}

std::string list_text(const json::value& value, std::string_view field) {
  if (!value.is_array()) return scalar_text(value, field);
  std::string joined;
  for (const json::value& item : value.get_array()) {
    if (!joined.empty()) joined += ',';
    joined += scalar_text(item, field);
  }
  if (joined.empty()) invalid(field, "an empty list");
  return joined;
}

std::int64_t integer(const json::value& value, std::string_view field, std::int64_t min,
                     std::int64_t max) {
  std::int64_t number = 0;
  if (value.is_int64()) {
    number = value.get_int64();
  } else if (value.is_uint64() && value.get_uint64() <= static_cast<std::uint64_t>(max)) {
    number = static_cast<std::int64_t>(value.get_uint64());
  } else {
    invalid(field, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  if (number < min || number > max) {
    invalid(field, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return number;
}

std::string text(const json::value& value, std::string_view field) {
  if (!value.is_string()) invalid(field, "expected a string");
  return std::string(value.get_string());
}

// "2026-12-07T10:00:00Z" or with fractional seconds; only UTC ('Z').
std::int64_t parse_instant(std::string_view text) {
  std::tm tm{};
  int millis = 0;
  char zone = 0;
  std::string copy(text);
  int used = 0;
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6) {
    invalid("run_at", "expected an RFC 3339 UTC time such as 2026-12-07T10:00:00Z, or ms since the epoch");
  }
  std::string_view rest = std::string_view(copy).substr(static_cast<std::size_t>(used));
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 3) millis = millis * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    for (; digits < 3; ++digits) millis *= 10;
  }
  if (rest.size() == 1) zone = rest.front();
  if (zone != 'Z' && zone != 'z') {
    invalid("run_at", "expected an RFC 3339 UTC time ending in Z, such as 2026-12-07T10:00:00Z");
  }
  const std::tm asked = tm;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t seconds = timegm(&tm);
  // timegm normalises (month 13 is next January): a time that does not come back unchanged
  // does not exist.
  std::tm back{};
  gmtime_r(&seconds, &back);
  if (back.tm_year + 1900 != asked.tm_year || back.tm_mon + 1 != asked.tm_mon ||
      back.tm_mday != asked.tm_mday || back.tm_hour != asked.tm_hour ||
      back.tm_min != asked.tm_min || back.tm_sec != asked.tm_sec) {
    invalid("run_at", "no such time: " + std::string(text));
  }
  return static_cast<std::int64_t>(seconds) * 1000 + millis;
}

constexpr std::string_view kOutputFields[] = {"header", "bom", "delimiter", "line_ending"};

}  // namespace

std::string job_file_name_problem(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > 200) return "at most 200 bytes";
  if (name.front() == '.') return "must not start with '.'";
  if (!valid_utf8(name)) return "must be UTF-8";
  for (char c : name) {
    if (c == '/' || c == '\\') return "must not contain '/' or '\\'";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "must not contain control characters";
  }
  return {};
}

JobSubmission parse_job_body(std::string_view body) {
  json::value document;
  try {
    document = json::parse(body);
  } catch (const std::exception& error) {
    throw ApiError(400, "invalid_json", std::string("the body is not JSON: ") + error.what());
  }
  if (!document.is_object()) {
    throw ApiError(400, "invalid_json", "the body must be a JSON object");
  }
  JobSubmission job;
  job.request.format = Format::kCsv;
  bool has_dataset = false;
  std::string export_field;  // a field only an export takes (not with "cube")
  for (const auto& [key, value] : document.get_object()) {
    if (key != "cube" && key != "full" && key != "priority" && key != "run_at" && key != "max_attempts") {
      export_field = key;
    }
    if (key == "cube") {
      job.cube = text(value, key);
      if (job.cube.empty()) invalid(key, "must not be empty");
    } else if (key == "full") {
      if (!value.is_bool()) invalid(key, "expected true or false");
      job.full_build = value.get_bool();
    } else if (key == "dataset") {
      job.request.dataset = text(value, key);
      has_dataset = true;
    } else if (key == "format") {
      const std::optional<Format> format = parse_format(text(value, key));
      if (!format) invalid(key, "expected one of: csv, tsv, jsonl, json");
      job.request.format = *format;
    } else if (key == "compression") {
      const std::string name = text(value, key);
      const std::optional<Compression> compression = parse_compression(name);
      if (!compression) invalid(key, "expected one of: none, gzip, zstd");
      job.request.compression = *compression;
    } else if (key == "filters") {
      if (!value.is_object()) invalid(key, "expected an object of filter names and values");
      for (const auto& [name, filter] : value.get_object()) {
        const std::string field = "filters." + std::string(name);
        job.request.params.emplace_back(std::string(name), list_text(filter, field));
      }
    } else if (key == "columns" || key == "order") {
      job.request.params.emplace_back(std::string(key), list_text(value, key));
    } else if (key == "limit") {
      job.request.params.emplace_back("limit", std::to_string(integer(value, key, 0, INT64_MAX)));
    } else if (std::ranges::find(kOutputFields, std::string_view(key)) != std::end(kOutputFields)) {
      job.request.params.emplace_back(std::string(key), scalar_text(value, key));
    } else if (key == "file_name") {
      job.file_name = text(value, key);
      if (std::string problem = job_file_name_problem(job.file_name); !problem.empty()) {
        invalid(key, problem);
      }
    } else if (key == "priority") {
      job.priority = static_cast<int>(integer(value, key, -100, 100));
    } else if (key == "run_at") {
      job.run_at = value.is_string() ? parse_instant(value.get_string())
                                     : integer(value, key, 0, INT64_MAX);
    } else if (key == "max_attempts") {
      job.max_attempts = static_cast<int>(integer(value, key, 1, 100));
    } else if (key == "expires_in") {
      job.expires_in = std::chrono::seconds(integer(value, key, 1, 366LL * 86'400));
    } else {
      throw ApiError(400, "unknown_field",
                     "unknown field '" + std::string(key) +
                         "' (expected: dataset, format, compression, filters, columns, order, "
                         "limit, header, bom, delimiter, line_ending, file_name, priority, run_at, "
                         "max_attempts, expires_in; or for a cube build: cube, full, priority, "
                         "run_at, max_attempts)",
                     {{"field", std::string(key)}});
    }
  }
  if (!job.cube.empty()) {
    if (!export_field.empty()) {
      invalid(export_field, "not with \"cube\": a job builds a cube or exports a dataset");
    }
    return job;
  }
  if (document.get_object().contains("full")) invalid("full", "only with \"cube\"");
  if (!has_dataset || job.request.dataset.empty()) invalid("dataset", "required (or \"cube\")");
  return job;
}

std::string job_spec_json(const JobSubmission& submission) {
  json::object spec;
  if (!submission.cube.empty()) {
    spec["cube"] = submission.cube;
    spec["full"] = submission.full_build;
    return json::serialize(spec);
  }
  spec["dataset"] = submission.request.dataset;
  spec["format"] = file_extension(submission.request.format);
  spec["compression"] = submission.request.compression == Compression::kNone
                            ? std::string_view("none")
                            : compression_coding(submission.request.compression);
  json::array params;
  for (const auto& [name, value] : submission.request.params) {
    params.push_back(json::array{json::string(name), json::string(value)});
  }
  spec["params"] = std::move(params);
  spec["file_name"] = submission.file_name;
  spec["expires_in"] = submission.expires_in.count();
  return json::serialize(spec);
}

JobSubmission parse_job_spec(std::string_view text) {
  try {
    const json::object spec = json::parse(text).as_object();
    JobSubmission job;
    if (spec.contains("cube")) {
      job.cube = json::value_to<std::string>(spec.at("cube"));
      job.full_build = spec.at("full").as_bool();
      return job;
    }
    job.request.dataset = json::value_to<std::string>(spec.at("dataset"));
    job.request.format = parse_format(spec.at("format").as_string()).value();
    job.request.compression = parse_compression(spec.at("compression").as_string()).value();
    for (const json::value& param : spec.at("params").as_array()) {
      const json::array& pair = param.as_array();
      job.request.params.emplace_back(json::value_to<std::string>(pair.at(0)),
                                      json::value_to<std::string>(pair.at(1)));
    }
    job.file_name = json::value_to<std::string>(spec.at("file_name"));
    job.expires_in = std::chrono::seconds(spec.at("expires_in").to_number<std::int64_t>());
    return job;
  } catch (const std::exception& error) {
    throw ApiError(500, "invalid_job_spec", std::string("the stored job cannot be read: ") + error.what());
  }
}

std::string cube_job_dataset(std::string_view cube) { return "cube:" + std::string(cube); }

std::string job_fingerprint(const ExportRequest& request) {
  QueryParams params = request.params;
  std::stable_sort(params.begin(), params.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  json::array canonical;
  canonical.push_back(json::string(request.dataset));
  canonical.push_back(json::string(file_extension(request.format)));
  canonical.push_back(json::string(compression_suffix(request.compression)));
  for (const auto& [name, value] : params) {
    canonical.push_back(json::array{json::string(name), json::string(value)});
  }
  Sha256 digest;
  digest.update(json::serialize(canonical));
  return to_hex(digest.final());
}

}  // namespace sluice
