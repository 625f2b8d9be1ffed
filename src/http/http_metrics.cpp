#include "http/http_metrics.hpp"

#include <string>

namespace sluice {

const HttpMetrics& http_metrics() {
  static const HttpMetrics instance = [] {
    const std::string help = "HTTP responses by status class.";
    auto by_class = [&](const char* label) {
      return &metrics().counter("sluice_http_responses_total", help,
                                std::string("class=\"") + label + "\"");
    };
    return HttpMetrics{
        metrics().counter("sluice_requests_total", "HTTP requests received."),
        {by_class("1xx"), by_class("2xx"), by_class("3xx"), by_class("4xx"), by_class("5xx")},
        metrics().counter("sluice_http_aborted_total",
                          "Responses cut after their headers went out (never ended as whole)."),
        metrics().gauge("sluice_open_connections", "HTTP connections open now."),
    };
  }();
  return instance;
}

}  // namespace sluice
