#include "features/jobs/job_metrics.hpp"

namespace sluice {

const JobMetrics& job_metrics() {
  static const JobMetrics instance{
      metrics().counter("sluice_jobs_submitted_total",
                        "Background jobs created (POST /v1/jobs, Prefer: respond-async)."),
      metrics().counter("sluice_jobs_reused_total",
                        "Jobs completed at once from a finished result of the same request and "
                        "data version."),
      metrics().counter("sluice_jobs_replayed_total",
                        "Submissions answered with an existing job (same Idempotency-Key)."),
      metrics().counter("sluice_job_attempts_started_total", "Job attempts this process started."),
      metrics().counter("sluice_job_attempts_succeeded_total",
                        "Job attempts that published their result."),
      metrics().counter("sluice_job_attempts_failed_total",
                        "Job attempts that failed (retried later or failed for good)."),
      metrics().counter("sluice_job_attempts_lost_total",
                        "Job attempts stopped because the job was cancelled or taken over after "
                        "its lease lapsed (nothing published)."),
      metrics().counter("sluice_job_attempts_handed_back_total",
                        "Job attempts handed back to the queue at shutdown."),
      metrics().counter("sluice_job_result_bytes_total", "Bytes written into job results."),
      metrics().gauge("sluice_jobs_running", "Job attempts running in this process."),
  };
  return instance;
}

}  // namespace sluice
