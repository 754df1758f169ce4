#pragma once
// RedisIdempotencyStore: Idempotency-Key answers shared by every instance
// (SPEC §4), so a retry sent to another instance never reserves twice.
//
// One key per Idempotency-Key, `idem:<key>`:
//   "P|<user>|<product>|<amount>"                 claimed, first request in flight
//                                                 (TTL Options::pending_ttl_ms, so a
//                                                 crashed owner does not block the key)
//   "F|<user>|<product>|<amount>|<outcome>|<s>|<order id>"
//                                                 the first answer (TTL 24 h);
//                                                 <s> is "OK" or "UNKNOWN"
// Claim is one `SET key P|... NX GET PX ...` (Redis >= 7.0): whoever sets it
// owns the key; the others read the value back in the same round trip.
// Racing retries poll the key until the owner's answer is there.
//
// Thread safety: safe for concurrent use; callbacks run on a Redis I/O thread
// or on `io` (timers), never under a lock.

#include <boost/asio/io_context.hpp>

#include "backends/redis/redis_connection.hpp"
#include "core/idempotency_store.hpp"

namespace flashsale::redis {

class RedisIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    std::int64_t ttl_ms = 24 * 3'600'000;
    std::int64_t pending_ttl_ms = 30'000;
    int poll_ms = 5;  // how often a racing retry looks for the first answer
  };
  // `redis` and `io` (which runs the poll timers) must outlive the store.
  RedisIdempotencyStore(RedisCommander& redis, boost::asio::io_context& io, Options options);

  void Claim(std::string_view key, const PurchaseFingerprint& fp, ClaimCallback done) override;
  void Finish(std::string_view key, const PurchaseReply& reply, bool remember) override;

 private:
  void TryClaim(std::string key, PurchaseFingerprint fp, ClaimCallback done,
                std::int64_t give_up_at_ms);

  RedisCommander& redis_;
  boost::asio::io_context& io_;
  const Options options_;
};

}  // namespace flashsale::redis
