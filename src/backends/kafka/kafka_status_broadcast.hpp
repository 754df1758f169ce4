#pragma once
// KafkaStatusBroadcast: the StatusBroadcast of distributed mode, over the
// status topic (SPEC §5). Publish() tells this instance's listeners at once and
// produces the change (fire and forget: errors are logged). A consumer thread
// reads the topic in a consumer group of its own ("flashsale-status-<random
// hex>"), so every instance hears every message; on assignment it starts at
// the partitions' end (high watermark, queried explicitly so nothing published
// after Start() returns is skipped). Messages this instance produced come back
// to its listeners too: harmless, the L1 cache is epoch-ordered. Malformed
// messages are logged and skipped.
//
// Thread safety: Publish() is safe for concurrent use, also with the consumer
// thread. REQUIRES: Subscribe() only before Start(); Start()/Stop() from one
// thread. Listeners run on the publisher's thread and on the consumer thread.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backends/kafka/kafka_options.hpp"
#include "core/mutex.hpp"
#include "core/status_broadcast.hpp"

namespace flashsale::kafka {

class KafkaStatusBroadcast final : public StatusBroadcast {
 public:
  static Result<std::unique_ptr<KafkaStatusBroadcast>> Create(const KafkaOptions& o);
  ~KafkaStatusBroadcast() override;  // Stop(), then flushes the producer (<= 2 s)

  void Publish(ProductId product, ProductStatusChange change, std::int64_t epoch) override;
  void Subscribe(Listener listener) override;  // REQUIRES: before Start()
  // Starts the consumer thread; returns once the group has its assignment and
  // positions (or after ~10 s with a warning).
  Status Start();
  void Stop();

 private:
  KafkaStatusBroadcast() = default;
  static void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* parts, void* opaque);
  static void ProducerReport(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
  void ConsumeLoop();
  void Notify(ProductId product, ProductStatusChange change, std::int64_t epoch);

  // Constant after Create() / Start().
  Topics topics_;
  KafkaPtr producer_;
  TopicPtr producer_topic_;
  KafkaPtr consumer_;
  std::vector<Listener> listeners_;
  std::thread thread_;

  // Consumer thread only (ConsumeLoop and the rebalance callback): next offset
  // to read per partition (END until the first watermark/message is known).
  std::map<std::int32_t, std::int64_t> position_;

  std::atomic<bool> stop_{false};
  Mutex mu_;
  CondVar assigned_cv_;
  bool assigned_ GUARDED_BY(mu_) = false;
};

}  // namespace flashsale::kafka
