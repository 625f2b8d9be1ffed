#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "pipeline/export_request.hpp"

namespace sluice {

// What a background job runs: an export request plus how it is queued and kept. Parsed from
// the JSON body of POST /v1/jobs (or taken from an export URL sent with Prefer: respond-async),
// stored in the queue as canonical JSON (the job's spec), read back by the worker.
struct JobSubmission {
  ExportRequest request;
  // A cube build instead of an export ({"cube": "sales"}): `request` is then empty.
  std::string cube;
  bool full_build = false;              // the build ignores the cube's changed_query
  std::string file_name;                // the result's name; empty: the dataset's, with extensions
  int priority = 0;                     // -100..100, higher first
  std::int64_t run_at = 0;              // ms since the epoch; 0: now
  int max_attempts = 0;                 // 0: [queue] max_attempts
  std::chrono::seconds expires_in{0};   // the result's lifetime; 0: [queue] result_ttl_s
};

// The body of POST /v1/jobs:
//   {"dataset": "orders", "format": "csv", "compression": "gzip",
//    "filters": {"country": "DE,FR", "amount.gte": 10, "status": ["paid", "shipped"]},
//    "columns": ["id", "email"] | "id,email", "order": "-id" | ["-id"], "limit": 1000,
//    "header": false, "bom": true, "delimiter": ";", "line_ending": "lf",
//    "file_name": "orders-de.csv.gz", "priority": 0, "run_at": "2026-12-07T10:00:00Z" | ms,
//    "max_attempts": 3, "expires_in": 3600}
// or a cube build: {"cube": "sales", "full": false, "priority": 0, "run_at": ..., "max_attempts": 3}
// Throws ApiError 400: invalid_json, invalid_field (naming the field and what it takes),
// unknown_field. Filter names and values are checked later against the dataset (plan_export).
JobSubmission parse_job_body(std::string_view body);

// The canonical JSON a job is stored as, and back. parse_job_spec() trusts its input (it came
// from job_spec_json) but still throws ApiError(500) for a spec it cannot read.
std::string job_spec_json(const JobSubmission& submission);
JobSubmission parse_job_spec(std::string_view spec);

// SHA-256 (hex) of what the export asks for: dataset, format, compression and the parameters in
// a canonical order. Equal for equal results, whatever the name or priority.
std::string job_fingerprint(const ExportRequest& request);

// The queue's `dataset` of a cube build job: "cube:NAME" (GET /v1/jobs?dataset=cube:NAME).
std::string cube_job_dataset(std::string_view cube);

// Why `name` cannot be a result's file name, or "" when it can: one path segment of at most
// 200 bytes, no '/', '\\', control characters, leading '.'.
std::string job_file_name_problem(std::string_view name);

}  // namespace sluice
