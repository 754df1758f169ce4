#pragma once
// OrderLifecycle: what happens to an order after CONFIRMED (README "Order
// lifecycle"): payment, cancellation, expiry at pay_by, and the outbox that
// gives the units of closed orders back to the stock store exactly once.
// Implemented by the databases of record (SQLite, PostgreSQL); every decision
// is one atomic statement or transaction there, so a payment and the expiry
// racing at the deadline cannot both win, and several closers (several
// `flashsale consume` processes) never close the same order twice.
//
// The rule for a payment that arrives while the order is still PENDING (in
// flight between the hand-off and the database): it is decided at once
// against the in-flight record's pay_by, and when it is in time it is
// recorded (order_payments) and applied in the same transaction that lands
// the order, so consumer lag never turns a timely payment into an expiry.
//
// Safe for concurrent use.

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/domain.hpp"
#include "core/status.hpp"

namespace flashsale {

struct Payment {
  OrderId order;
  std::string payment_ref;  // the payment service's reference, 1..128 bytes
  Cents amount = 0;         // must equal the order's total
  UnixMillis received_at = 0;
};

enum class PaymentOutcome {
  kPaid,            // the order is PAID now (or was, by this same payment_ref)
  kRecorded,        // in flight and in time: recorded, PAID when it lands
  kNotFound,        // no such order (neither stored nor in flight)
  kWrongStatus,     // closed, FAILED, paid by another reference, no payment step,
                    // or too late: `order.status` says which
  kAmountMismatch,  // amount != the order's total: nothing changed
};

struct PaymentDecision {
  PaymentOutcome outcome = PaymentOutcome::kNotFound;
  Order order;  // the order as it is after the decision (when found)
};

enum class CancelOutcome {
  kCancelled,  // CONFIRMED -> CANCELLED now; its units go back through the outbox
  kNotFound,
  kWrongStatus,  // anything but CONFIRMED (PENDING too: retry once it lands)
};

struct CancelDecision {
  CancelOutcome outcome = CancelOutcome::kNotFound;
  Order order;
};

class OrderLifecycle {
 public:
  virtual ~OrderLifecycle() = default;

  // One atomic decision: a CONFIRMED order with pay_by > received_at becomes
  // PAID; the same payment_ref on a PAID order answers kPaid again (nothing
  // changes). An order not stored yet is decided from `in_flight` (its copy
  // from the journal or Redis, status PENDING, or nullopt when there is none):
  // in time -> the payment is recorded (kRecorded) and applied when the order
  // lands; too late -> kWrongStatus with status PENDING.
  virtual Result<PaymentDecision> Pay(const Payment& payment,
                                      const std::optional<Order>& in_flight) = 0;

  // CONFIRMED -> CANCELLED at `now`, its units queued for return (outbox).
  virtual Result<CancelDecision> Cancel(const OrderId& id, UnixMillis now) = 0;

  // Applies recorded payments whose orders have landed, then closes up to
  // `max` CONFIRMED orders with pay_by <= now as EXPIRED (units queued for
  // return). Returns how many it expired.
  virtual Result<std::int64_t> ExpireDue(UnixMillis now, std::int64_t max) = 0;

  // The earliest pay_by of a CONFIRMED order (the closer sleeps until then),
  // nullopt when none waits.
  virtual Result<std::optional<UnixMillis>> NextPayBy() = 0;

  // The outbox: claims up to `max` closed orders whose units were not returned
  // yet (oldest closed first), calls `give_back` with them, and marks returned
  // those it says were given back (give_back returns one flag per order), in
  // one transaction, so the same order is never handed to two closers at once
  // (PostgreSQL: FOR UPDATE SKIP LOCKED). A crash in between leaves them
  // unmarked: the next call hands them out again, so the stock store's release
  // must be idempotent per order (release_stock.lua's marker), or be redone by
  // the start-up rebuild (embedded). Returns how many were marked.
  using GiveBack = std::function<std::vector<bool>(std::span<const Order>)>;
  virtual Result<std::int64_t> ReturnClosedUnits(std::int64_t max, const GiveBack& give_back) = 0;
};

}  // namespace flashsale
