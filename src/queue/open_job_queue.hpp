#pragma once

#include <memory>

#include "core/config.hpp"
#include "queue/job_queue.hpp"

namespace sluice {

// The job queue [queue] describes (SQLite file or PostgreSQL), its tables created when missing.
// Throws QueueError naming the file or the server's message.
std::unique_ptr<JobQueue> open_job_queue(const QueueConfig& config);

}  // namespace sluice
