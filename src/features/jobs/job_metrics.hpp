#pragma once

#include "core/metrics.hpp"

namespace sluice {

// The jobs feature's series (registered on first use; the feature registers them at start).
// Counted by the process that did it: submissions by `serve`, runs by whichever process ran
// them (serve's in-process workers or `sluice worker`).
struct JobMetrics {
  Counter& submitted;     // jobs created by POST /v1/jobs or Prefer: respond-async
  Counter& reused;        // ... of which completed at once from a finished result
  Counter& replayed;      // requests answered with an existing job (Idempotency-Key)
  Counter& started;       // attempts this process started
  Counter& succeeded;     // attempts that published their result
  Counter& failed;        // attempts that failed (retried or not)
  Counter& lost;          // attempts stopped because the job was cancelled or taken over
  Counter& handed_back;   // attempts handed back at shutdown
  Counter& result_bytes;  // bytes written into results
  Gauge& running;         // attempts running in this process now
};

const JobMetrics& job_metrics();

}  // namespace sluice
