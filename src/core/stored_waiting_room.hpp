#pragma once
// Product::waiting_room as the stores keep it: two nullable values (database
// columns waiting_room_admit_per_s / waiting_room_pass_ttl_s, Redis hash fields
// wr_admit_per_s / wr_pass_ttl_s), both set or both absent. Pure functions.

#include <cstdint>
#include <optional>

#include "core/domain.hpp"

namespace flashsale {

// A half alone reads as no waiting room (the writers always write both).
inline std::optional<WaitingRoom> WaitingRoomOf(std::optional<std::int64_t> admit_per_s,
                                                std::optional<std::int64_t> pass_ttl_s) {
  if (!admit_per_s || !pass_ttl_s) return std::nullopt;
  return WaitingRoom{.admit_per_s = *admit_per_s, .pass_ttl_s = *pass_ttl_s};
}
inline std::optional<std::int64_t> AdmitPerS(const Product& p) {
  return p.waiting_room ? std::optional(p.waiting_room->admit_per_s) : std::nullopt;
}
inline std::optional<std::int64_t> PassTtlS(const Product& p) {
  return p.waiting_room ? std::optional(p.waiting_room->pass_ttl_s) : std::nullopt;
}
// Both values within WaitingRoom's bounds (1..kMaxAdmitPerS, 1..kMaxPassTtlS).
inline bool ValidWaitingRoom(const WaitingRoom& w) {
  return w.admit_per_s >= 1 && w.admit_per_s <= kMaxAdmitPerS && w.pass_ttl_s >= 1 &&
         w.pass_ttl_s <= kMaxPassTtlS;
}

}  // namespace flashsale
