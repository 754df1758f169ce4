#pragma once
// OrderQueue: the durable hand-off of accepted orders (SPEC §1). The embedded
// implementation is a group-committed SQLite journal; the distributed one is
// Kafka with acks=all. Safe for concurrent use.

#include <functional>

#include "core/domain.hpp"
#include "core/status.hpp"

namespace flashsale {

class OrderQueue {
 public:
  using HandOffCallback = std::function<void(const Status&)>;
  virtual ~OrderQueue() = default;

  // Persists `order` durably, then calls done(OK). done(NotDelivered) means the
  // order is definitely not persisted; done(Unknown) that it may be. `done` runs
  // exactly once, on any thread; it must not block.
  virtual void HandOff(Order order, HandOffCallback done) = 0;

  // Waits until every handed-off order got its answer (graceful shutdown).
  virtual void Flush() = 0;
};

}  // namespace flashsale
