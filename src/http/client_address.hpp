#pragma once
// ClientAddress: who sent a request, for rate limits and the waiting room's
// places per address (README "Admission control"). An IPv6 address, IPv4 as
// IPv4-mapped (::ffff:a.b.c.d), so one 16-byte key covers both. Plain value.
//
// TrustedProxies: the --trusted-proxies CIDR list, and ResolveClient(), the
// rule that says when X-Forwarded-For names the client. Immutable after
// parsing; safe to read from any thread.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace flashsale::http {

struct ClientAddress {
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const ClientAddress&, const ClientAddress&) = default;

  // IPv4 ("10.0.0.1") or IPv6 ("::1", "[::1]") text; nullopt when neither.
  // Surrounding spaces are ignored. No allocation.
  static std::optional<ClientAddress> Parse(std::string_view text);
  static ClientAddress FromV4(std::uint32_t host_order);
  [[nodiscard]] bool IsV4Mapped() const;
  // Dotted quad for IPv4-mapped addresses, RFC 5952 text otherwise.
  [[nodiscard]] std::string ToString() const;
  // The rate limiter's key (any fixed mix of the 16 bytes).
  [[nodiscard]] std::uint64_t Hash() const;
};

class TrustedProxies {
 public:
  // "127.0.0.1,10.0.0.0/8,::1" (spaces around entries allowed; empty: none).
  // An error names the bad entry.
  static Result<TrustedProxies> Parse(std::string_view list);

  [[nodiscard]] bool Contains(const ClientAddress& a) const;
  [[nodiscard]] bool empty() const { return nets_.empty(); }

 private:
  struct Net {
    ClientAddress base;  // masked to `bits`
    int bits = 128;      // prefix length on the 16-byte form (IPv4 /n: 96 + n)
  };
  std::vector<Net> nets_;
};

// The client of a request: the TCP peer, unless the peer is a trusted proxy
// and X-Forwarded-For is present: then the list is walked from the right
// (the nearest proxy's entry first), trusted proxies skipped, and the first
// untrusted address is the client (all trusted: the leftmost). A malformed
// entry stops the walk: the last good address (or the peer) is the client,
// so a client cannot hide behind garbage. No allocation.
ClientAddress ResolveClient(const ClientAddress& peer, bool peer_is_trusted_proxy,
                            std::string_view forwarded_for, const TrustedProxies& trusted);

}  // namespace flashsale::http
