#pragma once
// MemoryWaitingRoom: the embedded mode's waiting rooms, in this process's
// memory (README "Admission control"). Product facts (the room's rate and
// pass TTL, starts_at, whether units remain) are read from the stock store on
// every call, so an admin change applies at once.
//
// Not persisted: after a restart every queue starts empty under a new
// generation, and tickets of the old one answer QUEUE_RESET (their holders
// join again). Passes already handed out stay valid until they expire: they
// are signed, not stored.
//
// Thread-safe: one mutex over every queue (joins and polls are not the
// purchase hot path, and each call is a few map operations).

#include <cstdint>
#include <string>
#include <unordered_map>

#include "core/admission.hpp"
#include "core/mutex.hpp"
#include "core/stock_store.hpp"

namespace flashsale::embedded {

class MemoryWaitingRoom final : public WaitingRoomStore {
 public:
  // `stock` must outlive this store.
  explicit MemoryWaitingRoom(StockStore& stock);

  [[nodiscard]] bool blocking() const override { return false; }
  Result<Joined> Join(ProductId product, UserId user, std::string_view address,
                      std::int64_t max_places, UnixMillis now) override;
  Result<std::optional<QueueState>> Advance(ProductId product, UnixMillis now) override;

 private:
  struct Queue {
    QueueState state;
    std::unordered_map<UserId, std::int64_t> positions;
    std::unordered_map<std::string, std::int64_t> places_by_address;
  };
  // The queue of `snapshot`'s product, its copy of the product facts
  // refreshed. REQUIRES: the product has a waiting room.
  Queue& QueueOf(const StockSnapshot& snapshot) REQUIRES(mu_);

  StockStore& stock_;
  const std::uint64_t generation_;
  Mutex mu_;
  std::unordered_map<ProductId, Queue> queues_ GUARDED_BY(mu_);
};

}  // namespace flashsale::embedded
