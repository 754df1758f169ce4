#pragma once
// DistributedStack: one `flashsale serve` instance of distributed mode (SPEC
// §2): stock, per-user records, the L2 flag and Idempotency-Keys in Redis
// (shared by every instance), orders handed to Kafka (acks=all), sold-out /
// restock news on Kafka with this instance's own consumer group, and the
// database of record for reads and admin changes. Orders are persisted by
// `flashsale consume`, a separate process.
//
// Start-up order (why): the database first (the catalog's source of truth),
// then Redis, which is seeded with SETNX semantics from the database (the
// mock catalog goes into an empty database first), so several instances
// starting together agree and a Redis that restarted empty gets back what the
// database says was sold; then Kafka (topics created when missing), and the
// broadcast listener before the first request.
//
// Threads: one I/O thread for the Redis connections (their callbacks run the
// rest of the funnel: the Kafka produce call is non-blocking), librdkafka's
// own threads plus a delivery-report thread, and the broadcast listener.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "backends/kafka/kafka_order_queue.hpp"
#include "backends/kafka/kafka_status_broadcast.hpp"
#include "backends/redis/redis_connection.hpp"
#include "backends/redis/redis_idempotency_store.hpp"
#include "backends/redis/redis_stock_store.hpp"
#include "backends/redis/redis_waiting_room.hpp"
#include "config.hpp"
#include "core/signatures.hpp"
#include "funnel/catalog.hpp"
#include "funnel/purchase_funnel.hpp"
#include "funnel/recently_accepted_orders.hpp"
#include "http/api.hpp"
#include "record_database.hpp"

namespace flashsale::app {

// Order reads of distributed mode: the database, and for an order the consumer
// has not persisted yet, its in-flight copy in Redis (PENDING). A buyer's list
// adds the orders this instance accepted that the database does not have yet
// (`accepted`, fed by an AcceptanceRecordingQueue around the Kafka queue);
// other instances list them once they are stored.
class InFlightAwareOrders final : public OrderRepository {
 public:
  InFlightAwareOrders(RecordDatabase& db, redis::RedisStockStore& stock,
                      RecentlyAcceptedOrders& accepted)
      : db_(db), stock_(stock), accepted_(accepted) {}
  Status UpsertProduct(const Product& p) override { return db_.UpsertProduct(p); }
  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override {
    return db_.PersistBatch(orders);
  }
  Result<std::optional<Order>> FindOrder(const OrderId& id) override;
  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override;

 private:
  RecordDatabase& db_;
  redis::RedisStockStore& stock_;
  RecentlyAcceptedOrders& accepted_;
};

class DistributedStack {
 public:
  static Result<std::unique_ptr<DistributedStack>> Open(const Config& config);
  ~DistributedStack();

  // Graceful: every handed-off order gets its delivery report, then the
  // listener and the Redis thread stop.
  void Shutdown();

  PurchaseFunnel& funnel() { return *funnel_; }
  Catalog& catalog() { return *catalog_; }
  OrderRepository& orders() { return *orders_; }
  FunnelMetrics& metrics() { return metrics_; }
  // Payments and cancels are decided in the database of record; the closer
  // runs in `flashsale consume`.
  OrderLifecycle* lifecycle() { return db_.get(); }
  std::shared_ptr<const OrderTokens> order_tokens() const { return order_tokens_; }
  std::shared_ptr<const AdmissionTokens> admission_tokens() const { return admission_tokens_; }
  // The waiting rooms' queues, in Redis: shared by every instance
  // (http::ApiOptions::waiting_room).
  WaitingRoomStore& waiting_room() { return *waiting_room_; }
  // redis, kafka, database: each names its problem when it does not answer.
  std::vector<http::ReadinessCheck> ReadinessChecks();
  // For http::ServerOptions::on_thread_start / on_thread_stop: each HTTP I/O
  // thread gets its own Redis connection for reservations (unless
  // --redis-shared-connections), on its own io_context.
  void AttachIoThread(boost::asio::io_context& io);
  void DetachIoThread();
  [[nodiscard]] std::string Describe() const;

 private:
  DistributedStack() = default;
  Status SeedRedis(const Config& config);

  FunnelMetrics metrics_;
  std::unique_ptr<RecordDatabase> db_;
  std::shared_ptr<const OrderTokens> order_tokens_;
  std::shared_ptr<const AdmissionTokens> admission_tokens_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread io_thread_;
  std::unique_ptr<redis::RedisPool> redis_;
  std::unique_ptr<redis::ThreadLocalRedis> per_thread_redis_;  // null: shared pool only
  std::unique_ptr<redis::RedisStockStore> stock_;
  std::unique_ptr<redis::RedisIdempotencyStore> idempotency_;
  // Blocking calls over redis_ (never on its I/O thread: the HTTP layer runs
  // them on its blocking pool).
  std::unique_ptr<redis::RedisWaitingRoom> waiting_room_;
  // Outlives queue_: the recording wrapper's answers write into it.
  RecentlyAcceptedOrders accepted_;
  // One thread for the Idempotency-Key store's order-record lookups (libpq
  // blocks; never on the Redis I/O thread).
  std::unique_ptr<boost::asio::thread_pool> key_lookups_;
  std::unique_ptr<kafka::KafkaOrderQueue> queue_;
  std::unique_ptr<AcceptanceRecordingQueue> recording_queue_;  // queue_, as the funnel sees it
  std::unique_ptr<kafka::KafkaStatusBroadcast> broadcast_;
  std::unique_ptr<PurchaseFunnel> funnel_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<InFlightAwareOrders> orders_;
  std::string description_;
  bool shut_down_ = false;
};

// Kafka settings of `config`.
kafka::KafkaOptions KafkaOptionsOf(const Config& config);

}  // namespace flashsale::app
