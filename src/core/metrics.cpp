#include "core/metrics.hpp"

#include <algorithm>
#include <cassert>
#include <sstream>

namespace sluice {

MetricsRegistry& metrics() {
  static MetricsRegistry instance;
  return instance;
}

MetricsRegistry::Series& MetricsRegistry::find_or_add(const std::string& name,
                                                      const std::string& labels,
                                                      const std::string& help, bool counter) {
  std::lock_guard lock(mutex_);
  for (const auto& series : series_) {
    if (series->name != name || series->labels != labels) continue;
    // One name, one type: a can't-happen between two of our own registrations.
    assert((series->counter != nullptr) == counter);
    return *series;
  }
  auto series = std::make_unique<Series>(Series{name, labels, help, nullptr, nullptr});
  if (counter) {
    series->counter = std::make_unique<Counter>();
  } else {
    series->gauge = std::make_unique<Gauge>();
  }
  series_.push_back(std::move(series));
  return *series_.back();
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::string& labels) {
  return *find_or_add(name, labels, help, true).counter;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const std::string& labels) {
  return *find_or_add(name, labels, help, false).gauge;
}

std::string MetricsRegistry::render_prometheus() const {
  std::vector<const Series*> sorted;
  {
    std::lock_guard lock(mutex_);
    for (const auto& series : series_) sorted.push_back(series.get());
  }
  std::sort(sorted.begin(), sorted.end(), [](const Series* a, const Series* b) {
    return a->name != b->name ? a->name < b->name : a->labels < b->labels;
  });
  std::ostringstream out;
  const std::string* described = nullptr;  // HELP and TYPE once per name
  for (const Series* series : sorted) {
    if (described == nullptr || *described != series->name) {
      out << "# HELP " << series->name << ' ' << series->help << "\n# TYPE " << series->name
          << (series->counter ? " counter\n" : " gauge\n");
      described = &series->name;
    }
    out << series->name;
    if (!series->labels.empty()) out << '{' << series->labels << '}';
    out << ' ';
    if (series->counter) {
      out << series->counter->value() << '\n';
    } else {
      out << series->gauge->value() << '\n';
    }
  }
  return out.str();
}

}  // namespace sluice
