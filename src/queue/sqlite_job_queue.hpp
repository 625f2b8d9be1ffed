#pragma once

#include <filesystem>
#include <memory>

#include "queue/job_queue.hpp"

namespace sluice {

// The job table in one SQLite file (WAL): the embedded default, no server. One connection
// behind a mutex per process; several processes may share the file (`sluice worker` beside
// `sluice serve` on one machine): writes take the database lock with BEGIN IMMEDIATE and wait
// for it up to `busy_timeout`. A claim is one UPDATE ... RETURNING under that lock, so two
// claimers never share a job. Other processes' changes are noticed by polling only.
std::unique_ptr<JobQueue> open_sqlite_job_queue(const std::filesystem::path& file,
                                                QueueTuning tuning);

}  // namespace sluice
