#include "pipeline/pipeline_metrics.hpp"

namespace sluice {

const PipelineMetrics& pipeline_metrics() {
  static const PipelineMetrics instance{
      metrics().counter("sluice_rows_sent_total", "Rows encoded and handed to sinks."),
      source_metrics().rows_discarded,
  };
  return instance;
}

}  // namespace sluice
