#pragma once

#include "core/metrics.hpp"
#include "sources/source_metrics.hpp"

namespace sluice {

// The series the export pipeline counts into (registered on first use).
struct PipelineMetrics {
  Counter& rows_sent;       // rows encoded and taken by the sink
  Counter& rows_discarded;  // rows taken from the reader and never sent (the sources' series)
};

const PipelineMetrics& pipeline_metrics();

}  // namespace sluice
