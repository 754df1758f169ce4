#pragma once
// The clocks of flashsale, in one place. Thread-safe (they only read clocks).
//
// - NowMillis(): wall-clock time, for what is stored or shown (order ids,
//   created_at, sale windows). May jump when the system clock is set.
// - SteadyMillis() / MonotonicNanos(): never go back, for timeouts, TTLs and
//   durations (L1 expiry, connection sweeps, latency histograms).

#include <chrono>
#include <cstdint>

namespace flashsale {

// Milliseconds since the Unix epoch (UTC).
using UnixMillis = std::int64_t;

inline UnixMillis NowMillis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

inline std::int64_t SteadyMillis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

inline std::int64_t MonotonicNanos() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace flashsale
