#include "http/http_metrics.hpp"

#include <string>

namespace sluice {

const HttpMetrics& http_metrics() {
  static const HttpMetrics instance = [] {
    const std::string help = "HTTP responses by status class.";
    const std::string shed_help =
        "Connections closed at max_connections to let a new one in (idle: waiting for a request; "
        "slow: reading one), or new ones refused because every connection was answering.";
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
        metrics().gauge("sluice_max_connections",
                        "The connection limit: max_connections, or derived from the descriptor limit."),
        metrics().counter("sluice_connections_shed_total", shed_help, "reason=\"idle\""),
        metrics().counter("sluice_connections_shed_total", shed_help, "reason=\"slow\""),
        metrics().counter("sluice_connections_shed_total", shed_help, "reason=\"refused\""),
    };
  }();
  return instance;
}

}  // namespace sluice
