#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace sluice {

// A download's file name, from a dataset's `file_name` template: `orders-{date}` becomes
// `orders-2026-11-22`. Placeholders (all in UTC, the time the download starts):
//   {dataset}   the dataset's name
//   {date}      2026-11-22
//   {datetime}  2026-11-22T081530Z (no ':' — it is not allowed in Windows file names)
//   {timestamp} 1795335330 (seconds since the Unix epoch)
// The extension (`.csv`, `.jsonl.gz`) is added by the caller.

// What is wrong with a template (unknown placeholder, unbalanced brace), or "" when it is good.
std::string file_name_template_problem(std::string_view pattern);

// REQUIRES: file_name_template_problem(pattern) is empty.
std::string expand_file_name(std::string_view pattern, std::string_view dataset,
                             std::chrono::system_clock::time_point now);

}  // namespace sluice
