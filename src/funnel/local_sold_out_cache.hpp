#pragma once
// LocalSoldOutCache (L1): "this product is sold out" remembered in process for
// a TTL, so sold-out requests are answered with no lock and no network.
//
// A fixed open-addressing table of atomic slots: lookups are lock-free (two
// relaxed loads per probe); inserts claim an empty slot by CAS. When the table
// is full an insert is dropped, which is safe: a miss only means the stock
// store is asked. Entries are never removed, only expired (expiry 0 = cleared),
// so a slot keeps its product for life. Safe for concurrent use.
//
// Invariant (kept by the funnel): an entry is set only after the stock store
// answered SOLD_OUT or took the last unit, so a hit never refuses stock that
// was known to be available. Each product carries a restock epoch (how many
// times stock was given back): a MarkSoldOut() from a reservation older than
// the latest Clear() is ignored, so a late "sold out" cannot hide a restock.
// Writers (rare) serialize on striped mutexes; readers never lock.

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/clock.hpp"
#include "core/domain.hpp"
#include "core/mutex.hpp"

namespace flashsale {

class LocalSoldOutCache {
 public:
  // `capacity` is rounded up to a power of two.
  LocalSoldOutCache(std::int64_t ttl_ms, std::size_t capacity = 1 << 17);

  [[nodiscard]] bool Contains(ProductId id, std::int64_t now_ms) const;
  // `epoch`: the product's restock epoch seen by the reservation that sold out.
  void MarkSoldOut(ProductId id, std::int64_t epoch, std::int64_t now_ms);
  // Forgets the flag; later marks need an epoch >= `epoch`.
  void Clear(ProductId id, std::int64_t epoch);

 private:
  struct Slot {
    std::atomic<ProductId> id{0};  // 0 = empty (product ids are > 0)
    std::atomic<std::int64_t> expires_ms{0};
    std::int64_t epoch = 0;  // guarded by the slot's write stripe
  };
  // Finds or claims the slot of `id`; nullptr when the probe window is full.
  Slot* FindOrClaim(ProductId id);
  [[nodiscard]] std::size_t Home(ProductId id) const;

  const std::int64_t ttl_ms_;
  const std::size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  // Stripe i serializes writers of the slots whose index is i modulo the
  // stripe count; the slots themselves are atomics (readers take no lock), so
  // there is no GUARDED_BY to state.
  std::unique_ptr<Mutex[]> write_stripes_;
};

}  // namespace flashsale
