#include "funnel/local_sold_out_cache.hpp"

#include <bit>
#include <chrono>

namespace flashsale {
namespace {
constexpr std::size_t kMaxProbes = 16;
constexpr std::size_t kStripes = 64;
}  // namespace

LocalSoldOutCache::LocalSoldOutCache(std::int64_t ttl_ms, std::size_t capacity)
    : ttl_ms_(ttl_ms),
      mask_(std::bit_ceil(capacity < 16 ? std::size_t{16} : capacity) - 1),
      slots_(new Slot[mask_ + 1]),
      write_stripes_(new Mutex[kStripes]) {}

std::size_t LocalSoldOutCache::Home(ProductId id) const {
  // Fibonacci hashing spreads consecutive ids.
  return static_cast<std::size_t>(static_cast<std::uint64_t>(id) * 0x9E3779B97F4A7C15ull >> 17) &
         mask_;
}

bool LocalSoldOutCache::Contains(ProductId id, std::int64_t now_ms) const {
  std::size_t i = Home(id);
  for (std::size_t probe = 0; probe < kMaxProbes; ++probe, i = (i + 1) & mask_) {
    const ProductId slot_id = slots_[i].id.load(std::memory_order_acquire);
    if (slot_id == id) return slots_[i].expires_ms.load(std::memory_order_acquire) > now_ms;
    if (slot_id == 0) return false;
  }
  return false;
}

LocalSoldOutCache::Slot* LocalSoldOutCache::FindOrClaim(ProductId id) {
  std::size_t i = Home(id);
  for (std::size_t probe = 0; probe < kMaxProbes; ++probe, i = (i + 1) & mask_) {
    ProductId expected = 0;
    if (slots_[i].id.compare_exchange_strong(expected, id, std::memory_order_acq_rel) ||
        expected == id) {
      return &slots_[i];
    }
  }
  return nullptr;
}

void LocalSoldOutCache::MarkSoldOut(ProductId id, std::int64_t epoch, std::int64_t now_ms) {
  Slot* slot = FindOrClaim(id);
  if (slot == nullptr) return;  // probe window full: not caching is always safe
  MutexLock lock(&write_stripes_[static_cast<std::size_t>(slot - slots_.get()) % kStripes]);
  if (epoch < slot->epoch) return;  // a restock happened after this sell-out
  slot->epoch = epoch;
  slot->expires_ms.store(now_ms + ttl_ms_, std::memory_order_release);
}

void LocalSoldOutCache::Clear(ProductId id, std::int64_t epoch) {
  Slot* slot = FindOrClaim(id);
  if (slot == nullptr) return;
  MutexLock lock(&write_stripes_[static_cast<std::size_t>(slot - slots_.get()) % kStripes]);
  if (epoch > slot->epoch) slot->epoch = epoch;
  slot->expires_ms.store(0, std::memory_order_release);
}

}  // namespace flashsale
