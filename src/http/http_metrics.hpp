#pragma once

#include <array>

#include "core/metrics.hpp"

namespace sluice {

// The HTTP server's series (registered when the server is built).
struct HttpMetrics {
  Counter& requests;                  // requests read
  std::array<Counter*, 5> responses;  // by status class: [0] = 1xx ... [4] = 5xx
  Counter& aborted;                   // responses cut after their headers went out
  Gauge& connections;                 // connections open now
  Gauge& max_connections;             // the limit in force
  Counter& shed_idle;                 // closed at max_connections: idle the longest
  Counter& shed_slow;                 // closed at max_connections: reading a request the longest
  Counter& refused;                   // new connections refused at max_connections (all busy)

  Counter& responses_of(int status) const {
    const int index = status / 100 - 1;
    return *responses[static_cast<std::size_t>(index < 0 ? 0 : index > 4 ? 4 : index)];
  }
};

const HttpMetrics& http_metrics();

}  // namespace sluice
