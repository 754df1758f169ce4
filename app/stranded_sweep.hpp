#pragma once
// Stranded reservations, distributed mode (README "Order lifecycle"): an API
// instance killed between reserving in Redis and handing the order to Kafka
// leaves units reserved that no order will ever hold. `flashsale consume`'s
// closer returns them once it is CERTAIN the order can no longer arrive:
//  - every consume worker publishes its partitions' safe times T_p
//    (KafkaOrderSource::SafeTimes: every order created before T_p that will
//    ever be in partition p is persisted) to a Redis hash (SafeTimeBoard);
//  - the sweep takes T = min over ALL partitions of the topic (a partition
//    with no entry makes nothing certain) and, for each product, the
//    reservations of Redis' in-flight index created before T: one in the
//    database landed (its index entry is dropped); one that is not will never
//    land, and its units go back through the stock store's Release
//    (idempotent per order) with a coalesced RESTOCKED per product.
// Several consume processes may sweep at once: a release is idempotent per
// order while its marker lives, so the units come back once.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "backends/kafka/kafka_order_source.hpp"
#include "backends/redis/redis_connection.hpp"
#include "backends/redis/redis_stock_store.hpp"
#include "core/metrics.hpp"
#include "core/mutex.hpp"
#include "core/status_broadcast.hpp"
#include "record_database.hpp"

namespace flashsale::app {

// The safe times of one orders topic and consumer group, in the Redis hash
// `flashsale:consumer_safe_time:<topic>:<group>` (field: partition, value:
// Unix ms). Values only grow (a partition's new owner may start lower: the
// old value stays true). Safe for concurrent use; blocking (never on the
// connection's I/O thread).
class SafeTimeBoard {
 public:
  SafeTimeBoard(redis::RedisCommander& redis, const std::string& topic, const std::string& group)
      : redis_(redis), key_("flashsale:consumer_safe_time:" + topic + ":" + group) {}

  Status Publish(const std::map<std::int32_t, UnixMillis>& safe_times);
  // min over partitions 0..partitions-1; nullopt while one has no entry.
  Result<std::optional<UnixMillis>> Min(int partitions);
  [[nodiscard]] const std::string& key() const { return key_; }

 private:
  Result<redis::RedisValue> Call(const std::vector<std::string>& argv);

  redis::RedisCommander& redis_;
  const std::string key_;
};

class StrandedSweep {
 public:
  struct Options {
    std::int64_t interval_ms = 1000;  // between two sweeps (each: 1 ZRANGEBYSCORE per product)
    std::size_t batch = 1000;         // candidates per product and round
  };
  // `partitions` answers the orders topic's partition count (Kafka metadata).
  StrandedSweep(RecordDatabase& db, redis::RedisStockStore& stock, SafeTimeBoard& board,
                StatusBroadcast& broadcast, FunnelMetrics& metrics,
                std::function<Result<int>()> partitions, Options options);

  // OrderCloser::Sweep: returns the reservations it returned.
  std::int64_t operator()(UnixMillis now);

 private:
  // The sweep proper, once its interval has passed.
  std::int64_t Sweep();

  RecordDatabase& db_;
  redis::RedisStockStore& stock_;
  SafeTimeBoard& board_;
  StatusBroadcast& broadcast_;
  FunnelMetrics& metrics_;
  std::function<Result<int>()> partitions_;
  const Options options_;
  // Closer thread only.
  std::int64_t next_sweep_ms_ = 0;  // SteadyMillis
  int partition_count_ = 0;
  std::int64_t partitions_checked_ms_ = 0;
  bool warned_no_safe_time_ = false;
};

}  // namespace flashsale::app
