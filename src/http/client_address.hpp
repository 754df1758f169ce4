#pragma once
// ClientAddress: who sent a request, for rate limits and the waiting room's
// places per address (README "Admission control"). An IPv6 address, IPv4 as
// IPv4-mapped (::ffff:a.b.c.d), so one 16-byte key covers both. Plain value.

#include <array>
#include <cstdint>
#include <string>

namespace flashsale::http {

struct ClientAddress {
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const ClientAddress&, const ClientAddress&) = default;
};

}  // namespace flashsale::http
