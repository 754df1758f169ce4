#include "backends/embedded/memory_waiting_room.hpp"

#include <random>

namespace flashsale::embedded {
namespace {

std::uint64_t RandomGeneration() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

MemoryWaitingRoom::MemoryWaitingRoom(StockStore& stock)
    : stock_(stock), generation_(RandomGeneration()) {}

MemoryWaitingRoom::Queue& MemoryWaitingRoom::QueueOf(const StockSnapshot& snapshot) {
  auto [it, created] = queues_.try_emplace(snapshot.product.id);
  QueueState& s = it->second.state;
  if (created) s.generation = generation_;
  s.room = *snapshot.product.waiting_room;
  s.starts_at = snapshot.product.starts_at;
  s.sold_out = snapshot.remaining == 0;
  return it->second;
}

Result<WaitingRoomStore::Joined> MemoryWaitingRoom::Join(ProductId product, UserId user,
                                                         std::string_view address,
                                                         std::int64_t max_places, UnixMillis now) {
  Result<std::optional<StockSnapshot>> snapshot = stock_.Get(product);
  if (!snapshot) return snapshot.error();
  Joined joined;
  if (!*snapshot) {
    joined.outcome = JoinOutcome::kUnknownProduct;
    return joined;
  }
  if (!(*snapshot)->product.waiting_room) {
    joined.outcome = JoinOutcome::kNoWaitingRoom;
    return joined;
  }
  MutexLock lock(&mu_);
  Queue& q = QueueOf(**snapshot);
  // Advance first: positions handed out below must not find admissions
  // banked while the queue was empty (the frontier is capped at `joined`).
  AdvanceFrontier(q.state, now);
  if (auto it = q.positions.find(user); it != q.positions.end()) {
    joined.outcome = JoinOutcome::kAlreadyJoined;
    joined.position = it->second;
  } else {
    std::int64_t& places = q.places_by_address[std::string(address)];
    if (max_places > 0 && places >= max_places) {
      joined.outcome = JoinOutcome::kAddressFull;
    } else {
      ++places;
      joined.outcome = JoinOutcome::kJoined;
      joined.position = ++q.state.joined;
      q.positions.emplace(user, joined.position);
    }
  }
  joined.state = q.state;  // newly_admitted: what the advance above admitted
  return joined;
}

Result<std::optional<QueueState>> MemoryWaitingRoom::Advance(ProductId product, UnixMillis now) {
  Result<std::optional<StockSnapshot>> snapshot = stock_.Get(product);
  if (!snapshot) return snapshot.error();
  if (!*snapshot || !(*snapshot)->product.waiting_room) return std::optional<QueueState>();
  MutexLock lock(&mu_);
  Queue& q = QueueOf(**snapshot);
  AdvanceFrontier(q.state, now);
  return std::optional<QueueState>(q.state);
}

}  // namespace flashsale::embedded
