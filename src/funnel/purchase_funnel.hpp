#pragma once
// PurchaseFunnel: one purchase request from validated input to its answer
// (SPEC §1): Idempotency-Key -> L1 sold-out cache -> one atomic reservation
// (window, L2, per-user limit, stock) -> durable hand-off -> answer.
//
// Backends are interfaces, so the same funnel runs embedded (in-process
// stock, SQLite journal) and distributed (Redis, Kafka). Safe for concurrent
// use; holds no lock of its own on the hot path.

#include <functional>
#include <string>

#include "core/idempotency_store.hpp"
#include "core/metrics.hpp"
#include "core/order_queue.hpp"
#include "core/purchase.hpp"
#include "core/status_broadcast.hpp"
#include "core/stock_store.hpp"
#include "funnel/local_sold_out_cache.hpp"

namespace flashsale {

class PurchaseFunnel {
 public:
  using Done = std::function<void(const PurchaseReply&)>;

  struct Options {
    std::int64_t l1_ttl_ms = 600'000;  // the seed's cachetools TTL
  };

  // Subscribes to `broadcast` so every instance's L1 follows SOLD_OUT and
  // RESTOCKED news. All references must outlive the funnel.
  PurchaseFunnel(StockStore& stock, OrderQueue& orders, IdempotencyStore& idempotency,
                 StatusBroadcast& broadcast, FunnelMetrics& metrics, Options options);

  // REQUIRES: `req` passed input validation. `done` runs exactly once: inline
  // for answers known at once (L1 hit, refusals of an in-process store), or on
  // a backend thread after the hand-off. It must not block.
  void Buy(const PurchaseRequest& req, Done done);

  // Admin changes that gave `product` stock again call this (after L2 was
  // cleared in the store) so every instance's L1 forgets the flag.
  void AnnounceRestocked(ProductId product, std::int64_t epoch);

 private:
  // `order`: the id to reserve with (an Idempotency-Key's), or empty for a fresh one.
  void BuyUnchecked(const PurchaseRequest& req, OrderId order, Done done);
  void HandOff(const Reservation& r, const ReserveResult& reserved, std::string idempotency_key,
               Done done);

  StockStore& stock_;
  OrderQueue& orders_;
  IdempotencyStore& idempotency_;
  StatusBroadcast& broadcast_;
  FunnelMetrics& metrics_;
  LocalSoldOutCache l1_;
  OrderIdGenerator order_ids_;
};

}  // namespace flashsale
