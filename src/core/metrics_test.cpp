#include "core/metrics.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(MetricsRegistryTest, OneSeriesPerNameAndLabelsRenderedOncePerName) {
  MetricsRegistry registry;
  Counter& ok = registry.counter("test_responses_total", "Responses.", "class=\"2xx\"");
  Counter& bad = registry.counter("test_responses_total", "Responses.", "class=\"5xx\"");
  Gauge& open = registry.gauge("test_open", "Open things.");
  EXPECT_EQ(&registry.counter("test_responses_total", "other help", "class=\"2xx\""), &ok);
  ok.add(3);
  bad.add();
  open.add(5);
  open.sub(2);
  EXPECT_EQ(registry.render_prometheus(),
            "# HELP test_open Open things.\n# TYPE test_open gauge\ntest_open 3\n"
            "# HELP test_responses_total Responses.\n# TYPE test_responses_total counter\n"
            "test_responses_total{class=\"2xx\"} 3\ntest_responses_total{class=\"5xx\"} 1\n");
}

}  // namespace
}  // namespace sluice
