#pragma once
// KafkaOrderQueue: the OrderQueue of distributed mode, over the orders topic
// (SPEC §1, §5). Idempotent producer, acks=all; key = product id (decimal), so
// one product's orders stay in order on one partition.
//
// Answers (HandOffCallback):
//   OK            the delivery report says the broker persisted the order;
//   NotDelivered  librdkafka reports it NOT_PERSISTED, or produce() refused it
//                 at once (local queue full, fatal producer error);
//   Unknown       POSSIBLY_PERSISTED (e.g. timed out while in flight).
// A refusal at once is answered on the caller's thread inside HandOff(); all
// other answers on the dedicated poll thread. Callbacks must not block: the
// caller's thread may be an I/O thread (PurchaseFunnel releases the units of
// a refused order asynchronously), and on the poll thread a wait would delay
// every other delivery's answer.
//
// Thread safety: all methods are safe for concurrent use. HandOff() takes no
// lock of ours: the callback travels in the message's opaque.
// Invariant: in_flight_ == orders handed off whose callback has not returned.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "backends/kafka/kafka_options.hpp"
#include "core/mutex.hpp"
#include "core/order_queue.hpp"

namespace flashsale::kafka {

class KafkaOrderQueue final : public OrderQueue {
 public:
  // Invalid on bad options; does not wait for the broker (Health() tells).
  static Result<std::unique_ptr<KafkaOrderQueue>> Create(const KafkaOptions& o);
  ~KafkaOrderQueue() override;  // flushes (bounded by delivery_timeout_ms), stops the poll thread

  void HandOff(Order order, HandOffCallback done) override;
  // Waits until every handed-off order got its answer (bounded by the delivery timeout).
  void Flush() override;
  // OK when a broker answers a metadata request (cached ~1 s; a call may block
  // up to ~500 ms when the cache is stale); otherwise why not.
  Status Health();

 private:
  KafkaOrderQueue() = default;
  static void DeliveryReport(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
  static void ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  void PollLoop();

  // Constant after Create().
  KafkaPtr rk_;
  TopicPtr topic_;
  std::thread poll_thread_;

  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> in_flight_{0};

  Mutex health_mu_;
  Status health_ GUARDED_BY(health_mu_) = Status::Unavailable("kafka: not checked yet");
  std::chrono::steady_clock::time_point health_checked_ GUARDED_BY(health_mu_){};
  std::string last_error_ GUARDED_BY(health_mu_);  // from the error callback
};

}  // namespace flashsale::kafka
