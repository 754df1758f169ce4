// RequestMetrics: recording a request and its Prometheus text rendering.

#include "http/request_metrics.hpp"

namespace flashsale::http {

std::size_t RequestMetrics::StatusSlot(int status) {
  for (std::size_t i = 0; i + 1 < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) return i;
  }
  return kStatuses.size() - 1;  // other
}

void RequestMetrics::Record(RouteId route, int status, std::int64_t nanos) {
  const auto r = static_cast<std::size_t>(route);
  counts_[r][StatusSlot(status)].Inc();
  durations_[r].ObserveNanos(nanos);
}

void RequestMetrics::Render(std::string& out) const {
  out.append("# HELP flashsale_requests_total HTTP requests by route and status code.\n");
  out.append("# TYPE flashsale_requests_total counter\n");
  for (std::size_t r = 0; r < kRouteCount; ++r) {
    for (std::size_t s = 0; s < kStatuses.size(); ++s) {
      const std::int64_t v = counts_[r][s].Value();
      if (v == 0) continue;
      out.append("flashsale_requests_total{route=\"");
      out.append(RouteName(static_cast<RouteId>(r)));
      out.append("\",status=\"");
      out.append(kStatuses[s] == 0 ? "other" : std::to_string(kStatuses[s]));
      out.append("\"} ");
      out.append(std::to_string(v));
      out.push_back('\n');
    }
  }
  out.append("# HELP flashsale_request_duration_seconds HTTP request latency by route.\n");
  out.append("# TYPE flashsale_request_duration_seconds histogram\n");
  for (std::size_t r = 0; r < kRouteCount; ++r) {
    const std::string labels = "route=\"" + std::string(RouteName(static_cast<RouteId>(r))) + "\"";
    durations_[r].Render(out, "flashsale_request_duration_seconds", labels);
  }
  out.append(
      "# HELP flashsale_internal_errors_total Exceptions caught instead of ending the process "
      "(bugs; each was logged and answered 500 where a client waited).\n");
  out.append("# TYPE flashsale_internal_errors_total counter\n");
  out.append("flashsale_internal_errors_total " + std::to_string(InternalErrors().Value()) + "\n");
  out.append("# HELP flashsale_connections Open client connections.\n");
  out.append("# TYPE flashsale_connections gauge\n");
  out.append("flashsale_connections " + std::to_string(connections.Value()) + "\n");
}

}  // namespace flashsale::http
