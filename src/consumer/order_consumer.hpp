#pragma once
// OrderConsumer: drains an OrderSource into an OrderRepository in batches
// (SPEC §5): one transaction per batch, idempotent by order id, the source's
// progress committed only after the database commit. A failed batch is
// retried with backoff, never skipped, so every handed-off order lands once.
//
// Thread safety: Start()/Stop() from one owner thread; the work runs on the
// consumer's own thread.

#include <atomic>
#include <string>
#include <thread>

#include "core/metrics.hpp"
#include "core/order_repository.hpp"

namespace flashsale {

class OrderConsumer {
 public:
  struct Options {
    std::size_t max_batch = 2000;
    int poll_wait_ms = 50;
    // After a batch that was not full, wait this long so the next one is
    // bigger: fewer transactions (and fsyncs) competing with the journal.
    int batch_interval_ms = 20;
    int max_backoff_ms = 2000;
  };
  OrderConsumer(OrderSource& source, OrderRepository& repository, FunnelMetrics& metrics,
                Options options);
  ~OrderConsumer();

  void Start();
  // Persists what was already polled, then returns. With drain=true it keeps
  // going until the source is empty first (graceful shutdown).
  void Stop(bool drain);

  // One poll + persist + commit; returns how many orders it persisted (0:
  // nothing to do). For tests and the drain on shutdown.
  std::size_t RunOnce();

 private:
  // Parks order `index` of the current batch in the source's dead-letter
  // queue, retrying with backoff; false when stopping before it succeeded.
  bool DeadLetterOrWait(std::size_t index, const std::string& reason);
  void Run();

  OrderSource& source_;
  OrderRepository& repository_;
  FunnelMetrics& metrics_;
  const Options options_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace flashsale
