#include "http/client_address.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "core/rate_limiter.hpp"

namespace flashsale::http {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

std::optional<ClientAddress> ClientAddress::Parse(std::string_view text) {
  text = Trim(text);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  char buf[INET6_ADDRSTRLEN + 1];  // inet_pton wants a NUL-terminated string
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ClientAddress a;
  if (text.find(':') == std::string_view::npos) {
    in_addr v4{};
    if (::inet_pton(AF_INET, buf, &v4) != 1) return std::nullopt;
    std::memcpy(a.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    return a;
  }
  if (::inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  return a;
}

ClientAddress ClientAddress::FromV4(std::uint32_t host_order) {
  ClientAddress a;
  std::memcpy(a.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
  a.bytes[12] = static_cast<std::uint8_t>(host_order >> 24);
  a.bytes[13] = static_cast<std::uint8_t>(host_order >> 16);
  a.bytes[14] = static_cast<std::uint8_t>(host_order >> 8);
  a.bytes[15] = static_cast<std::uint8_t>(host_order);
  return a;
}

bool ClientAddress::IsV4Mapped() const {
  return std::memcmp(bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

std::string ClientAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  const char* ok = IsV4Mapped() ? ::inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf)
                                : ::inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  return ok != nullptr ? std::string(buf) : std::string();
}

std::uint64_t ClientAddress::Hash() const {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  std::memcpy(&hi, bytes.data(), 8);
  std::memcpy(&lo, bytes.data() + 8, 8);
  return MixKey(hi) ^ lo;  // the limiter mixes again: lo needs no mixing here
}

Result<TrustedProxies> TrustedProxies::Parse(std::string_view list) {
  TrustedProxies out;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view raw = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    const std::string_view entry = Trim(raw);
    if (entry.empty()) continue;
    const auto bad = [&](std::string_view why) {
      return Status::Invalid("trusted proxy '" + std::string(entry) + "': " + std::string(why));
    };
    const std::size_t slash = entry.find('/');
    const std::optional<ClientAddress> base = ClientAddress::Parse(entry.substr(0, slash));
    if (!base) return bad("not an IPv4/IPv6 address or CIDR");
    Net net{*base, 128};
    if (slash != std::string_view::npos) {
      const std::string_view len = entry.substr(slash + 1);
      const int max = base->IsV4Mapped() ? 32 : 128;
      int bits = 0;
      if (len.empty() || len.size() > 3) return bad("bad prefix length");
      for (char c : len) {
        if (c < '0' || c > '9') return bad("bad prefix length");
        bits = bits * 10 + (c - '0');
      }
      if (bits > max) return bad("prefix length over " + std::to_string(max));
      net.bits = base->IsV4Mapped() ? 96 + bits : bits;
    }
    for (int i = net.bits; i < 128; ++i) {
      net.base.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
    }
    out.nets_.push_back(net);
  }
  return out;
}

bool TrustedProxies::Contains(const ClientAddress& a) const {
  for (const Net& n : nets_) {
    const int full = n.bits / 8;
    if (std::memcmp(a.bytes.data(), n.base.bytes.data(), static_cast<std::size_t>(full)) != 0) {
      continue;
    }
    const int rest = n.bits % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
    if ((a.bytes[full] & mask) == n.base.bytes[full]) return true;
  }
  return false;
}

ClientAddress ResolveClient(const ClientAddress& peer, bool peer_is_trusted_proxy,
                            std::string_view forwarded_for, const TrustedProxies& trusted) {
  if (!peer_is_trusted_proxy || forwarded_for.empty()) return peer;
  ClientAddress last_good = peer;
  while (!forwarded_for.empty()) {
    const std::size_t comma = forwarded_for.rfind(',');
    const std::string_view entry =
        comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1);
    forwarded_for =
        comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
    const std::optional<ClientAddress> a = ClientAddress::Parse(entry);
    if (!a) return last_good;
    if (!trusted.Contains(*a)) return *a;
    last_good = *a;
  }
  return last_good;
}

}  // namespace flashsale::http
