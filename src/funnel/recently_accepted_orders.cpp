#include "funnel/recently_accepted_orders.hpp"

#include <algorithm>
#include <utility>

namespace flashsale {
namespace {

bool NewerFirst(const Order& a, const Order& b) {
  if (a.created_at != b.created_at) return a.created_at > b.created_at;
  return a.id.view() > b.id.view();
}

// Removes the order `id` from `orders`; false when it is not there.
bool EraseById(std::vector<Order>& orders, const OrderId& id) {
  auto it = std::find_if(orders.begin(), orders.end(), [&](const Order& o) { return o.id == id; });
  if (it == orders.end()) return false;
  orders.erase(it);
  return true;
}

}  // namespace

RecentlyAcceptedOrders::RecentlyAcceptedOrders(Options options)
    : options_(options), max_per_shard_(std::max<std::size_t>(1, options.max_orders / kShards)) {}

void RecentlyAcceptedOrders::Record(const Order& order, UnixMillis now) {
  Shard& shard = ShardOf(order.user);
  MutexLock lock(&shard.mu);
  std::vector<Order>& mine = shard.by_user[order.user];
  for (const Order& o : mine) {
    if (o.id == order.id) return;  // recorded already
  }
  if (mine.size() >= options_.max_per_user) {
    mine.erase(mine.begin());  // its fifo entry is skipped later
    --shard.orders;
  }
  Order& kept = mine.emplace_back();
  kept.id = order.id;
  kept.user = order.user;
  kept.product = order.product;
  kept.quantity = order.quantity;
  kept.price = order.price;
  kept.status = OrderStatus::kPending;
  kept.created_at = order.created_at;
  ++shard.orders;
  shard.fifo.push_back(Recorded{order.user, order.id, now});
  EvictLocked(shard, now);
}

void RecentlyAcceptedOrders::EvictLocked(Shard& shard, UnixMillis now) const {
  while (!shard.fifo.empty() && (shard.fifo.size() > max_per_shard_ ||
                                 now - shard.fifo.front().at >= options_.max_age_ms)) {
    const Recorded oldest = shard.fifo.front();
    shard.fifo.pop_front();
    auto it = shard.by_user.find(oldest.user);
    if (it == shard.by_user.end()) continue;
    if (EraseById(it->second, oldest.id)) --shard.orders;
    if (it->second.empty()) shard.by_user.erase(it);
  }
}

std::vector<Order> RecentlyAcceptedOrders::MergeWithStored(UserId user, std::vector<Order> stored,
                                                           std::size_t limit, UnixMillis now) {
  std::vector<Order> in_flight;
  {
    Shard& shard = ShardOf(user);
    MutexLock lock(&shard.mu);
    EvictLocked(shard, now);
    auto it = shard.by_user.find(user);
    if (it == shard.by_user.end()) return stored;
    std::vector<Order>& mine = it->second;
    for (auto o = mine.begin(); o != mine.end();) {
      const bool in_database =
          std::any_of(stored.begin(), stored.end(), [&](const Order& s) { return s.id == o->id; });
      if (in_database) {
        o = mine.erase(o);
        --shard.orders;
      } else {
        in_flight.push_back(*o);
        ++o;
      }
    }
    if (mine.empty()) shard.by_user.erase(it);
  }
  if (in_flight.empty()) return stored;
  stored.insert(stored.end(), std::make_move_iterator(in_flight.begin()),
                std::make_move_iterator(in_flight.end()));
  std::sort(stored.begin(), stored.end(), NewerFirst);
  if (stored.size() > limit) stored.resize(limit);
  return stored;
}

std::size_t RecentlyAcceptedOrders::Size() const {
  std::size_t n = 0;
  for (const Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    n += shard.orders;
  }
  return n;
}

void AcceptanceRecordingQueue::HandOff(Order order, HandOffCallback done) {
  Order recorded;
  recorded.id = order.id;
  recorded.user = order.user;
  recorded.product = order.product;
  recorded.quantity = order.quantity;
  recorded.price = order.price;
  recorded.created_at = order.created_at;
  inner_.HandOff(std::move(order), [accepted = &accepted_, recorded = std::move(recorded),
                                    done = std::move(done)](const Status& s) {
    // Recorded before the funnel answers, so the buyer's next list has it.
    if (s.ok()) accepted->Record(recorded, NowMillis());
    done(s);
  });
}

}  // namespace flashsale
