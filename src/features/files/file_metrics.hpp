#pragma once

#include "core/stream_limiter.hpp"

namespace sluice {

// The file feature's series (registered on first use; the feature registers them at start).
struct FileMetrics {
  StreamCounters streams;  // sluice_files_{started,completed,aborted}_total, active_files
  Counter& bytes_sent;     // file body bytes handed to sockets
  Counter& rejected;       // requests refused: link invalid or expired
};

const FileMetrics& file_metrics();

}  // namespace sluice
