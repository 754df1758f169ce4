#pragma once
// OrderRepository: the database of record (products, orders). Safe for
// concurrent use.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/domain.hpp"
#include "core/status.hpp"

namespace flashsale {

struct PersistSummary {
  std::int64_t confirmed = 0;
  std::int64_t failed = 0;      // refused by the stock guard
  std::int64_t duplicates = 0;  // already decided earlier (idempotent replays)
  // Indices (into the batch) of orders naming a product the database does not
  // know: not stored; the consumer sends them to the dead-letter queue.
  std::vector<std::size_t> unknown_product;
};

class OrderRepository {
 public:
  virtual ~OrderRepository() = default;

  // Creates or replaces a product row unless the stored row has a newer
  // version (p.version < stored version: a no-op, OK): admin changes persisted
  // out of order converge to the last one. Equal versions replace (the same
  // decision, or callers that do not number their changes).
  virtual Status UpsertProduct(const Product& p) = 0;

  // Persists a batch in one transaction, idempotent by order id: an order
  // already CONFIRMED or FAILED is left alone. Stock guard: an order that
  // would take its product past its stock is stored FAILED.
  virtual Result<PersistSummary> PersistBatch(std::span<const Order> orders) = 0;

  virtual Result<std::optional<Order>> FindOrder(const OrderId& id) = 0;
  // Newest first.
  virtual Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) = 0;
};

// The order stream the consumer drains (embedded journal or Kafka topic).
// Single consumer thread.
class OrderSource {
 public:
  virtual ~OrderSource() = default;
  // Up to `max` orders, waiting up to `wait_ms` for the first one. Returns the
  // same orders again after a restart unless Commit() was called.
  virtual Result<std::vector<Order>> Poll(std::size_t max, int wait_ms) = 0;
  // Everything Poll() returned so far has been persisted.
  virtual Status Commit() = 0;
  // Makes a blocked Poll() return early (shutdown). Any thread.
  virtual void Wake() = 0;
  // Orders waiting in the source, not yet polled (flashsale_consumer_lag).
  virtual std::int64_t Lag() = 0;
  // Parks order `index` of the last Poll() result where it no longer blocks
  // the stream (Kafka: product_orders.dlq with its original bytes), before the
  // next Commit(). Sources without a dead-letter queue only log it.
  virtual Status DeadLetter(std::size_t index, std::string_view reason) = 0;
};

}  // namespace flashsale
