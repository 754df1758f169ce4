#pragma once
// RedisWaitingRoom: the WaitingRoomStore of distributed mode. Every instance
// sharing the Redis hands out positions and moves the admission frontier
// through the same two scripts (queue_join.lua, queue_advance.lua, each behind
// queue_frontier.lua), which run atomically on the product's hash slot (keys
// item:{<id>}:queue, :queue:users, :queue:addresses; redis_keys.hpp), so no
// two instances ever hand out one position and all admit in one order. The frontier rule is
// AdvanceFrontier() (core/admission.hpp), computed by the scripts in the same doubles; the waiting
// room's settings (wr_admit_per_s, wr_pass_ttl_s) and starts_at are read from the product's meta
// hash, the sold-out state from its stock and L2 keys, on every call: an instance needs no catalog
// of its own.
//
// Calls block the caller until Redis answers or the connection's timeout
// passes (blocking() is true: the HTTP layer runs them on its blocking pool).
// Failures come back as Status::Unavailable (connection down, timeout, a
// Redis error reply such as LOADING or OOM), a malformed reply as Internal;
// nothing throws. A join whose reply was lost may have taken its position:
// joining again returns it (kAlreadyJoined), never a second one.
//
// Thread safety: Join() and Advance() from any number of threads at once.
// REQUIRES: never called on the I/O thread that runs `redis`' callbacks (the
// reply could only be read by the thread waiting for it).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/redis/redis_connection.hpp"
#include "core/admission.hpp"

namespace flashsale::redis {

class RedisWaitingRoom final : public WaitingRoomStore {
 public:
  // `redis` must outlive the store; a pool or one connection, whose
  // reconnection, backoff and timeout (RedisConnection::Options) apply.
  explicit RedisWaitingRoom(RedisCommander& redis) : redis_(redis) {}

  [[nodiscard]] bool blocking() const override { return true; }
  Result<Joined> Join(ProductId product, UserId user, std::string_view address,
                      std::int64_t max_places, UnixMillis now) override;
  Result<std::optional<QueueState>> Advance(ProductId product, UnixMillis now) override;

 private:
  RedisCommander& redis_;
};

}  // namespace flashsale::redis
