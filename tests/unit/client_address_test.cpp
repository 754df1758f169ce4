// ClientAddress, TrustedProxies and ResolveClient (http/client_address.hpp).

#include "http/client_address.hpp"

#include <gtest/gtest.h>

namespace flashsale::http {
namespace {

ClientAddress A(std::string_view text) {
  std::optional<ClientAddress> a = ClientAddress::Parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ClientAddress{});
}

TrustedProxies T(std::string_view list) {
  Result<TrustedProxies> t = TrustedProxies::Parse(list);
  EXPECT_TRUE(t.has_value()) << list;
  return t ? *t : TrustedProxies{};
}

TEST(ClientAddress, ParsesIpv4AsMappedAndIpv6) {
  EXPECT_EQ(A("10.1.2.3"), ClientAddress::FromV4(0x0a010203));
  EXPECT_EQ(A(" 10.1.2.3 "), A("::ffff:10.1.2.3"));
  EXPECT_TRUE(A("10.1.2.3").IsV4Mapped());
  EXPECT_FALSE(A("::1").IsV4Mapped());
  EXPECT_EQ(A("[2001:db8::1]"), A("2001:db8::1"));
  for (std::string_view bad :
       {"", "10.1.2", "10.1.2.300", "hello", "1.2.3.4:80", "::g", "10.0.0.1/8", "unknown"}) {
    EXPECT_FALSE(ClientAddress::Parse(bad).has_value()) << bad;
  }
}

TEST(ClientAddress, ToStringIsDottedQuadForIpv4) {
  EXPECT_EQ(A("192.168.0.7").ToString(), "192.168.0.7");
  EXPECT_EQ(A("::ffff:192.168.0.7").ToString(), "192.168.0.7");
  EXPECT_EQ(A("2001:DB8:0:0::1").ToString(), "2001:db8::1");
  EXPECT_EQ(A("::1").ToString(), "::1");
}

TEST(ClientAddress, HashSeparatesAddresses) {
  EXPECT_EQ(A("10.0.0.1").Hash(), A("::ffff:10.0.0.1").Hash());
  EXPECT_NE(A("10.0.0.1").Hash(), A("10.0.0.2").Hash());
  EXPECT_NE(A("::1").Hash(), A("::2").Hash());
}

TEST(TrustedProxies, ParsesCidrList) {
  const TrustedProxies t = T(" 127.0.0.1, 10.0.0.0/8,::1 ,fd00::/8,192.168.1.128/25");
  EXPECT_TRUE(t.Contains(A("127.0.0.1")));
  EXPECT_FALSE(t.Contains(A("127.0.0.2")));
  EXPECT_TRUE(t.Contains(A("10.255.0.1")));
  EXPECT_FALSE(t.Contains(A("11.0.0.1")));
  EXPECT_TRUE(t.Contains(A("::1")));
  EXPECT_TRUE(t.Contains(A("fd12::5")));
  EXPECT_FALSE(t.Contains(A("fe00::5")));
  EXPECT_TRUE(t.Contains(A("192.168.1.200")));
  EXPECT_FALSE(t.Contains(A("192.168.1.100")));
  EXPECT_TRUE(T("").empty());
  EXPECT_TRUE(T("0.0.0.0/0").Contains(A("8.8.8.8")));
  EXPECT_FALSE(T("0.0.0.0/0").Contains(A("::1")));  // IPv4 /0 covers IPv4 only
}

TEST(TrustedProxies, ErrorsNameTheBadEntry) {
  for (std::string_view bad :
       {"127.0.0.1,10.0.0.0/33", "127.0.0.1,nonsense", "::1/129", "10.0.0.0/", "10.0.0.0/x"}) {
    Result<TrustedProxies> t = TrustedProxies::Parse(bad);
    ASSERT_FALSE(t.has_value()) << bad;
    const std::string bad_entry(bad.substr(bad.rfind(',') + 1));
    EXPECT_NE(t.error().message().find("'" + bad_entry + "'"), std::string::npos)
        << t.error().message();
  }
}

TEST(ResolveClient, UntrustedPeerIgnoresTheHeader) {
  const TrustedProxies t = T("127.0.0.1");
  EXPECT_EQ(ResolveClient(A("203.0.113.5"), false, "1.2.3.4", t), A("203.0.113.5"));
}

TEST(ResolveClient, TrustedPeerWalksFromTheRight) {
  const TrustedProxies t = T("127.0.0.1,10.0.0.0/8");
  const ClientAddress lb = A("127.0.0.1");
  EXPECT_EQ(ResolveClient(lb, true, "", t), lb);
  EXPECT_EQ(ResolveClient(lb, true, "1.2.3.4", t), A("1.2.3.4"));
  // The client made up the leftmost entry; the proxies appended the rest.
  EXPECT_EQ(ResolveClient(lb, true, "6.6.6.6, 1.2.3.4, 10.0.0.9", t), A("1.2.3.4"));
  // All trusted: the leftmost.
  EXPECT_EQ(ResolveClient(lb, true, "10.0.0.1,10.0.0.2", t), A("10.0.0.1"));
  // Malformed: stop at the last good address, or the peer.
  EXPECT_EQ(ResolveClient(lb, true, "1.2.3.4, garbage, 10.0.0.3", t), A("10.0.0.3"));
  EXPECT_EQ(ResolveClient(lb, true, "1.2.3.4,garbage", t), lb);
  EXPECT_EQ(ResolveClient(lb, true, "[2001:db8::7]", t), A("2001:db8::7"));
}

}  // namespace
}  // namespace flashsale::http
