#include "s3/s3_metrics.hpp"

namespace sluice {

namespace {

Counter& requests(const char* outcome) {
  return metrics().counter("sluice_s3_requests_total",
                           "S3 request attempts by outcome (HTTP status class, or error when no "
                           "answer came).",
                           std::string("outcome=\"") + outcome + "\"");
}

}  // namespace

void S3Metrics::count_answer(unsigned status) const {
  if (status < 300) {
    answered_2xx.add();
  } else if (status < 400) {
    answered_3xx.add();
  } else if (status < 500) {
    answered_4xx.add();
  } else {
    answered_5xx.add();
  }
}

const S3Metrics& s3_metrics() {
  static const S3Metrics instance{
      requests("2xx"),
      requests("3xx"),
      requests("4xx"),
      requests("5xx"),
      requests("error"),
      metrics().counter("sluice_s3_retries_total",
                        "S3 request attempts that repeated a failed one (after a backoff)."),
      metrics().counter("sluice_s3_connections_opened_total",
                        "Connections opened to the S3 endpoint (TCP, and TLS when https)."),
      metrics().gauge("sluice_s3_idle_connections",
                      "Connections to the S3 endpoint kept alive between requests right now."),
  };
  return instance;
}

}  // namespace sluice
