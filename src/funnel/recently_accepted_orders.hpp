#pragma once
// RecentlyAcceptedOrders: the orders this instance accepted that the database
// of record may not hold yet. In distributed mode an ACCEPTED order is in
// Kafka, and `flashsale consume` stores it later; until then only the
// accepting instance knows it, so that instance lists it as PENDING in
// GET /users/{id}/orders (SPEC §4) with no extra Redis command on the
// purchase path.
//
// Bounded: an entry leaves once the database returned it (MergeWithStored),
// once it is older than max_age_ms, or when a newer one pushes it out (at most
// max_orders in all, max_per_user per user). After that the order is listed
// again only once the database has it: that is the window the README states.
//
// Thread safety: every method may be called concurrently. The state is split
// into shards by user, each under its own mutex (held for O(max_per_user) at
// most), so the Kafka delivery thread that records and the HTTP threads that
// read rarely meet on one lock.

#include <array>
#include <cstddef>
#include <deque>
#include <unordered_map>
#include <vector>

#include "core/domain.hpp"
#include "core/mutex.hpp"
#include "core/order_queue.hpp"

namespace flashsale {

class RecentlyAcceptedOrders {
 public:
  struct Options {
    std::int64_t max_age_ms = 3'600'000;  // 1 h
    std::size_t max_orders = 100'000;     // all users together (~200 B each)
    std::size_t max_per_user = 1'000;     // what one GET /users/{id}/orders shows
  };

  explicit RecentlyAcceptedOrders(Options options);
  RecentlyAcceptedOrders() : RecentlyAcceptedOrders(Options{}) {}

  // Remembers `order` (as PENDING, without its Idempotency-Key) at `now`.
  void Record(const Order& order, UnixMillis now);

  // `stored`: the database's orders of `user`, newest first. Returns them plus
  // the remembered orders of `user` the database did not return, newest first
  // (created_at, then order id, both descending), at most `limit`. Remembered
  // orders the database returned are forgotten: its copy wins, so no order is
  // listed twice.
  std::vector<Order> MergeWithStored(UserId user, std::vector<Order> stored, std::size_t limit,
                                     UnixMillis now);

  // Orders remembered now.
  [[nodiscard]] std::size_t Size() const;

 private:
  // Order of recording, for the age and count bounds. An entry whose order
  // was forgotten earlier stays until it reaches the front (then it is
  // skipped), so max_orders bounds these entries, and the orders with them.
  struct Recorded {
    UserId user;
    OrderId id;
    UnixMillis at;
  };
  struct Shard {
    mutable Mutex mu;
    std::unordered_map<UserId, std::vector<Order>> by_user GUARDED_BY(mu);  // oldest first
    std::deque<Recorded> fifo GUARDED_BY(mu);
    std::size_t orders GUARDED_BY(mu) = 0;  // sum of by_user's sizes <= fifo.size()
  };
  static constexpr std::size_t kShards = 16;

  Shard& ShardOf(UserId user) { return shards_[static_cast<std::uint64_t>(user) % kShards]; }
  // Drops entries past the age or count bound.
  void EvictLocked(Shard& shard, UnixMillis now) const REQUIRES(shard.mu);

  const Options options_;
  const std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

// AcceptanceRecordingQueue: an OrderQueue decorator that records each order
// the inner queue accepted (answer OK) in `accepted`, before the funnel
// answers ACCEPTED, so a list request that follows the answer sees it. Other
// answers pass through unrecorded. Costs the hand-off one copy of the order
// and one callback wrapper; no lock besides the record's shard mutex on the
// inner queue's answer thread. Thread safety: as the inner queue.
// `inner` and `accepted` must outlive every answer of HandOff().
class AcceptanceRecordingQueue final : public OrderQueue {
 public:
  AcceptanceRecordingQueue(OrderQueue& inner, RecentlyAcceptedOrders& accepted)
      : inner_(inner), accepted_(accepted) {}

  void HandOff(Order order, HandOffCallback done) override;
  void Flush() override { inner_.Flush(); }

 private:
  OrderQueue& inner_;
  RecentlyAcceptedOrders& accepted_;
};

}  // namespace flashsale
