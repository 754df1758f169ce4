#pragma once
// Process-wide metrics with the names of SPEC §4. Counters and histograms are
// sharded per thread (cache-line padded slots), so the hot path does one
// uncontended relaxed atomic add and takes no lock. Reads sum the shards and
// may see a slightly stale total. All members are safe for concurrent use.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "core/clock.hpp"

namespace flashsale {

namespace metrics_detail {
inline constexpr std::size_t kShards = 8;
// Small per-thread index in [0, kShards).
std::size_t ThreadShard();
}  // namespace metrics_detail

class Counter {
 public:
  void Inc(std::int64_t n = 1) {
    slots_[metrics_detail::ThreadShard()].value.fetch_add(n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::int64_t Value() const;

 private:
  struct alignas(64) Slot {
    std::atomic<std::int64_t> value{0};
  };
  std::array<Slot, metrics_detail::kShards> slots_{};
};

class Gauge {
 public:
  void Set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Latency histogram in seconds with fixed buckets from 50 µs to 10 s.
class Histogram {
 public:
  static constexpr std::array<double, 15> kBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                     0.0025,  0.005,  0.01,    0.025,  0.05,
                                                     0.1,     0.25,   0.5,     1.0,    10.0};
  void ObserveNanos(std::int64_t nanos);
  // Appends the Prometheus text lines (buckets, sum, count) for `name{labels}`.
  void Render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  struct alignas(64) Shard {
    std::array<std::atomic<std::int64_t>, kBounds.size() + 1> buckets{};  // last: +Inf
    std::atomic<std::int64_t> sum_nanos{0};
  };
  std::array<Shard, metrics_detail::kShards> shards_{};
};

// Exceptions caught by an outer guard instead of ending the process (a bug:
// the guard logs it and answers 500 where a client waits), process-wide, for
// flashsale_internal_errors_total.
Counter& InternalErrors();

// Why a payment was refused, for flashsale_payment_rejected_total{reason}.
enum class PaymentRejection { kSignature, kInvalid, kNotFound, kWrongStatus, kAmount };

// The funnel's, the stores' and the consumer's metrics. The HTTP layer owns
// the per-route request metrics and renders both.
struct FunnelMetrics {
  Counter l1_hits;
  Counter stock_store_calls;
  Histogram stock_store_duration;
  Histogram handoff_duration;
  Counter orders_accepted;
  Counter orders_persisted_confirmed;
  Counter orders_persisted_failed;
  Gauge queue_depth;   // orders handed off, not yet persisted by the consumer
  Gauge consumer_lag;  // orders in the source not yet polled by the consumer
  // Order lifecycle (README "Order lifecycle").
  Counter orders_paid;              // payments that made an order PAID (or recorded one)
  Counter orders_closed_expired;    // closed EXPIRED (by the closer or a late payment)
  Counter orders_closed_cancelled;  // closed CANCELLED
  Counter orders_closed_stranded;   // reservations returned by the closer (never handed off)
  Counter units_returned;           // units given back to the stock by the closer
  // Refused payments, by reason (PaymentRejection order).
  std::array<Counter, 5> payment_rejected;
  Histogram close_lag;  // pay_by -> the order closed EXPIRED, by the closer
  // Admission control (README "Admission control").
  std::array<Counter, 2> rate_limited;  // 429s, by bucket: RateLimitKey order (address, user)
  Counter queue_joined;                 // waiting-room places handed out (not re-joins)
  Counter queue_admitted;               // positions admitted, by this instance's advances
  std::array<Counter, 6> pass_rejected;  // purchases refused 403, by PassRejection order

  void Render(std::string& out) const;
};

}  // namespace flashsale
