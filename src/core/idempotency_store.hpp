#pragma once
// IdempotencyStore: first answers by Idempotency-Key (SPEC §4), so retries,
// even racing ones, never reserve twice. Safe for concurrent use.

#include <cstdint>
#include <functional>
#include <string_view>

#include "core/purchase.hpp"

namespace flashsale {

// Identifies the body a key was first used with.
struct PurchaseFingerprint {
  UserId user = 0;
  ProductId product = 0;
  std::int64_t amount = 0;
  friend bool operator==(const PurchaseFingerprint&, const PurchaseFingerprint&) = default;
};

class IdempotencyStore {
 public:
  enum class ClaimState {
    kFirst,        // caller owns the key, reserves with `order_id` and must call Finish()
    kReplay,       // `reply` is the first answer (OK or UNKNOWN)
    kMismatch,     // the key was first used with another body: nothing to try
    kUnavailable,  // the store cannot answer now (`unavailable` says why): 503,
                   // nothing remembered, a later retry claims afresh
  };
  struct ClaimResult {
    ClaimState state = ClaimState::kFirst;
    PurchaseReply reply;  // kReplay
    // kFirst: the order id to reserve with. Usually `proposed_order`; the id of
    // an earlier owner of the key that never finished (its Finish was lost),
    // so that reserving again finds that reservation instead of taking units
    // twice (reservations are idempotent per order id).
    OrderId order_id;
    Status unavailable;  // kUnavailable
  };
  using ClaimCallback = std::function<void(const ClaimResult&)>;

  virtual ~IdempotencyStore() = default;

  // `done` runs exactly once: at once, or when the in-flight first request
  // with the same key finishes. `proposed_order` is a fresh order id the
  // caller reserves with if it becomes the owner.
  virtual void Claim(std::string_view key, const PurchaseFingerprint& fp,
                     const OrderId& proposed_order, ClaimCallback done) = 0;

  // The owner's answer. With remember=false (the answer was not final, e.g. a
  // refused hand-off) waiters get it but the next retry starts afresh.
  virtual void Finish(std::string_view key, const PurchaseReply& reply, bool remember) = 0;
};

}  // namespace flashsale
