// `flashsale consume` (SPEC §2, distributed mode): product_orders -> the
// database of record, in batches, offsets committed after each database commit.
// It also runs the order lifecycle's closer (README "Order lifecycle"): expiry
// at pay_by, units of closed orders back to Redis, RESTOCKED on Kafka, and the
// stranded-reservation sweep (stranded_sweep.hpp); hence it needs Redis too.
// Several consume processes may run: the database hands each closed order to
// one closer (FOR UPDATE SKIP LOCKED), and release_stock.lua is idempotent.

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "backends/kafka/kafka_order_source.hpp"
#include "backends/kafka/kafka_status_broadcast.hpp"
#include "backends/redis/redis_connection.hpp"
#include "backends/redis/redis_stock_store.hpp"
#include "commands.hpp"
#include "consumer/order_closer.hpp"
#include "consumer/order_consumer.hpp"
#include "core/mutex.hpp"
#include "distributed_stack.hpp"
#include "record_database.hpp"
#include "redis_session.hpp"
#include "stop_signals.hpp"
#include "stranded_sweep.hpp"

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

// What the closer did since the last report (consume serves no /metrics):
// one log line when it did something, at most one a second (a 100,000-order
// expiry runs many passes), and the totals at shutdown. Runs as the closer's
// last sweep, on its thread.
class CloserReport {
 public:
  explicit CloserReport(const FunnelMetrics& metrics) : metrics_(metrics) {}
  // Returns 0: it handles no order.
  std::int64_t Log() {
    const Totals now = Now();
    if (now == last_ || SteadyMillis() - last_line_ms_ < 1000) return 0;
    spdlog::info(
        "closer: {} expired and {} cancelled orders given back ({} units), {} stranded "
        "reservations returned",
        now.expired - last_.expired, now.cancelled - last_.cancelled, now.units - last_.units,
        now.stranded - last_.stranded);
    last_ = now;
    last_line_ms_ = SteadyMillis();
    return 0;
  }
  // REQUIRES: the closer has stopped.
  void LogTotals() const {
    const Totals now = Now();
    spdlog::info(
        "closer: {} expired and {} cancelled orders given back ({} units), {} stranded "
        "reservations returned, since start",
        now.expired, now.cancelled, now.units, now.stranded);
  }

 private:
  struct Totals {
    std::int64_t expired = 0, cancelled = 0, stranded = 0, units = 0;
    bool operator==(const Totals&) const = default;
  };
  [[nodiscard]] Totals Now() const {
    return Totals{metrics_.orders_closed_expired.Value(), metrics_.orders_closed_cancelled.Value(),
                  metrics_.orders_closed_stranded.Value(), metrics_.units_returned.Value()};
  }
  const FunnelMetrics& metrics_;
  Totals last_;
  std::int64_t last_line_ms_ = 0;
};

}  // namespace

