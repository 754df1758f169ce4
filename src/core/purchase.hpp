#pragma once
// Purchase requests, reservations and their outcomes (SPEC §1, §4).

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/domain.hpp"
#include "core/status.hpp"

namespace flashsale {

// What the HTTP layer found of the request's waiting-room pass (header
// X-Flashsale-Pass), verified against the body's user and product.
enum class PassCheck : std::uint8_t {
  kAbsent,   // no pass: the reservation refuses PASS_REQUIRED if the product has a waiting room
  kValid,    // signed by us, this user and product, not expired
  kInvalid,  // forged, expired, or another user's/product's: PASS_INVALID
};

// A validated POST /purchase body plus its optional Idempotency-Key and pass.
struct PurchaseRequest {
  UserId user = 0;
  ProductId product = 0;
  std::int64_t amount = 0;
  std::string_view idempotency_key;  // empty when absent; valid during Buy() only
  PassCheck pass = PassCheck::kAbsent;
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
  // The product has a waiting room and no valid pass was presented (403).
  // Never stored as an Idempotency-Key's answer: a retry with a pass may buy.
  kPassRequired,
  kPassInvalid,
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
  // A valid waiting-room pass was presented (PassCheck::kValid). Without one a
  // product with a waiting room refuses kPassRequired, so an instance that does
  // not know the product has a waiting room still cannot sell past it.
  bool pass_verified = false;
};

enum class ReserveOutcome {
  kReserved,
  kSoldOut,
  kInsufficientStock,
  kLimitExceeded,
  kNotStarted,
  kEnded,
  kUnknownProduct,
  kPassRequired,
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

// Refusals for want of a pass: answered 403, never remembered for an
// Idempotency-Key (the retry that brings a pass must be tried).
constexpr bool IsPassRefusal(PurchaseOutcome o) {
  return o == PurchaseOutcome::kPassRequired || o == PurchaseOutcome::kPassInvalid;
}

}  // namespace flashsale
