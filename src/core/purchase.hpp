#pragma once
// Purchase requests, reservations and their outcomes (SPEC §1, §4).

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/domain.hpp"
#include "core/status.hpp"

namespace flashsale {

// A validated POST /purchase body plus its optional Idempotency-Key.
struct PurchaseRequest {
  UserId user = 0;
  ProductId product = 0;
  std::int64_t amount = 0;
  std::string_view idempotency_key;  // empty when absent; valid during Buy() only
};

// Business answers to a purchase; each is an HTTP 200 (404 for kUnknownProduct,
// 422 for kIdempotencyKeyMismatch).
enum class PurchaseOutcome {
  kAccepted,
  kSoldOut,
  kInsufficientStock,
  kLimitExceeded,
  kNotStarted,
  kEnded,
  kUnknownProduct,
  // The Idempotency-Key was first used with another body: nothing was tried.
  // Never stored as a key's answer. Last, so the ones above index tables.
  kIdempotencyKeyMismatch,
};

// The machine name ("SOLD_OUT") and the seed's user-facing message.
std::string_view StatusName(PurchaseOutcome o);
std::string_view SeedMessage(PurchaseOutcome o);
// The inverse of StatusName: nullopt for a name no outcome has.
std::optional<PurchaseOutcome> PurchaseOutcomeNamed(std::string_view name);

// What the funnel answers. When `status` is not OK the outcome is meaningless
// and the client gets 503; `order_id` is set for kAccepted, kLimitExceeded (the
// user's latest order for the product) and an unknown hand-off (status kUnknown).
struct PurchaseReply {
  Status status;
  PurchaseOutcome outcome = PurchaseOutcome::kSoldOut;
  OrderId order_id;
};

// One atomic reservation step (SPEC §1): sale window, L2 flag, per-user limit, stock.
struct Reservation {
  ProductId product = 0;
  UserId user = 0;
  std::int64_t quantity = 0;
  OrderId order;
  UnixMillis now = 0;
};

enum class ReserveOutcome {
  kReserved,
  kSoldOut,
  kInsufficientStock,
  kLimitExceeded,
  kNotStarted,
  kEnded,
  kUnknownProduct,
};

struct ReserveResult {
  ReserveOutcome outcome = ReserveOutcome::kSoldOut;
  Cents price = 0;                 // unit price, when kReserved
  bool took_last_unit = false;     // kReserved and the stock is now 0
  OrderId latest_order;            // kLimitExceeded: the user's latest order for the product
  std::int64_t restock_epoch = 0;  // how many times the product got stock back (L1 ordering)
  // kReserved for a product with a payment window: now + window, decided by
  // the same atomic step that took the units (Order::pay_by).
  std::optional<UnixMillis> pay_by;
};

PurchaseOutcome ToPurchaseOutcome(ReserveOutcome r);

}  // namespace flashsale