int RunConsume(const Config& config) {
  if (config.kafka.empty()) {
    spdlog::error("consume needs Kafka: set --kafka or KAFKA_BOOTSTRAP_SERVERS");
    return 2;
  }
  if (config.redis.empty() && !config.drain) {
    spdlog::error(
        "consume needs Redis (its closer gives the units of expired and cancelled orders back "
        "to the stock): set --redis or REDIS_URL");
    return 2;
  }
  const sigset_t signals = BlockStopSignals();
  auto db = RecordDatabase::Open(config);
  if (!db) {
    spdlog::error("start-up failed: {}", db.error().ToString());
    spdlog::shutdown();
    return 1;
  }
  // --drain without Redis (a batch job, the drain benchmark): no closer, and
  // landed orders stay in Redis' in-flight index until a closer's sweep finds
  // them in the database.
  // The closer's Redis: one connection on an I/O thread of its own (its
  // releases are pipelined; the sweep's and the workers' calls block their own
  // threads, never this one).
  std::unique_ptr<RedisSession> redis;
  if (!config.redis.empty()) {
    auto session = RedisSession::Open(config.redis);
    Status st = session ? (*session)->stock().Ping() : session.error();
    if (!st.ok()) {
      spdlog::error("start-up failed: redis: {}", st.ToString());
      spdlog::shutdown();
      return 1;
    }
    redis = std::move(*session);
  }
  const kafka::KafkaOptions options = KafkaOptionsOf(config);
  if (Status st = kafka::EnsureTopics(options); !st.ok()) {
    spdlog::error("start-up failed: {}", st.ToString());
    spdlog::shutdown();
    return 1;
  }
  auto broadcast = kafka::KafkaStatusBroadcast::Create(options);  // publishes only
  if (!broadcast) {
    spdlog::error("start-up failed: {}", broadcast.error().ToString());
    spdlog::shutdown();
    return 1;
  }
  // The hand-off timeout of the stranded-reservation sweep: the API's
  // delivery timeout (--kafka-timeout-ms, which must not be lower here than
  // on any `serve`) plus a margin.
  const std::int64_t handoff_timeout_ms = config.kafka_timeout_ms + config.stranded_margin_ms;
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
    (*source)->TrackSafeTimes(handoff_timeout_ms);
    sources.push_back(std::move(*source));
  }
  std::unique_ptr<SafeTimeBoard> board;
  if (redis) {
    board = std::make_unique<SafeTimeBoard>(redis->connection(), kafka::Topics::For(options).orders,
                                            config.consumer_group);
  }
  FunnelMetrics metrics;
  OrderConsumer::Options consumer_options;
  consumer_options.max_batch = static_cast<std::size_t>(config.batch_size);
  consumer_options.poll_wait_ms = 100;
  consumer_options.batch_interval_ms = static_cast<int>(config.batch_wait_ms);
  // Landed orders leave Redis' in-flight index (a failure is only logged: the
  // stranded sweep checks the database before it returns anything).
  if (redis) {
    consumer_options.after_persist = [stock = &redis->stock()](std::span<const Order> orders) {
      if (Status st = stock->ForgetLanded(orders); !st.ok()) {
        spdlog::warn("consumer: taking {} landed orders out of the in-flight index: {}",
                     orders.size(), st.ToString());
      }
    };
  }
  std::vector<std::unique_ptr<OrderConsumer>> consumers;
  for (auto& source : sources) {
    OrderConsumer::Options o = consumer_options;
    // After each commit (or quiet poll): this worker's safe times, when they moved.
    if (board) {
      o.after_run = [board = board.get(), src = source.get(),
                     published = std::map<std::int32_t, UnixMillis>()]() mutable {
        const std::map<std::int32_t, UnixMillis>& safe = src->SafeTimes();
        if (safe == published) return;
        if (Status st = board->Publish(safe); !st.ok()) {
          spdlog::warn("consumer: publishing safe times: {}", st.ToString());
          return;
        }
        published = safe;
      };
    }
    consumers.push_back(std::make_unique<OrderConsumer>(*source, **db, metrics, o));
  }
  if (config.drain) {
    Drain(consumers, metrics);
  } else {
    OrderCloser::Options closer_options;
    if (const char* fault = std::getenv("FLASHSALE_FAULT")) {
      closer_options.fault = OrderCloser::FaultPointNamed(fault);
    }
    OrderCloser closer(**db, redis->stock(), **broadcast, metrics, closer_options);
    StrandedSweep stranded(
        **db, redis->stock(), *board, **broadcast, metrics,
        [src = sources.front().get()] { return src->PartitionCount(5000); },
        StrandedSweep::Options{});
    closer.AddSweep([&stranded](UnixMillis now) { return stranded(now); });
    CloserReport report(metrics);
    closer.AddSweep([&report](UnixMillis) { return report.Log(); });
    for (auto& consumer : consumers) consumer->Start();
    closer.Start();
    spdlog::info("flashsale {} consuming {}{} as group {} ({} worker{}) into {}", FLASHSALE_VERSION,
                 config.topic_prefix, "product_orders", config.consumer_group, workers,
                 workers == 1 ? "" : "s", (*db)->Describe());
    WaitForStopSignal(signals, "committing what was persisted");
    // Stop them all first: a worker that leaves the group hands its
    // partitions to the others, which must not take them up any more.
    closer.Stop();
    for (auto& consumer : consumers) consumer->Stop(false);
    report.LogTotals();
    spdlog::info("stopped cleanly: {} orders confirmed, {} failed by the stock guard",
                 metrics.orders_persisted_confirmed.Value(),
                 metrics.orders_persisted_failed.Value());
  }
  consumers.clear();
  sources.clear();     // librdkafka logs while it closes: before the logger goes
  broadcast->reset();  // the closer (gone) used these last
  board.reset();
  redis.reset();
  spdlog::shutdown();
  return 0;
}

}  // namespace flashsale::app
