#pragma once
// Redis key names of distributed mode, spelled here only. Always the
// hash-tagged form item:{<id>}:... (see the header of reserve_stock.lua).

#include <string>
#include <string_view>

#include "core/domain.hpp"

namespace flashsale::redis::keys {

inline std::string Item(ProductId id, std::string_view suffix) {
  return "item:{" + std::to_string(id) + "}:" + std::string(suffix);
}
inline std::string Meta(ProductId id) { return Item(id, "meta"); }
inline std::string Stock(ProductId id) { return Item(id, "stock"); }
inline std::string SoldOut(ProductId id) { return Item(id, "sold_out"); }
inline std::string Buyers(ProductId id) { return Item(id, "buyers"); }
inline std::string Order(const OrderId& order) { return "order:" + order.str(); }

// Idempotency-Keys (RedisIdempotencyStore): one string per key, two indexes
// of finished answers (sorted sets, score = finish time, member = the key),
// and a flag set while accepted answers were let go over the cap.
constexpr std::string_view kIdempotencyPrefix = "idem:";
inline std::string Idempotency(std::string_view key) {
  return std::string(kIdempotencyPrefix) + std::string(key);
}
inline std::string IdempotencyRefusals() { return "idem-index:refused"; }
inline std::string IdempotencyAccepted() { return "idem-index:accepted"; }
inline std::string IdempotencyAcceptedLetGo() { return "idem-index:accepted-let-go"; }

}  // namespace flashsale::redis::keys
