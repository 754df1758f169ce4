// `flashsale consume` (SPEC §2, distributed mode): product_orders -> the
// database of record, in batches, offsets committed after each database commit.

#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "backends/kafka/kafka_order_source.hpp"
#include "commands.hpp"
#include "consumer/order_consumer.hpp"
#include "core/mutex.hpp"
#include "distributed_stack.hpp"
#include "record_database.hpp"
#include "stop_signals.hpp"

namespace flashsale::app {
namespace {

// --drain: every worker runs batch after batch on a thread of its own until no
// worker has persisted anything for 2 s (or SIGINT/SIGTERM is pending); for
// batch jobs and the drain benchmark. The rate counts the orders committed
// after the first batch, over the time from the end of that batch (the group
// join and the first poll are not part of it) to the last commit.
void Drain(std::vector<std::unique_ptr<OrderConsumer>>& consumers, const FunnelMetrics& metrics) {
  constexpr std::int64_t kIdleNs = 2'000'000'000LL;
  Mutex mu;
  // Joining the group takes a few seconds: wait up to 30 s for the first order.
  std::int64_t last_activity = MonotonicNanos() + 28'000'000'000LL;  // guarded by mu
  std::int64_t total = 0, timed = 0, first_ns = 0, last_ns = 0;      // guarded by mu
  auto idle = [&] {
    MutexLock lock(&mu);
    return MonotonicNanos() - last_activity >= kIdleNs;
  };
  std::vector<std::thread> threads;
  for (auto& consumer : consumers) {
    threads.emplace_back([&, c = consumer.get()] {
      sigset_t pending;
      while (!idle()) {
        if (sigpending(&pending) == 0 &&
            (sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1)) {
          break;
        }
        const std::size_t n = c->RunOnce();
        if (n == 0) continue;
        MutexLock lock(&mu);
        last_activity = last_ns = MonotonicNanos();
        total += static_cast<std::int64_t>(n);
        if (first_ns == 0) {
          first_ns = last_ns;
        } else {
          timed += static_cast<std::int64_t>(n);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs = last_ns > first_ns ? static_cast<double>(last_ns - first_ns) / 1e9 : 0.0;
  spdlog::info(
      "drained {} orders in {:.3f} s ({:.0f} orders/s): {} confirmed, {} failed ({} worker{})",
      total, secs, secs > 0 ? static_cast<double>(timed) / secs : 0.0,
      metrics.orders_persisted_confirmed.Value(), metrics.orders_persisted_failed.Value(),
      consumers.size(), consumers.size() == 1 ? "" : "s");
}

}  // namespace

int RunConsume(const Config& config) {
  if (config.kafka.empty()) {
    spdlog::error("consume needs Kafka: set --kafka or KAFKA_BOOTSTRAP_SERVERS");
    return 2;
  }
  const sigset_t signals = BlockStopSignals();
  auto db = RecordDatabase::Open(config);
  if (!db) {
    spdlog::error("start-up failed: {}", db.error().ToString());
    spdlog::shutdown();
    return 1;
  }
  const kafka::KafkaOptions options = KafkaOptionsOf(config);
  if (Status st = kafka::EnsureTopics(options); !st.ok()) {
    spdlog::error("start-up failed: {}", st.ToString());
    spdlog::shutdown();
    return 1;
  }
  // Each worker is one member of the consumer group: its own partitions,
  // source, thread and (pooled) database connection.
  const auto workers = static_cast<std::size_t>(config.consumer_workers);
  std::vector<std::unique_ptr<kafka::KafkaOrderSource>> sources;
  for (std::size_t i = 0; i < workers; ++i) {
    auto source = kafka::KafkaOrderSource::Create(options, config.consumer_group);
    if (!source) {
      spdlog::error("start-up failed: {}", source.error().ToString());
      sources.clear();
      spdlog::shutdown();
      return 1;
    }
    sources.push_back(std::move(*source));
  }
  FunnelMetrics metrics;
  OrderConsumer::Options consumer_options;
  consumer_options.max_batch = static_cast<std::size_t>(config.batch_size);
  consumer_options.poll_wait_ms = 100;
  consumer_options.batch_interval_ms = static_cast<int>(config.batch_wait_ms);
  std::vector<std::unique_ptr<OrderConsumer>> consumers;
  for (auto& source : sources) {
    consumers.push_back(std::make_unique<OrderConsumer>(*source, **db, metrics, consumer_options));
  }
  if (config.drain) {
    Drain(consumers, metrics);
  } else {
    for (auto& consumer : consumers) consumer->Start();
    spdlog::info("flashsale {} consuming {}{} as group {} ({} worker{}) into {}", FLASHSALE_VERSION,
                 config.topic_prefix, "product_orders", config.consumer_group, workers,
                 workers == 1 ? "" : "s", (*db)->Describe());
    WaitForStopSignal(signals, "committing what was persisted");
    // Stop them all first: a worker that leaves the group hands its
    // partitions to the others, which must not take them up any more.
    for (auto& consumer : consumers) consumer->Stop(false);
    spdlog::info("stopped cleanly: {} orders confirmed, {} failed by the stock guard",
                 metrics.orders_persisted_confirmed.Value(),
                 metrics.orders_persisted_failed.Value());
  }
  consumers.clear();
  sources.clear();  // librdkafka logs while it closes: before the logger goes
  spdlog::shutdown();
  return 0;
}

}  // namespace flashsale::app
