#pragma once
// RedisIdempotencyStore: Idempotency-Key answers shared by every instance
// (SPEC §4), so a retry sent to another instance never reserves twice.
//
// One key per Idempotency-Key, `idem:<key>`, TTL Options::ttl_ms (from the
// first claim while pending, from Finish once answered):
//   "P|<user>|<product>|<amount>|<order id>|<claimed at ms>"
//                             claimed: the owner reserves with <order id>
//   "F|<user>|<product>|<amount>|<OUTCOME>|<s>|<order id>"
//                             the first answer; <OUTCOME> is the outcome's name
//                             ("SOLD_OUT"), <s> is "OK" or "UNKNOWN"
// Claim is one `SET key P|... NX GET PX ...` (Redis >= 7.0): whoever sets it
// owns the key; the others read the value back in the same round trip.
// Racing retries poll the key until the owner's answer is there.
//
// A lost Finish (Redis down at that moment, or the owner crashed) leaves the
// key pending. The pending record keeps the key (and its order id) for the
// whole TTL, so a retry never starts afresh with a new order id: after
// Options::pending_ttl_ms a retry takes the key over (compare-and-set on the
// value) and reserves with the SAME order id. reserve_stock.lua is idempotent
// per order id, so that finds the first reservation (answer ACCEPTED with the
// first order id, the order handed off again; the consumer keeps one row per
// id) or, if the first request got no units, tries once more. Only when the
// first reservation was released (order:<id> marked "X": a refused hand-off
// whose DEL was lost) does the new owner take a fresh id. Invariant that makes
// this safe: order:<id> (TTL 24 h from the reservation) outlives the pending
// record (TTL 24 h from the claim, kept by a takeover), so a reused id is
// never reserved afresh.
//
// Bounded (Redis runs without eviction): finished answers are indexed in two
// sorted sets, refusals (not ACCEPTED) and accepted ones, score = finish time.
// The Finish script adds the key to its index, drops index entries older than
// the TTL (their keys expired) and, while the two hold more than
// Options::max_keys, pops the oldest refusals first, then the oldest accepted
// answers, deleting their keys; letting an accepted answer go sets
// `idem-index:accepted-let-go` (TTL 24 h). While that flag is set, a claim of
// a key Redis does not know asks Options::find_order (the order record, by
// Idempotency-Key; on its own thread, never the Redis one) before the caller
// reserves: a retry of a let-go key answers its order (ACCEPTED, or SOLD_OUT
// for a FAILED one). Window: an accepted order let go while it is still
// in flight (not yet stored by the consumer) is not found; the cap lets the
// oldest go first, so this takes a cap's worth of accepted orders within the
// consumer's lag. Pending records are not indexed: they are as many as the
// requests in flight (plus lost Finishes, taken over as above).
// The scripts are claim_idempotency_key.lua, take_over_idempotency_key.lua and
// finish_idempotency_key.lua (called by EVALSHA). NOTE: Claim and Finish touch
// keys in several hash slots (not Cluster-ready, like order:<id>); see their
// headers.
#include <boost/asio/io_context.hpp>
#include <functional>
#include <optional>
#include <string>

#include "backends/redis/redis_connection.hpp"
#include "core/domain.hpp"
#include "core/idempotency_store.hpp"

namespace flashsale::redis {

class RedisIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    std::int64_t ttl_ms = 24 * 3'600'000;
    // How long an owner may take before a retry takes its key over.
    std::int64_t pending_ttl_ms = 30'000;
    int poll_ms = 5;  // how often a racing retry looks for the first answer
    // Finished answers kept at most (refusals let go first). ~kBytesPerKey each.
    std::int64_t max_keys = (std::int64_t{256} << 20) / kBytesPerKey;
    // The first order stored with an Idempotency-Key; `done` may run on any
    // thread but the lookup must not block a Redis I/O thread. Empty: let-go
    // keys are forgotten.
    std::function<void(std::string key, std::function<void(Result<std::optional<Order>>)> done)>
        find_order;
  };
  // Redis memory per finished key with its index entry (string with expiry +
  // sorted-set member). Measured with INFO used_memory on Redis 7.0: 344 B for
  // a 34-character key and a refusal; 400 leaves room for an order id.
  static constexpr std::int64_t kBytesPerKey = 400;
  // `redis` and `io` (which runs the poll timers) must outlive the store.
  RedisIdempotencyStore(RedisCommander& redis, boost::asio::io_context& io, Options options);

  void Claim(std::string_view key, const PurchaseFingerprint& fp, const OrderId& proposed_order,
             ClaimCallback done) override;
  void Finish(std::string_view key, const PurchaseReply& reply, bool remember) override;

 private:
  struct Attempt {
    std::string key;
    PurchaseFingerprint fp;
    OrderId proposed_order;
    ClaimCallback done;
    std::int64_t give_up_at_ms = 0;
  };
  void TryClaim(Attempt a);
  void PollLater(Attempt a);
  // The pending value `stale` outlived its owner: make it ours (same order id
  // unless that reservation was released) or look again if someone else did.
  void TakeOver(Attempt a, std::string stale, OrderId stale_order);
  // We own a key Redis did not know, while accepted answers were let go.
  void ClaimFromOrderRecord(Attempt a);

  RedisCommander& redis_;
  boost::asio::io_context& io_;
  const Options options_;
};

}  // namespace flashsale::redis
