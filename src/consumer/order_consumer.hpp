#pragma once
// OrderConsumer: drains an OrderSource into an OrderRepository in batches
// (SPEC §5): one transaction per batch, idempotent by order id, the source's
// progress committed only after every order of the batch is stored or parked
// in the source's dead-letter queue.
//
// Errors, by the Status of PersistBatch:
// - Invalid: the database refuses something in the batch for its data (a
//   constraint, a value out of range). The batch is split in halves until the
//   refused orders stand alone (k bad orders in n: about 2k·log2(n) extra
//   transactions); each is sent to the dead-letter queue, the others are
//   stored, and the stream keeps flowing.
// - Anything else (database down, timeout, unknown COMMIT outcome, or an
//   error that is not about the data): retried with bounded exponential
//   backoff (10 ms doubling to max_backoff_ms), never skipped, so every
//   handed-off order lands once (the repository ignores replays). Stop()
//   cuts a backoff short; the batch is then left uncommitted for the next start.
// Orders naming an unknown product are parked in the dead-letter queue too.
//
// Thread safety: Start()/Stop() from one owner thread; the work runs on the
// consumer's own thread.

#include <atomic>
#include <functional>
#include <span>
#include <string>
#include <thread>

#include "core/metrics.hpp"
#include "core/mutex.hpp"
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
    int max_backoff_ms = 2000;  // cap of the backoff between retries
    // Called on the consumer's thread after each successful PersistBatch,
    // with the orders of that transaction (the ones it stored and the
    // duplicates it skipped), before the source's progress is committed.
    // Distributed mode takes landed orders out of Redis' in-flight index
    // there. It must not throw; a failure is its own to log.
    std::function<void(std::span<const Order>)> after_persist;
    // Called on the consumer's thread after every RunOnce (a commit, or a
    // poll that found nothing): distributed mode publishes its partitions'
    // safe times there (see KafkaOrderSource::SafeTimes).
    std::function<void()> after_run;
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
  static constexpr int kFirstBackoffMs = 10;

  // RunOnce without the after_run hook.
  std::size_t PollAndPersist();

  // Persists `orders` (order `first_index` onward of the last Poll()), parking
  // the ones the database refuses; true once every one is stored or parked,
  // false when stopping before that.
  bool PersistOrPark(std::span<const Order> orders, std::size_t first_index);
  // Metrics and logs of a stored part, and parks its unknown-product orders;
  // false when stopping before they are parked.
  bool Account(const PersistSummary& persisted, std::span<const Order> orders,
               std::size_t first_index);
  // Parks order `index` of the current batch in the source's dead-letter
  // queue, retrying with backoff; false when stopping before it succeeded.
  bool DeadLetterOrWait(std::size_t index, const std::string& reason);
  void Run();
  // Sleeps `ms`, or less when Stop() is called meanwhile.
  void WaitUnlessStopping(int ms) EXCLUDES(stop_mu_);

  OrderSource& source_;
  OrderRepository& repository_;
  FunnelMetrics& metrics_;
  const Options options_;
  std::atomic<bool> stopping_{false};  // written under stop_mu_, read anywhere
  Mutex stop_mu_;
  CondVar stop_cv_;  // Stop() was called: backoffs and batch waits end early
  std::thread thread_;
};

}  // namespace flashsale
