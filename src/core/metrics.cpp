#include "core/metrics.hpp"

#include <chrono>
#include <cstdio>

namespace flashsale {

namespace metrics_detail {
std::size_t ThreadShard() {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t shard = next.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shard;
}
}  // namespace metrics_detail

Counter& InternalErrors() {
  static Counter errors;
  return errors;
}

std::int64_t Counter::Value() const {
  std::int64_t total = 0;
  for (const Slot& s : slots_) total += s.value.load(std::memory_order_relaxed);
  return total;
}

void Histogram::ObserveNanos(std::int64_t nanos) {
  Shard& shard = shards_[metrics_detail::ThreadShard()];
  const double seconds = static_cast<double>(nanos) * 1e-9;
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  shard.buckets[i].fetch_add(1, std::memory_order_relaxed);
  shard.sum_nanos.fetch_add(nanos, std::memory_order_relaxed);
}

void Histogram::Render(std::string& out, std::string_view name, std::string_view labels) const {
  std::array<std::int64_t, kBounds.size() + 1> counts{};
  std::int64_t sum = 0;
  for (const Shard& s : shards_) {
    for (std::size_t i = 0; i < counts.size(); ++i) {
      counts[i] += s.buckets[i].load(std::memory_order_relaxed);
    }
    sum += s.sum_nanos.load(std::memory_order_relaxed);
  }
  const std::string sep = labels.empty() ? "" : ",";
  std::int64_t cumulative = 0;
  char buf[64];
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    if (i < kBounds.size()) {
      std::snprintf(buf, sizeof buf, "%g", kBounds[i]);
    } else {
      std::snprintf(buf, sizeof buf, "+Inf");
    }
    out.append(name).append("_bucket{").append(labels).append(sep).append("le=\"");
    out.append(buf).append("\"} ").append(std::to_string(cumulative)).append("\n");
  }
  std::snprintf(buf, sizeof buf, "%.9f", static_cast<double>(sum) * 1e-9);
  const std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  out.append(name).append("_sum").append(braces).append(" ").append(buf).append("\n");
  out.append(name).append("_count").append(braces).append(" ");
  out.append(std::to_string(cumulative)).append("\n");
}

namespace {
void RenderScalar(std::string& out, std::string_view name, std::string_view type,
                  std::string_view help, std::int64_t value) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  out.append(name).append(" ").append(std::to_string(value)).append("\n");
}
void RenderHistogram(std::string& out, std::string_view name, std::string_view help,
                     const Histogram& h) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" histogram\n");
  h.Render(out, name, "");
}
}  // namespace

void FunnelMetrics::Render(std::string& out) const {
  RenderScalar(out, "flashsale_l1_hits_total", "counter",
               "Purchases answered SOLD_OUT from the in-process L1 cache.", l1_hits.Value());
  RenderScalar(out, "flashsale_stock_store_calls_total", "counter",
               "Reservation calls to the stock store.", stock_store_calls.Value());
  RenderHistogram(out, "flashsale_stock_store_duration_seconds",
                  "Time of one reservation in the stock store.", stock_store_duration);
  RenderHistogram(out, "flashsale_handoff_duration_seconds",
                  "Time from hand-off to durable acknowledgement.", handoff_duration);
  RenderScalar(out, "flashsale_orders_accepted_total", "counter", "Orders answered ACCEPTED.",
               orders_accepted.Value());
  out.append("# HELP flashsale_orders_persisted_total Orders decided by the consumer.\n");
  out.append("# TYPE flashsale_orders_persisted_total counter\n");
  out.append("flashsale_orders_persisted_total{status=\"CONFIRMED\"} ")
      .append(std::to_string(orders_persisted_confirmed.Value()))
      .append("\n");
  out.append("flashsale_orders_persisted_total{status=\"FAILED\"} ")
      .append(std::to_string(orders_persisted_failed.Value()))
      .append("\n");
  out.append("# HELP flashsale_orders_paid_total Payments accepted (in time).\n");
  out.append("# TYPE flashsale_orders_paid_total counter\n");
  out.append("flashsale_orders_paid_total ")
      .append(std::to_string(orders_paid.Value()))
      .append("\n");
  out.append("# HELP flashsale_orders_closed_total Orders closed, their units given back.\n");
  out.append("# TYPE flashsale_orders_closed_total counter\n");
  for (const auto& [reason, counter] : {std::pair{"expired", &orders_closed_expired},
                                        std::pair{"cancelled", &orders_closed_cancelled},
                                        std::pair{"stranded", &orders_closed_stranded}}) {
    out.append("flashsale_orders_closed_total{reason=\"").append(reason).append("\"} ");
    out.append(std::to_string(counter->Value())).append("\n");
  }
  RenderScalar(out, "flashsale_units_returned_total", "counter",
               "Units of closed orders given back to the stock.", units_returned.Value());
  out.append("# HELP flashsale_payment_rejected_total Payment calls refused, by reason.\n");
  out.append("# TYPE flashsale_payment_rejected_total counter\n");
  static constexpr const char* kReasons[] = {"signature", "invalid", "not_found", "wrong_status",
                                             "amount"};
  for (std::size_t i = 0; i < payment_rejected.size(); ++i) {
    out.append("flashsale_payment_rejected_total{reason=\"").append(kReasons[i]).append("\"} ");
    out.append(std::to_string(payment_rejected[i].Value())).append("\n");
  }
  out.append("# HELP flashsale_rate_limited_total Requests answered 429, by the bucket that refused.\n");
  out.append("# TYPE flashsale_rate_limited_total counter\n");
  static constexpr const char* kBuckets[] = {"address", "user"};
  for (std::size_t i = 0; i < rate_limited.size(); ++i) {
    out.append("flashsale_rate_limited_total{key=\"").append(kBuckets[i]).append("\"} ");
    out.append(std::to_string(rate_limited[i].Value())).append("\n");
  }
  RenderScalar(out, "flashsale_queue_joined_total", "counter",
               "Waiting-room places handed out (joining again is not counted).",
               queue_joined.Value());
  RenderScalar(out, "flashsale_queue_admitted_total", "counter",
               "Waiting-room positions admitted by this instance's advances of the queue.",
               queue_admitted.Value());
  out.append("# HELP flashsale_pass_rejected_total Purchases refused for their waiting-room pass, by reason.\n");
  out.append("# TYPE flashsale_pass_rejected_total counter\n");
  static constexpr const char* kPassReasons[] = {"missing", "malformed", "forged",
                                                 "expired", "other_user", "other_product"};
  for (std::size_t i = 0; i < pass_rejected.size(); ++i) {
    out.append("flashsale_pass_rejected_total{reason=\"").append(kPassReasons[i]).append("\"} ");
    out.append(std::to_string(pass_rejected[i].Value())).append("\n");
  }
  RenderHistogram(out, "flashsale_close_lag_seconds",
                  "Time from an order's pay_by to its expiry by the closer.", close_lag);
  RenderScalar(out, "flashsale_queue_depth", "gauge",
               "Orders handed off and not yet persisted by the consumer.", queue_depth.Value());
  RenderScalar(out, "flashsale_consumer_lag", "gauge",
               "Orders waiting in the order source for the consumer.", consumer_lag.Value());
}

}  // namespace flashsale
