#include "core/rate_limiter.hpp"

#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <new>

namespace flashsale {

namespace {
constexpr std::size_t kHugePage = std::size_t{2} << 20;
}  // namespace

void RateLimiter::FreeSlots::operator()(Slot* p) const {
  if (p != nullptr) ::munmap(base, bytes);
}

RateLimiter::RateLimiter(RateLimit limit, std::size_t capacity)
    : interval_us_(std::max<std::int64_t>(1, std::llround(1e6 / limit.rate_per_s))),
      tolerance_us_((std::max<std::int64_t>(limit.burst, 1) - 1) * interval_us_),
      slots_per_shard_(std::bit_ceil(std::max(capacity / kShards, kProbe))),
      shards_(new Shard[kShards]) {
  // Anonymous memory: the kernel hands out zero pages as they are first
  // touched, so an idle table costs address space, not resident memory (at
  // most the table's size once every page was touched). Aligned to 2 MiB and
  // advised huge: every probe lands on a random page, and with 4 KiB pages
  // each would also miss the TLB (the probe's cache miss is most of the
  // limiter's cost: bench/results-2026-12-08-issue10.md).
  const std::size_t bytes = kShards * slots_per_shard_ * sizeof(Slot);
  const std::size_t mapped = bytes + kHugePage;
  void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();
  auto aligned = (reinterpret_cast<std::uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1);
  ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // a hint: may fail
  slots_ =
      std::unique_ptr<Slot[], FreeSlots>(reinterpret_cast<Slot*>(aligned), FreeSlots{base, mapped});
}

RateLimiter::~RateLimiter() = default;

std::int64_t RateLimiter::NowMicros() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

RateDecision RateLimiter::Acquire(std::uint64_t key, std::int64_t now_us) {
  std::uint64_t k = MixKey(key);
  if (k == 0) k = 1;                                            // 0 marks a slot never used
  const std::size_t shard = static_cast<std::size_t>(k >> 58);  // top 6 bits: kShards == 64
  static_assert(kShards == 64);
  const std::size_t mask = slots_per_shard_ - 1;
  const std::size_t start = static_cast<std::size_t>(k) & mask;
  Slot* const base = slots_.get() + shard * slots_per_shard_;

  Shard& sh = shards_[shard];
  MutexLock lock(&sh.mu);
  Slot* found = nullptr;
  Slot* free_slot = nullptr;
  Slot* stalest = nullptr;
  for (std::size_t i = 0; i < kProbe; ++i) {
    Slot* s = base + ((start + i) & mask);
    if (s->key == k) {
      found = s;
      break;
    }
    if (s->key == 0 || s->tat <= now_us) {
      if (free_slot == nullptr) free_slot = s;
    } else if (stalest == nullptr || s->tat < stalest->tat) {
      stalest = s;
    }
  }
  if (found == nullptr) {
    // A new bucket (full). Its request is always allowed: claim a slot.
    if (free_slot == nullptr) {
      free_slot = stalest;
      ++sh.evictions;
    }
    free_slot->key = k;
    free_slot->tat = now_us + interval_us_;
    return {};
  }
  const std::int64_t tat = std::max(found->tat, now_us);
  const std::int64_t wait_us = tat - tolerance_us_ - now_us;  // > 0: no token yet
  if (wait_us > 0) {
    return {false, std::max<std::int64_t>(1, (wait_us + 999'999) / 1'000'000)};
  }
  found->tat = tat + interval_us_;
  return {};
}

std::int64_t RateLimiter::evictions() const {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    MutexLock lock(&shards_[i].mu);
    n += shards_[i].evictions;
  }
  return n;
}

}  // namespace flashsale
