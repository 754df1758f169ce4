#pragma once
// OrderConsumer: drains an OrderSource into an OrderRepository in batches
// (SPEC §5): one transaction per batch, idempotent by order id, the source's
// progress committed only after the database commit. A failed batch is
// retried with backoff, never skipped, so every handed-off order lands once.
//
// Thread safety: Start()/Stop() from one owner thread; the work runs on the
// consumer's own thread.

#include <atomic>
#include <thread>

#include "core/metrics.hpp"
#include "core/order_repository.hpp"

namespace flashsale {

class OrderConsumer {
 public:
  struct Options {
    std::size_t max_batch = 1000;
    int poll_wait_ms = 50;
    int max_backoff_ms = 2000;
  };
  OrderConsumer(OrderSource& source, OrderRepository& repository, FunnelMetrics& metrics,
                Options options);
  ~OrderConsumer();

  void Start();
  // Persists what was already polled, then returns. With drain=true it keeps
  // going until the source is empty first (graceful shutdown).
  void Stop(bool drain);

  // One poll + persist + commit; false when nothing was polled. For tests and
  // the drain on shutdown.
  bool RunOnce();

 private:
  void Run();

  OrderSource& source_;
  OrderRepository& repository_;
  FunnelMetrics& metrics_;
  const Options options_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace flashsale
