#include "consumer/order_consumer.hpp"
#include "core/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace flashsale {

OrderConsumer::OrderConsumer(OrderSource& source, OrderRepository& repository,
                             FunnelMetrics& metrics, Options options)
    : source_(source), repository_(repository), metrics_(metrics), options_(options) {}

OrderConsumer::~OrderConsumer() { Stop(false); }

void OrderConsumer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void OrderConsumer::Stop(bool drain) {
  if (!thread_.joinable()) return;
  {
    MutexLock lock(&stop_mu_);
    stopping_.store(true);
  }
  stop_cv_.SignalAll();  // a backoff in progress ends now
  source_.Wake();
  thread_.join();
  if (drain) {
    while (RunOnce()) {
    }
  }
}

void OrderConsumer::WaitUnlessStopping(int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  MutexLock lock(&stop_mu_);
  // stopping_ is set under stop_mu_, so the signal cannot slip in between
  // this check and the wait.
  while (!stopping_.load() && std::chrono::steady_clock::now() < deadline) {
    stop_cv_.WaitUntil(&stop_mu_, deadline);
  }
}

std::size_t OrderConsumer::RunOnce() {
  const std::size_t n = PollAndPersist();
  if (options_.after_run) options_.after_run();
  return n;
}

std::size_t OrderConsumer::PollAndPersist() {
  Result<std::vector<Order>> polled = source_.Poll(options_.max_batch, options_.poll_wait_ms);
  if (!polled) {
    spdlog::warn("consumer: poll failed: {}", polled.error().ToString());
    return 0;
  }
  metrics_.consumer_lag.Set(source_.Lag());
  if (polled->empty()) return 0;
  // Stopping before every order was stored or parked: leave the batch
  // uncommitted, the source hands it out again after a restart (the stored
  // part is then a duplicate, skipped by the repository).
  if (!PersistOrPark(*polled, 0)) {
    spdlog::warn(
        "consumer: stopping with orders of a batch of {} not persisted (kept for the "
        "next start)",
        polled->size());
    return 0;
  }
  if (Status s = source_.Commit(); !s.ok()) {
    spdlog::warn("consumer: commit failed (orders will be re-read, idempotently): {}",
                 s.ToString());
  }
  return polled->size();
}

bool OrderConsumer::PersistOrPark(std::span<const Order> orders, std::size_t first_index) {
  int backoff_ms = kFirstBackoffMs;
  for (;;) {
    Result<PersistSummary> persisted = repository_.PersistBatch(orders);
    if (persisted) {
      if (options_.after_persist) options_.after_persist(orders);
      return Account(*persisted, orders, first_index);
    }
    const Status error = persisted.error();
    if (error.code() == Status::Code::kInvalid) {
      // The database refuses something in these orders for its data (a
      // constraint, a value out of range): retrying the same transaction
      // would fail forever. Halve until the refused orders stand alone; the
      // others are stored by the halves that pass, in batch order.
      if (orders.size() == 1) {
        spdlog::error("consumer: the database refuses order {}: {}: sent to the dead-letter queue",
                      orders[0].id.view(), error.message());
        return DeadLetterOrWait(first_index, "refused by the database: " + error.message());
      }
      const std::size_t half = orders.size() / 2;
      return PersistOrPark(orders.first(half), first_index) &&
             PersistOrPark(orders.subspan(half), first_index + half);
    }
    // Anything else is about the database, not these orders (down, a
    // timeout, an unknown COMMIT outcome: the retry is idempotent): wait for
    // it, never skip the orders.
    if (stopping_.load()) return false;
    if (error.IsRetryable()) {
      spdlog::warn("consumer: persisting {} orders failed, retrying in {} ms: {}", orders.size(),
                   backoff_ms, error.ToString());
    } else {
      spdlog::error("consumer: persisting {} orders failed, retrying in {} ms: {}", orders.size(),
                    backoff_ms, error.ToString());
    }
    WaitUnlessStopping(backoff_ms);
    backoff_ms = std::min(backoff_ms * 2, options_.max_backoff_ms);
  }
}

bool OrderConsumer::Account(const PersistSummary& persisted, std::span<const Order> orders,
                            std::size_t first_index) {
  metrics_.orders_persisted_confirmed.Inc(persisted.confirmed);
  metrics_.orders_persisted_failed.Inc(persisted.failed);
  metrics_.queue_depth.Add(
      -static_cast<std::int64_t>(persisted.confirmed + persisted.failed + persisted.duplicates));
  // debug: at a trickle every batch is one order (the metrics count them).
  spdlog::debug("orders persisted: {} confirmed, {} failed, {} already done", persisted.confirmed,
                persisted.failed, persisted.duplicates);
  if (persisted.failed > 0) {
    spdlog::error("stock guard refused {} orders (stored FAILED): the stock store lost writes",
                  persisted.failed);
  }
  for (const std::size_t i : persisted.unknown_product) {
    const Order& o = orders[i];
    spdlog::error("consumer: order {} names unknown product {}: sent to the dead-letter queue",
                  o.id.view(), o.product);
    if (!DeadLetterOrWait(first_index + i, "unknown product " + std::to_string(o.product))) {
      return false;
    }
  }
  return true;
}

bool OrderConsumer::DeadLetterOrWait(std::size_t index, const std::string& reason) {
  // The commit that follows skips the order for good, so it must be parked
  // first; wait for the dead-letter queue like for the database.
  int backoff_ms = kFirstBackoffMs;
  for (;;) {
    Status s = source_.DeadLetter(index, reason);
    if (s.ok()) return true;
    if (stopping_.load()) return false;
    spdlog::warn("consumer: dead-lettering failed, retrying in {} ms: {}", backoff_ms,
                 s.ToString());
    WaitUnlessStopping(backoff_ms);
    backoff_ms = std::min(backoff_ms * 2, options_.max_backoff_ms);
  }
}

void OrderConsumer::Run() {
  NameThisThread("consumer");
  while (!stopping_.load()) {
    const std::size_t done = RunOnce();
    if (done > 0 && done < options_.max_batch && !stopping_.load()) {
      WaitUnlessStopping(options_.batch_interval_ms);
    }
  }
}

}  // namespace flashsale
