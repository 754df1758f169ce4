// `flashsale consume` (SPEC §2, distributed mode): product_orders -> the
// database of record, in batches, offsets committed after each database commit.

#include <spdlog/spdlog.h>

#include "backends/kafka/kafka_order_source.hpp"
#include "commands.hpp"
#include "consumer/order_consumer.hpp"
#include "distributed_stack.hpp"
#include "record_database.hpp"
#include "stop_signals.hpp"

namespace flashsale::app {

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
  auto source = kafka::KafkaOrderSource::Create(options, config.consumer_group);
  if (!source) {
    spdlog::error("start-up failed: {}", source.error().ToString());
    spdlog::shutdown();
    return 1;
  }
  FunnelMetrics metrics;
  OrderConsumer::Options consumer_options;
  consumer_options.max_batch = static_cast<std::size_t>(config.batch_size);
  consumer_options.poll_wait_ms = 100;
  consumer_options.batch_interval_ms = static_cast<int>(config.batch_wait_ms);
  OrderConsumer consumer(**source, **db, metrics, consumer_options);
  if (config.drain) {
    // One batch after another on this thread, until 2 s pass without an
    // order: for batch jobs and the drain benchmark. The rate is measured
    // from the first order polled to the last one committed.
    std::int64_t total = 0, first_ns = 0, last_ns = 0;
    // Joining the group takes a few seconds: wait up to 30 s for the first order.
    std::int64_t idle_since = MonotonicNanos() + 28'000'000'000LL;
    sigset_t pending;
    while (MonotonicNanos() - idle_since < 2'000'000'000LL) {
      if (sigpending(&pending) == 0 &&
          (sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1)) {
        break;
      }
      const std::size_t n = consumer.RunOnce();
      if (n == 0) continue;
      if (first_ns == 0) first_ns = MonotonicNanos();
      total += static_cast<std::int64_t>(n);
      last_ns = idle_since = MonotonicNanos();
    }
    const double secs = static_cast<double>(last_ns - first_ns) / 1e9;
    spdlog::info("drained {} orders in {:.3f} s ({:.0f} orders/s): {} confirmed, {} failed", total,
                 secs, secs > 0 ? static_cast<double>(total) / secs : 0.0,
                 metrics.orders_persisted_confirmed.Value(),
                 metrics.orders_persisted_failed.Value());
    source->reset();
    spdlog::shutdown();
    return 0;
  }
  consumer.Start();
  spdlog::info("flashsale {} consuming {}{} as group {} into {}", FLASHSALE_VERSION,
               config.topic_prefix, "product_orders", config.consumer_group, (*db)->Describe());
  WaitForStopSignal(signals, "committing what was persisted");
  consumer.Stop(false);
  source->reset();  // librdkafka logs while it closes: before the logger goes
  spdlog::info("stopped cleanly: {} orders confirmed, {} failed by the stock guard",
               metrics.orders_persisted_confirmed.Value(), metrics.orders_persisted_failed.Value());
  spdlog::shutdown();
  return 0;
}

}  // namespace flashsale::app
