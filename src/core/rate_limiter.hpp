#pragma once
// RateLimiter: token buckets keyed by a 64-bit key (README "Rate limits").
// One limiter per kind of key (client address, user id), each with its own
// rate and burst. Per instance: nothing is shared between servers.
//
// The bucket is kept in GCRA form (the generic cell rate algorithm, an exact
// token bucket): instead of (tokens, last refill) a slot stores one stamp,
// the time at which the bucket will be full again ("TAT"). A request at `now`
// is allowed when TAT - now <= (burst - 1) * interval, and then moves TAT
// one interval (1 / rate) later; tokens left = burst - (TAT - now) / interval.
// So a slot is 16 bytes (key, TAT) and is free as soon as TAT <= now: state
// expires by itself, nothing sweeps.
//
// Memory is bounded whatever the number of distinct keys: a fixed table of
// `capacity` slots (rounded up to a power of two) in kShards shards, mapped
// once (pages are touched only as keys land on them; huge pages where the
// kernel gives them, so resident memory grows in 2 MiB steps up to the
// table's size). A key lives in a probe
// window of kProbe slots of its shard. When the window holds kProbe live
// buckets of other keys, the stalest (smallest TAT: the one nearest to full)
// is evicted. Leniency this gives, under a flood of distinct keys: an evicted
// client starts again with a full burst. The evicted are the buckets nearest
// to full: a client over its limit has a TAT further ahead than any fresh key
// (whose TAT is one interval away), so a flood of fresh keys evicts its own
// kind first; the limited client goes only when all kProbe buckets of its
// window are further from full than it is.
//
// Thread safety: Acquire() may be called from any thread concurrently (one
// mutex per shard, held for a probe of kProbe slots).

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/mutex.hpp"

namespace flashsale {

// The kinds of bucket, in the order of FunnelMetrics::rate_limited.
enum class RateLimitKey : std::uint8_t { kAddress = 0, kUser = 1 };

struct RateLimit {
  double rate_per_s = 0;   // tokens added per second; 0: no limit
  std::int64_t burst = 0;  // bucket size (requests allowed at once); >= 1
  [[nodiscard]] bool enabled() const { return rate_per_s > 0; }
};

struct RateDecision {
  bool allowed = true;
  std::int64_t retry_after_s = 0;  // refused: seconds until the next token (>= 1)
};

class RateLimiter {
 public:
  static constexpr std::size_t kShards = 64;
  static constexpr std::size_t kProbe = 8;  // slots per probe window (two cache lines)
  // 2^21 slots of 16 bytes: 32 MiB at most, touched lazily.
  static constexpr std::size_t kDefaultCapacity = std::size_t{1} << 21;

  // REQUIRES: limit.enabled(), limit.burst >= 1.
  RateLimiter(RateLimit limit, std::size_t capacity = kDefaultCapacity);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes a token of `key`'s bucket at `now_us` (NowMicros(), or any clock
  // that never goes back: tests pass their own).
  RateDecision Acquire(std::uint64_t key, std::int64_t now_us);
  RateDecision Acquire(std::uint64_t key) { return Acquire(key, NowMicros()); }

  // CLOCK_MONOTONIC_COARSE in microseconds: a few ms of resolution, no
  // syscall, which is all a bucket of at most a few thousand tokens/s needs.
  static std::int64_t NowMicros();

  [[nodiscard]] std::size_t capacity() const { return kShards * slots_per_shard_; }
  [[nodiscard]] std::int64_t evictions() const;  // live buckets pushed out so far

 private:
  struct Slot {
    std::uint64_t key;  // mixed key; 0: never used
    std::int64_t tat;   // microseconds; the bucket is full at and after it
  };
  static_assert(sizeof(Slot) == 16);
  struct alignas(64) Shard {
    Mutex mu;
    std::int64_t evictions GUARDED_BY(mu) = 0;
  };
  struct FreeSlots {  // unmaps the whole mapping the aligned table lives in
    void* base;
    std::size_t bytes;
    void operator()(Slot* p) const;
  };

  const std::int64_t interval_us_;            // 1 / rate
  const std::int64_t tolerance_us_;           // (burst - 1) * interval
  const std::size_t slots_per_shard_;         // a power of two, >= kProbe
  std::unique_ptr<Slot[], FreeSlots> slots_;  // shard s: [s * slots_per_shard_, +slots_per_shard_)
  std::unique_ptr<Shard[]> shards_;
};

// A 64-bit mix (splitmix64's finalizer): keys built from ids or address bytes
// spread over shards and slots.
constexpr std::uint64_t MixKey(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace flashsale
