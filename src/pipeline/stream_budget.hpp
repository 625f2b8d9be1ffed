#pragma once

#include <cstddef>

#include "sources/source.hpp"

namespace sluice {

// How one stream's byte budget (`[server] stream_buffer_bytes`) is split between the reader's
// batches in flight and the encoder's output buffer: two batches (one being filled, one being
// encoded) of 1/8 of the budget, each with a cell index bounded to as much again, plus an output
// buffer of 3/8, written once it holds 1/4 (or before the next batch would overflow it). Every
// consumer of the pipeline (HTTP, CLI, jobs) uses the same split.
struct StreamBudget {
  std::size_t bytes = 256 * 1024;
  // Someone reads the bytes as they come (an HTTP download): the first rows leave at once,
  // what is encoded is written whenever the database has nothing ready, and a compressed
  // stream is flushed at every write. False for a job's result, written into the store: only
  // full buffers are written and the compressor flushes when it chooses, so the result is the
  // same bytes whatever the timing (and smaller, and cheaper).
  bool interactive = true;

  ReadBudget read() const {
    ReadBudget budget;
    budget.batches_in_flight = 2;
    budget.batch_bytes = bytes / 8;
    return budget;
  }
  std::size_t flush_bytes() const { return bytes / 4; }
  std::size_t output_bytes() const { return bytes / 4 + bytes / 8; }
};

}  // namespace sluice
