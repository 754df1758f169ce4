#pragma once
// Domain values of a flash sale: ids, products, orders, times, prices.
// Plain values; thread-compatible.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"

namespace flashsale {

using ProductId = std::int64_t;
using UserId = std::int64_t;
// Money in hundredths (prices have at most 2 decimals, SPEC §4).
using Cents = std::int64_t;

// Order ids are 24 lowercase hex digits: 11 of the creation time in ms, 6 of a
// random per-process instance tag, 7 of a per-process sequence. Unique across
// instances and restarts (a restart moves the clock; instances differ by tag).
class OrderId {
 public:
  static constexpr std::size_t kLength = 24;
  OrderId() = default;
  // Returns nullopt unless `text` has the exact shape above.
  static std::optional<OrderId> Parse(std::string_view text);
  [[nodiscard]] std::string_view view() const { return {chars_.data(), size_}; }
  [[nodiscard]] std::string str() const { return std::string(view()); }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  friend bool operator==(const OrderId& a, const OrderId& b) { return a.view() == b.view(); }

  // 24 hex digits are 96 bits: an id packed into 12 bytes, most significant
  // first, so packed ids compare (std::array's <) as their text does: by
  // creation time. Lossless for every id Parse() or OrderIdGenerator gives;
  // the empty id has no packed form (callers keep "none" beside it).
  static constexpr std::size_t kPackedSize = kLength / 2;
  using Packed = std::array<std::uint8_t, kPackedSize>;
  // REQUIRES: !empty().
  [[nodiscard]] Packed Pack() const;
  static OrderId Unpack(const Packed& packed);

 private:
  friend class OrderIdGenerator;
  std::array<char, kLength> chars_{};
  std::uint8_t size_ = 0;
};

// Thread-safe generator of fresh order ids.
class OrderIdGenerator {
 public:
  OrderIdGenerator();  // picks a random instance tag
  OrderId Next(UnixMillis now);

 private:
  std::uint32_t instance_tag_;
};

// The order lifecycle (README "Order lifecycle"):
//   PENDING (handed off, not in the database yet)
//     -> CONFIRMED (stored; units held; awaiting payment when the product has a
//        payment window) -> PAID | CANCELLED | EXPIRED
//     -> FAILED (refused by the database's stock guard)
// New values go last: statuses are stored by name, never by number.
enum class OrderStatus { kPending, kConfirmed, kFailed, kPaid, kCancelled, kExpired };
std::string_view ToString(OrderStatus s);
std::optional<OrderStatus> ParseOrderStatus(std::string_view s);

// Held units: an order in one of these statuses holds its units, counted
// against the product's stock and the buyer's limit. Every reader that counts
// sold units (start-up rebuild, the database stock guard, audit, seed) uses
// this one definition; SQL spells it as kHeldStatusesSql.
constexpr bool HoldsUnits(OrderStatus s) {
  return s == OrderStatus::kPending || s == OrderStatus::kConfirmed || s == OrderStatus::kPaid;
}
inline constexpr const char* kHeldStatusesSql = "('PENDING','CONFIRMED','PAID')";
// Closed orders gave (or are giving) their units back to the sale.
constexpr bool IsClosed(OrderStatus s) {
  return s == OrderStatus::kCancelled || s == OrderStatus::kExpired;
}

// A virtual waiting room in front of a product's sale (README "Admission
// control"): buyers join a queue, tickets are admitted in position order at
// admit_per_s from the sale's start, and an admitted ticket gets a signed pass
// that POST /purchase requires for pass_ttl_s.
struct WaitingRoom {
  std::int64_t admit_per_s = 0;  // 1 .. kMaxAdmitPerS
  std::int64_t pass_ttl_s = 0;   // 1 .. kMaxPassTtlS
  friend bool operator==(const WaitingRoom&, const WaitingRoom&) = default;
};
inline constexpr std::int64_t kMaxAdmitPerS = 1'000'000;
inline constexpr std::int64_t kMaxPassTtlS = 24 * 3600;

struct Product {
  ProductId id = 0;
  Cents price = 0;
  std::int64_t stock = 0;  // total ever sellable
  std::optional<UnixMillis> starts_at;
  std::optional<UnixMillis> ends_at;
  std::int64_t limit_per_user = 1;
  // Admin version: numbered by the stock store for every admin change (PUT,
  // restock), strictly increasing per product. The database keeps a product
  // row only if its version is not older (OrderRepository::UpsertProduct), so
  // racing persists converge to the last decision. 0 = never changed.
  std::int64_t version = 0;
  // Seconds a buyer has to pay (POST /orders/{id}/pay) before the order
  // expires and its units go back on sale; nullopt = no payment step (orders
  // end at CONFIRMED, as in the seed).
  std::optional<std::int64_t> payment_window_s;
  // nullopt = no waiting room: anyone may buy (as in the seed).
  std::optional<WaitingRoom> waiting_room;
};

struct Order {
  OrderId id;
  UserId user = 0;
  ProductId product = 0;
  std::int64_t quantity = 0;
  Cents price = 0;  // unit price when bought
  OrderStatus status = OrderStatus::kPending;
  UnixMillis created_at = 0;
  std::string idempotency_key;  // empty when none
  // created_at + the product's payment window, fixed when the units were
  // reserved and carried through the hand-off; nullopt = no payment step.
  std::optional<UnixMillis> pay_by;
  std::optional<UnixMillis> paid_at;    // PAID: when the payment was decided
  std::optional<UnixMillis> closed_at;  // CANCELLED/EXPIRED: when it closed
  std::string payment_ref;              // PAID: the payment service's reference

  // price * quantity; nullopt when it does not fit (no payment can match).
  [[nodiscard]] std::optional<Cents> Total() const {
    Cents total = 0;
    if (__builtin_mul_overflow(price, quantity, &total)) return std::nullopt;
    return total;
  }
};

// RFC 3339 ("2026-11-25T10:00:00Z", offsets and fractions accepted).
std::optional<UnixMillis> ParseRfc3339(std::string_view text);
// "2026-11-25T10:00:00Z", with ".mmm" when the millisecond part is not zero.
std::string FormatRfc3339(UnixMillis t);

// Prices as JSON numbers: "12", "12.5", "12.50" -> cents; nullopt on more than
// 2 decimals, negatives, exponents or overflow.
std::optional<Cents> ParsePrice(std::string_view json_number);
// Shortest decimal form: 1250 -> "12.5", 1200 -> "12", 5 -> "0.05".
std::string FormatPrice(Cents c);

}  // namespace flashsale
