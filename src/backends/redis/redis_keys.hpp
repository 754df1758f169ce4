#pragma once
// Redis key names of distributed mode, spelled here only. Per-product keys are
// always the hash-tagged form item:{<id>}:... (see the header of
// reserve_stock.lua), so that one script can touch all of a product's keys on
// a Redis Cluster; the product index and the order keys are apart from them.

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
// The product's in-flight index: sorted set, score = created_at (ms), member =
// order id of each reservation not known to have landed (reserve_stock.lua).
inline std::string InFlight(ProductId id) { return Item(id, "inflight"); }
// A product's waiting room (queue_frontier.lua and the two scripts behind it): the queue's
// state (hash: joined, admitted, as_of, generation), user -> position, and
// address key -> places held.
inline std::string Queue(ProductId id) { return Item(id, "queue"); }
inline std::string QueueUsers(ProductId id) { return Item(id, "queue:users"); }
inline std::string QueueAddresses(ProductId id) { return Item(id, "queue:addresses"); }
// A staging hash of buyer records for seeding (seed_product.lua), unique per
// seeding run `token`; in the product's hash slot.
inline std::string SeedStaging(ProductId id, std::string_view token) {
  return Buyers(id) + ":seed:" + std::string(token);
}

// The sorted set of every product id (score and member = id), for List() and
// ProductCount(); written by a separate idempotent ZADD, never by a script.
inline constexpr std::string_view kProductIndex = "items:index";

inline constexpr std::string_view kOrderPrefix = "order:";
inline constexpr const char* kOrderPattern = "order:*";  // SCAN MATCH of every Order()
inline std::string Order(const OrderId& order) { return std::string(kOrderPrefix) + order.str(); }

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
