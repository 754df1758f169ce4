#include "funnel/purchase_funnel.hpp"

#include <spdlog/spdlog.h>

#include <utility>

namespace flashsale {

PurchaseFunnel::PurchaseFunnel(StockStore& stock, OrderQueue& orders, IdempotencyStore& idempotency,
                               StatusBroadcast& broadcast, FunnelMetrics& metrics, Options options)
    : stock_(stock),
      orders_(orders),
      idempotency_(idempotency),
      broadcast_(broadcast),
      metrics_(metrics),
      l1_(options.l1_ttl_ms) {
  broadcast_.Subscribe([this](ProductId product, ProductStatusChange change, std::int64_t epoch) {
    switch (change) {
      case ProductStatusChange::kSoldOut:
        l1_.MarkSoldOut(product, epoch, SteadyMillis());
        return;
      case ProductStatusChange::kRestocked:
        l1_.Clear(product, epoch);
        return;
    }
  });
}

void PurchaseFunnel::Buy(const PurchaseRequest& req, Done done) {
  if (req.idempotency_key.empty()) return BuyUnchecked(req, OrderId(), std::move(done));
  // The first request with a key owns it; retries (even racing ones) get its
  // answer, so a key never reserves twice.
  const PurchaseFingerprint fp{req.user, req.product, req.amount};
  std::string key(req.idempotency_key);
  PurchaseRequest owned = req;
  idempotency_.Claim(key, fp, order_ids_.Next(NowMillis()),
                     [this, owned, key,
                      done = std::move(done)](const IdempotencyStore::ClaimResult& claim) mutable {
                       switch (claim.state) {
                         case IdempotencyStore::ClaimState::kReplay:
                           return done(claim.reply);
                         case IdempotencyStore::ClaimState::kMismatch: {
                           PurchaseReply mismatch;
                           mismatch.outcome = PurchaseOutcome::kIdempotencyKeyMismatch;
                           return done(mismatch);
                         }
                         case IdempotencyStore::ClaimState::kUnavailable: {
                           PurchaseReply unavailable;
                           unavailable.status = claim.unavailable;
                           return done(unavailable);
                         }
                         case IdempotencyStore::ClaimState::kFirst:
                           break;
                       }
                       owned.idempotency_key = key;
                       BuyUnchecked(
                           owned, claim.order_id,
                           [this, key, done = std::move(done)](const PurchaseReply& reply) {
                             // A refused hand-off is not a final answer: the next retry starts
                             // afresh; nor is a refusal for want of a pass (the retry may
                             // bring one).
                             const bool remember =
                                 (reply.status.ok() && !IsPassRefusal(reply.outcome)) ||
                                 reply.status.IsUnknown();
                             idempotency_.Finish(key, reply, remember);
                             done(reply);
                           });
                     });
}

void PurchaseFunnel::BuyUnchecked(const PurchaseRequest& req, OrderId order, Done done) {
  // A pass that failed verification (the HTTP layer checked it) refuses here:
  // after the Idempotency-Key replay, so a retry of an accepted purchase gets
  // its first answer even once its pass expired.
  if (req.pass == PassCheck::kInvalid) {
    PurchaseReply reply;
    reply.outcome = PurchaseOutcome::kPassInvalid;
    return done(reply);
  }
  // L1: set only after the store answered SOLD_OUT, so a hit never oversells
  // and spares the store (and, distributed, the network).
  if (l1_.Contains(req.product, SteadyMillis())) {
    metrics_.l1_hits.Inc();
    PurchaseReply reply;
    reply.outcome = PurchaseOutcome::kSoldOut;
    return done(reply);
  }
  const UnixMillis now = NowMillis();
  Reservation r{req.product, req.user, req.amount,
                order.empty() ? order_ids_.Next(now) : std::move(order), now,
                req.pass == PassCheck::kValid};
  metrics_.stock_store_calls.Inc();
  const std::int64_t started = MonotonicNanos();
  std::string key(req.idempotency_key);
  stock_.Reserve(r, [this, r, started, key = std::move(key),
                     done = std::move(done)](Result<ReserveResult> reserved) mutable {
    metrics_.stock_store_duration.ObserveNanos(MonotonicNanos() - started);
    PurchaseReply reply;
    if (!reserved) {
      reply.status = reserved.error();
      return done(reply);
    }
    reply.outcome = ToPurchaseOutcome(reserved->outcome);
    switch (reserved->outcome) {
      case ReserveOutcome::kReserved:
        if (reserved->took_last_unit) {
          spdlog::info("sold out: product {} (last unit taken by order {})", r.product,
                       r.order.view());
          // The store has set L2; this instance's L1 and every other's follow.
          broadcast_.Publish(r.product, ProductStatusChange::kSoldOut, reserved->restock_epoch);
        }
        spdlog::debug("stock reserved: order {} product {} user {} quantity {}", r.order.view(),
                      r.product, r.user, r.quantity);
        return HandOff(r, *reserved, std::move(key), std::move(done));
      case ReserveOutcome::kSoldOut:
        // Known sold out (L2 or no stock) but L1 had expired: remember locally.
        l1_.MarkSoldOut(r.product, reserved->restock_epoch, SteadyMillis());
        return done(reply);
      case ReserveOutcome::kLimitExceeded:
        reply.order_id = reserved->latest_order;
        return done(reply);
      case ReserveOutcome::kInsufficientStock:
      case ReserveOutcome::kNotStarted:
      case ReserveOutcome::kEnded:
      case ReserveOutcome::kUnknownProduct:
      case ReserveOutcome::kPassRequired:
        return done(reply);
    }
    FLASHSALE_CHECK(false, "unknown ReserveOutcome");
  });
}

void PurchaseFunnel::HandOff(const Reservation& r, const ReserveResult& reserved,
                             std::string idempotency_key, Done done) {
  Order order;
  order.id = r.order;
  order.user = r.user;
  order.product = r.product;
  order.quantity = r.quantity;
  order.price = reserved.price;
  order.created_at = r.now;
  order.pay_by = reserved.pay_by;
  order.idempotency_key = std::move(idempotency_key);
  const std::int64_t started = MonotonicNanos();
  metrics_.queue_depth.Add(1);
  // Answer only once the order is durable. A definite refusal gives the
  // units back; an unknown outcome keeps them for `audit --repair`.
  orders_.HandOff(std::move(order), [this, r, started,
                                     done = std::move(done)](const Status& s) mutable {
    metrics_.handoff_duration.ObserveNanos(MonotonicNanos() - started);
    PurchaseReply reply;
    reply.order_id = r.order;
    if (s.ok()) {
      metrics_.orders_accepted.Inc();
      reply.outcome = PurchaseOutcome::kAccepted;
      // debug: one line per order would fill the disk during a sale; the
      // journal / database is the record of orders.
      spdlog::debug("order accepted: {} product {} user {} quantity {}", r.order.view(), r.product,
                    r.user, r.quantity);
      return done(reply);
    }
    metrics_.queue_depth.Add(-1);
    reply.status = s;
    spdlog::warn("hand-off of order {} failed: {}", r.order.view(), s.ToString());
    if (!s.IsNotDelivered()) return done(reply);
    // Definitely never handed off: the units go back. A refusal at once (e.g.
    // the Kafka producer's queue full) arrives here on the thread that answered
    // Reserve(), possibly the very one that must read the release's reply, so
    // nothing waits: the client is answered from the release's callback, once
    // its record is gone (an immediate retry is not refused LIMIT_EXCEEDED by
    // its own refused order). If the release fails, the units stay held until
    // `audit --repair` finds the order missing from the database.
    reply.order_id = OrderId();
    stock_.Release(r, [this, r, reply = std::move(reply),
                       done = std::move(done)](Result<std::int64_t> epoch) {
      if (epoch) {
        AnnounceRestocked(r.product, *epoch);
      } else {
        spdlog::error("release of order {} failed: {}", r.order.view(), epoch.error().ToString());
      }
      done(reply);
    });
  });
}

void PurchaseFunnel::AnnounceRestocked(ProductId product, std::int64_t epoch) {
  broadcast_.Publish(product, ProductStatusChange::kRestocked, epoch);
}

}  // namespace flashsale
