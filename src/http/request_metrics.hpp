#pragma once
// Per-route request counters (by HTTP status) and latency histograms, owned
// by the Api and rendered on GET /metrics.
//
// Thread safety: Record() and Render() may be called from any thread
// concurrently (the counters and histograms are atomic).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/metrics.hpp"
#include "http/router.hpp"

namespace flashsale::http {

// Per-route request counters (by HTTP status) and latency histograms.
class RequestMetrics {
 public:
  static constexpr std::array<int, 17> kStatuses = {200, 201, 400, 401, 403, 404, 405, 408, 409,
                                                    413, 422, 431, 500, 501, 503, 505, 0};
  void Record(RouteId route, int status, std::int64_t nanos);
  void Render(std::string& out) const;
  Gauge connections;

 private:
  static std::size_t StatusSlot(int status);
  std::array<std::array<Counter, kStatuses.size()>, kRouteCount> counts_{};
  std::array<Histogram, kRouteCount> durations_{};
};

}  // namespace flashsale::http
