#pragma once

#include "core/metrics.hpp"

namespace sluice {

// The S3 client's series: every attempt by outcome (so SlowDown storms and 403s show), the
// retries among them, connections opened (a pool that does not keep connections shows as many
// connections as requests) and kept alive right now.
struct S3Metrics {
  Counter& answered_2xx;
  Counter& answered_3xx;
  Counter& answered_4xx;
  Counter& answered_5xx;
  Counter& failed;  // no answer: DNS, connect, TLS, timeout, connection lost
  Counter& retries;
  Counter& connections_opened;
  Gauge& idle_connections;

  void count_answer(unsigned status) const;
};

const S3Metrics& s3_metrics();

}  // namespace sluice
