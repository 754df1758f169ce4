// core_test: the value types every layer shares (src/core): Status and
// Result, order ids, RFC 3339 times, prices, decimal integers, and the metrics
// renderers.
// Everything here is pure; only the order id test uses threads (16 × 10k ids
// from one generator must all differ).

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/domain.hpp"
#include "core/metrics.hpp"
#include "core/numbers.hpp"
#include "core/purchase.hpp"
#include "core/status.hpp"
#include "run_concurrently.hpp"

namespace flashsale {
namespace {

// ---------------------------------------------------------------- Status ---

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kOk);
  EXPECT_FALSE(s.IsRetryable());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(Status, NamedConstructorsCarryCodeAndMessage) {
  struct Case {
    Status status;
    Status::Code code;
    const char* name;
    bool retryable;
  };
  const Case cases[] = {
      {Status::Unavailable("redis down"), Status::Code::kUnavailable, "Unavailable", true},
      {Status::NotDelivered("redis down"), Status::Code::kNotDelivered, "NotDelivered", true},
      {Status::Unknown("redis down"), Status::Code::kUnknown, "Unknown", true},
      {Status::Invalid("redis down"), Status::Code::kInvalid, "Invalid", false},
      {Status::NotFound("redis down"), Status::Code::kNotFound, "NotFound", false},
      {Status::Conflict("redis down"), Status::Code::kConflict, "Conflict", false},
      {Status::Internal("redis down"), Status::Code::kInternal, "Internal", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_EQ(c.status.message(), "redis down");
    EXPECT_EQ(c.status.IsRetryable(), c.retryable);
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": redis down");
  }
  EXPECT_TRUE(Status::NotDelivered("x").IsNotDelivered());
  EXPECT_FALSE(Status::Unknown("x").IsNotDelivered());
  EXPECT_TRUE(Status::Unknown("x").IsUnknown());
  EXPECT_FALSE(Status::NotDelivered("x").IsUnknown());
}

Result<int> Half(int n) {
  if (n % 2 != 0) return Status::Invalid("odd");
  return n / 2;
}

TEST(Result, HoldsAValueOrAStatus) {
  Result<int> good = Half(4);
  ASSERT_TRUE(good.has_value());
  EXPECT_TRUE(good);
  EXPECT_EQ(*good, 2);
  EXPECT_EQ(good.value(), 2);

  Result<int> bad = Half(3);
  ASSERT_FALSE(bad.has_value());
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Status::Code::kInvalid);
  EXPECT_EQ(bad.error().message(), "odd");
}

TEST(Result, ValueOfAnErrorThrowsBadResultAccess) {
  Result<int> bad = Half(3);
  try {
    (void)bad.value();
    FAIL() << "value() of an error must throw";
  } catch (const BadResultAccess& e) {
    EXPECT_STREQ(e.what(), "odd");
  }
}

TEST(Check, FailedCheckThrowsLogicErrorWithFileAndLine) {
  try {
    FLASHSALE_CHECK(1 + 1 == 3, "arithmetic is broken");
    FAIL() << "FLASHSALE_CHECK(false) must throw";
  } catch (const std::logic_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("1 + 1 == 3"), std::string::npos) << what;
    EXPECT_NE(what.find("arithmetic is broken"), std::string::npos) << what;
    EXPECT_NE(what.find("core_test.cpp:"), std::string::npos) << what;
  }
  EXPECT_NO_THROW(FLASHSALE_CHECK(true, "never"));
}

TEST(PurchaseOutcome, EveryOutcomeHasANameAndASeedMessage) {
  EXPECT_EQ(StatusName(PurchaseOutcome::kAccepted), "ACCEPTED");
  EXPECT_EQ(StatusName(PurchaseOutcome::kSoldOut), "SOLD_OUT");
  EXPECT_EQ(StatusName(PurchaseOutcome::kInsufficientStock), "INSUFFICIENT_STOCK");
  EXPECT_EQ(StatusName(PurchaseOutcome::kLimitExceeded), "LIMIT_EXCEEDED");
  EXPECT_EQ(StatusName(PurchaseOutcome::kNotStarted), "NOT_STARTED");
  EXPECT_EQ(StatusName(PurchaseOutcome::kEnded), "ENDED");
  EXPECT_EQ(StatusName(PurchaseOutcome::kUnknownProduct), "UNKNOWN_PRODUCT");
  EXPECT_EQ(SeedMessage(PurchaseOutcome::kSoldOut), "商品已售罄");
  EXPECT_EQ(SeedMessage(PurchaseOutcome::kAccepted), "抢购成功，订单正在处理中！");
  EXPECT_EQ(ToPurchaseOutcome(ReserveOutcome::kReserved), PurchaseOutcome::kAccepted);
  EXPECT_EQ(ToPurchaseOutcome(ReserveOutcome::kInsufficientStock),
            PurchaseOutcome::kInsufficientStock);
}

TEST(OrderStatus, RoundTripsThroughItsName) {
  for (OrderStatus s : {OrderStatus::kPending, OrderStatus::kConfirmed, OrderStatus::kFailed}) {
    EXPECT_EQ(ParseOrderStatus(ToString(s)), s);
  }
  EXPECT_EQ(ToString(OrderStatus::kConfirmed), "CONFIRMED");
  EXPECT_FALSE(ParseOrderStatus("confirmed").has_value());
  EXPECT_FALSE(ParseOrderStatus("").has_value());
}

// --------------------------------------------------------------- OrderId ---

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

TEST(OrderId, DefaultIsEmpty) {
  OrderId id;
  EXPECT_TRUE(id.empty());
  EXPECT_EQ(id.view(), "");
  EXPECT_EQ(id, OrderId());
}

TEST(OrderId, GeneratedIdsHaveTheDocumentedShape) {
  OrderIdGenerator gen;
  const UnixMillis now = 1795600800000;  // 2026-11-25T10:00:00Z
  const OrderId id = gen.Next(now);
  ASSERT_EQ(id.view().size(), OrderId::kLength);
  EXPECT_TRUE(IsLowerHex(id.view())) << id.view();
  EXPECT_FALSE(id.empty());
  // The first 11 hex digits are the creation time in ms.
  EXPECT_EQ(std::stoll(std::string(id.view().substr(0, 11)), nullptr, 16), now);
  // One generator keeps its instance tag.
  EXPECT_EQ(gen.Next(now).view().substr(11, 6), id.view().substr(11, 6));
}

TEST(OrderId, PacksInto12BytesAndBackLosslessly) {
  OrderIdGenerator gen;
  std::vector<OrderId> ids = {
      *OrderId::Parse("000000000000000000000000"), *OrderId::Parse("ffffffffffffffffffffffff"),
      *OrderId::Parse("0123456789abcdef01234567"), *OrderId::Parse("fedcba9876543210fedcba98")};
  for (int i = 0; i < 100; ++i) ids.push_back(gen.Next(NowMillis() + i));
  static_assert(sizeof(OrderId::Packed) == 12);
  for (const OrderId& id : ids) {
    EXPECT_EQ(OrderId::Unpack(id.Pack()), id) << id.view();
    EXPECT_EQ(OrderId::Unpack(id.Pack()).view(), id.view());
  }
  // Packed ids sort as their text does, i.e. by creation time first.
  for (const OrderId& a : ids) {
    for (const OrderId& b : ids) {
      EXPECT_EQ(a.Pack() < b.Pack(), a.view() < b.view()) << a.view() << " " << b.view();
    }
  }
  EXPECT_THROW((void)OrderId().Pack(), std::logic_error) << "the empty id has no packed form";
}

TEST(OrderId, UniqueAcross16ThreadsTimes10k) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 10'000;
  OrderIdGenerator gen;
  std::vector<std::vector<std::string>> per_thread(kThreads);
  for (auto& v : per_thread) v.reserve(kPerThread);
  // Every thread uses the same millisecond: uniqueness must come from the
  // sequence, not from the clock.
  const UnixMillis now = NowMillis();
  testutil::RunConcurrently(kThreads, kPerThread, [&](int i) {
    per_thread[static_cast<std::size_t>(i / kPerThread)].push_back(gen.Next(now).str());
  });
  std::unordered_set<std::string> seen;
  seen.reserve(kThreads * kPerThread);
  for (const auto& v : per_thread) {
    for (const std::string& id : v) EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(OrderId, TwoGeneratorsInOneMillisecondDoNotCollide) {
  OrderIdGenerator a;
  OrderIdGenerator b;
  const UnixMillis now = NowMillis();
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(seen.insert(a.Next(now).str()).second);
    EXPECT_TRUE(seen.insert(b.Next(now).str()).second);
  }
}

TEST(OrderId, ParseRoundTrip) {
  OrderIdGenerator gen;
  for (int i = 0; i < 100; ++i) {
    const OrderId id = gen.Next(NowMillis());
    std::optional<OrderId> parsed = OrderId::Parse(id.view());
    ASSERT_TRUE(parsed.has_value()) << id.view();
    EXPECT_EQ(*parsed, id);
    EXPECT_EQ(parsed->str(), id.str());
  }
  std::optional<OrderId> fixed = OrderId::Parse("0123456789abcdef01234567");
  ASSERT_TRUE(fixed.has_value());
  EXPECT_EQ(fixed->view(), "0123456789abcdef01234567");
}

TEST(OrderId, ParseRejectsBadShapes) {
  const char* bad[] = {
      "",
      "0123456789abcdef0123456",    // 23 characters
      "0123456789abcdef012345678",  // 25 characters
      "0123456789ABCDEF01234567",   // upper case
      "0123456789abcdeg01234567",   // not hex
      "0123456789abcdef 1234567",   // space
      "0123456789abcdef-1234567",
      "0x23456789abcdef01234567",
      "../../../../etc/passwd00",
  };
  for (const char* text : bad) EXPECT_FALSE(OrderId::Parse(text).has_value()) << text;
  // Embedded NUL: a 24-byte view that is not 24 hex digits.
  EXPECT_FALSE(OrderId::Parse(std::string_view("0123456789abcdef0123456\0", 24)).has_value());
}

// -------------------------------------------------------------- RFC 3339 ---

TEST(Rfc3339, ParsesUtcZ) {
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00Z"), 1795600800000);
  EXPECT_EQ(ParseRfc3339("2026-11-25t10:00:00z"), 1795600800000);  // RFC 3339 §5.6 NOTE
  EXPECT_EQ(ParseRfc3339("1969-12-31T23:59:59Z"), -1000);
}

TEST(Rfc3339, ParsesOffsets) {
  const std::int64_t utc = 1795600800000;
  EXPECT_EQ(ParseRfc3339("2026-11-25T18:00:00+08:00"), utc);
  EXPECT_EQ(ParseRfc3339("2026-11-25T04:30:00-05:30"), utc);
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00+00:00"), utc);
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00-00:00"), utc);
  // An offset that moves the date across midnight and a year boundary.
  EXPECT_EQ(ParseRfc3339("2027-01-01T07:00:00+09:00"), ParseRfc3339("2026-12-31T22:00:00Z"));
}

TEST(Rfc3339, ParsesFractions) {
  const std::int64_t utc = 1795600800000;
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00.5Z"), utc + 500);
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00.05Z"), utc + 50);
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00.123Z"), utc + 123);
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00.123999Z"), utc + 123);  // truncated to ms
  EXPECT_EQ(ParseRfc3339("2026-11-25T10:00:00.000000001Z"), utc);
  EXPECT_EQ(ParseRfc3339("2026-11-25T18:00:00.250+08:00"), utc + 250);
}

TEST(Rfc3339, LeapYears) {
  EXPECT_EQ(ParseRfc3339("2024-02-29T12:34:56Z"), 1709210096000);
  EXPECT_EQ(ParseRfc3339("2000-02-29T00:00:00Z"), 951782400000);  // divisible by 400
  EXPECT_FALSE(ParseRfc3339("2023-02-29T00:00:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339("1900-02-29T00:00:00Z").has_value());  // divisible by 100
  EXPECT_FALSE(ParseRfc3339("2100-02-29T00:00:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339("2024-02-30T00:00:00Z").has_value());
  // The day after a leap day.
  EXPECT_EQ(*ParseRfc3339("2024-03-01T00:00:00Z") - *ParseRfc3339("2024-02-28T00:00:00Z"),
            2 * 86'400'000);
}

TEST(Rfc3339, LeapSecondIsClampedToTheLastSecondOfTheMinute) {
  EXPECT_EQ(ParseRfc3339("2016-12-31T23:59:60Z"), 1483228799000);
}

TEST(Rfc3339, RejectsInvalidText) {
  const char* bad[] = {
      "",
      "2026-11-25",
      "2026-11-25T10:00:00",   // no zone
      "2026-11-25T10:00Z",     // no seconds
      "2026-11-25 10:00:00Z",  // space instead of T
      "2026-13-01T00:00:00Z",  // month 13
      "2026-00-01T00:00:00Z",  // month 0
      "2026-11-00T00:00:00Z",  // day 0
      "2026-11-31T00:00:00Z",  // 30 days in November
      "2026-04-31T00:00:00Z",
      "2026-01-32T00:00:00Z",
      "2026-11-25T24:00:00Z",
      "2026-11-25T10:60:00Z",
      "2026-11-25T10:00:61Z",
      "2026-11-25T10:00:00.Z",  // fraction without digits
      "2026-11-25T10:00:00+8:00",
      "2026-11-25T10:00:00+08",
      "2026-11-25T10:00:00+0800",
      "2026-11-25T10:00:00+24:00",
      "2026-11-25T10:00:00+08:60",
      "2026-11-25T10:00:00ZZ",  // trailing garbage
      "2026-11-25T10:00:00Z ",
      " 2026-11-25T10:00:00Z",
      "26-11-25T10:00:00Z",
      "2026/11/25T10:00:00Z",
      "2026-1a-25T10:00:00Z",
      "+2026-11-25T10:00:00Z",
      "now",
  };
  for (const char* text : bad) EXPECT_FALSE(ParseRfc3339(text).has_value()) << text;
}

TEST(Rfc3339, FormatsUtcWithMillisecondsOnlyWhenNeeded) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1795600800000), "2026-11-25T10:00:00Z");
  EXPECT_EQ(FormatRfc3339(1795600800123), "2026-11-25T10:00:00.123Z");
  EXPECT_EQ(FormatRfc3339(1795600800500), "2026-11-25T10:00:00.500Z");
  EXPECT_EQ(FormatRfc3339(1795600800005), "2026-11-25T10:00:00.005Z");
  EXPECT_EQ(FormatRfc3339(1709210096000), "2024-02-29T12:34:56Z");
  EXPECT_EQ(FormatRfc3339(-1000), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59.999Z");
}

TEST(Rfc3339, FormatThenParseRoundTrips) {
  const std::int64_t samples[] = {0,
                                  1,
                                  999,
                                  86'399'999,
                                  951782400000,   // 2000-02-29
                                  951868799999,   // 2000-02-29T23:59:59.999
                                  1709210096000,  // 2024-02-29
                                  1795600800123,
                                  4102444800000,    // 2100-01-01
                                  253402300799999,  // 9999-12-31T23:59:59.999
                                  -1,
                                  -86'400'000,
                                  -2208988800000};  // 1900-01-01
  for (std::int64_t t : samples) {
    const std::string text = FormatRfc3339(t);
    EXPECT_EQ(ParseRfc3339(text), t) << text;
  }
  // Every day of a leap year and of a common year survives the trip.
  for (std::int64_t day = 0; day < 2 * 366; ++day) {
    const std::int64_t t = *ParseRfc3339("2023-01-01T00:00:00Z") + day * 86'400'000 + 12'345;
    EXPECT_EQ(ParseRfc3339(FormatRfc3339(t)), t) << FormatRfc3339(t);
  }
}

// ----------------------------------------------------------------- Price ---

TEST(Price, ParsesAtMostTwoDecimals) {
  EXPECT_EQ(ParsePrice("12"), 1200);
  EXPECT_EQ(ParsePrice("12.5"), 1250);
  EXPECT_EQ(ParsePrice("12.50"), 1250);
  EXPECT_EQ(ParsePrice("0.05"), 5);
  EXPECT_EQ(ParsePrice("0"), 0);
  EXPECT_EQ(ParsePrice("0.0"), 0);
  EXPECT_EQ(ParsePrice("999999.99"), 99999999);
  // Trailing zeros past two decimals do not add precision.
  EXPECT_EQ(ParsePrice("12.300"), 1230);
  EXPECT_EQ(ParsePrice("12.000000"), 1200);
}

TEST(Price, RejectsWhatIsNotAPrice) {
  const char* bad[] = {
      "12.345",  // three decimals
      "0.001",
      "-1",  // negative
      "-0.5",
      "1e3",  // exponent
      "1E3",
      "1.5e2",
      "",
      ".5",
      "12.",
      "1.2.3",
      "abc",
      "12a",
      "+12",
      " 12",
      "NaN",
      "Infinity",
      "99999999999999999999",  // overflows int64 cents
  };
  for (const char* text : bad) EXPECT_FALSE(ParsePrice(text).has_value()) << text;
}

TEST(Price, FormatsTheShortestDecimal) {
  EXPECT_EQ(FormatPrice(1200), "12");
  EXPECT_EQ(FormatPrice(1250), "12.5");
  EXPECT_EQ(FormatPrice(1205), "12.05");
  EXPECT_EQ(FormatPrice(5), "0.05");
  EXPECT_EQ(FormatPrice(50), "0.5");
  EXPECT_EQ(FormatPrice(0), "0");
  EXPECT_EQ(FormatPrice(99999999), "999999.99");
}

TEST(Price, FormatThenParseRoundTrips) {
  for (Cents c = 0; c < 2000; ++c) EXPECT_EQ(ParsePrice(FormatPrice(c)), c) << c;
}

// --------------------------------------------------------------- Numbers ---

constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

TEST(Numbers, ParseInt64ReadsOneWholeDecimal) {
  EXPECT_EQ(ParseInt64("0"), 0);
  EXPECT_EQ(ParseInt64("42"), 42);
  EXPECT_EQ(ParseInt64("-42"), -42);
  EXPECT_EQ(ParseInt64("-0"), 0);
  EXPECT_EQ(ParseInt64("9223372036854775807"), kInt64Max);
  EXPECT_EQ(ParseInt64("-9223372036854775808"), kInt64Min);
}

TEST(Numbers, ParseInt64RefusesWhatIsNotExactlyOneInt64) {
  for (std::string_view bad :
       {"", "-", "+1", " 1", "1 ", "1x", "x1", "1.0", "1e3", "0x10", "9223372036854775808",
        "-9223372036854775809", "99999999999999999999999"}) {
    EXPECT_EQ(ParseInt64(bad), std::nullopt) << "'" << bad << "'";
    EXPECT_EQ(ParseInt64(bad, LeadingZeros::kRefuse), std::nullopt) << "'" << bad << "'";
  }
}

TEST(Numbers, ParseInt64StopsAtTheViewsEnd) {
  // A view into a longer buffer: the digits after it are not part of the number.
  const std::string_view text = std::string_view("12345").substr(0, 2);
  EXPECT_EQ(ParseInt64(text), 12);
}

TEST(Numbers, LeadingZerosAreAllowedUnlessRefused) {
  EXPECT_EQ(ParseInt64("007"), 7);
  EXPECT_EQ(ParseInt64("00"), 0);
  EXPECT_EQ(ParseInt64("-007"), -7);
  EXPECT_EQ(ParseInt64("007", LeadingZeros::kRefuse), std::nullopt);
  EXPECT_EQ(ParseInt64("00", LeadingZeros::kRefuse), std::nullopt);
  EXPECT_EQ(ParseInt64("0", LeadingZeros::kRefuse), 0);
  EXPECT_EQ(ParseInt64("70", LeadingZeros::kRefuse), 70);
  // Only the first character is looked at (the HTTP layer's long-standing rule).
  EXPECT_EQ(ParseInt64("-07", LeadingZeros::kRefuse), -7);
}

TEST(Numbers, AppendIntAppendsTheShortestDecimal) {
  std::string out = "n=";
  AppendInt(out, 0);
  out += ',';
  AppendInt(out, -17);
  out += ',';
  AppendInt(out, kInt64Max);
  out += ',';
  AppendInt(out, kInt64Min);
  EXPECT_EQ(out, "n=0,-17,9223372036854775807,-9223372036854775808");
  EXPECT_EQ(std::string_view("-9223372036854775808").size(), kMaxInt64Chars);
}

TEST(Numbers, Int64TextHoldsTheDecimal) {
  EXPECT_EQ(Int64Text(0).view(), "0");
  EXPECT_EQ(Int64Text(1234).view(), "1234");
  EXPECT_EQ(Int64Text(kInt64Min).view(), "-9223372036854775808");
  const Int64Text max(kInt64Max);
  EXPECT_EQ(std::string_view(max.data(), max.size()), "9223372036854775807");
}

TEST(Numbers, FormatThenParseRoundTrips) {
  for (std::int64_t v : {kInt64Min, kInt64Min + 1, std::int64_t{-1}, std::int64_t{0},
                         std::int64_t{1}, std::int64_t{1000000007}, kInt64Max - 1, kInt64Max}) {
    std::string text;
    AppendInt(text, v);
    EXPECT_EQ(ParseInt64(text), v) << text;
    EXPECT_EQ(ParseInt64(Int64Text(v).view(), LeadingZeros::kRefuse), v) << text;
  }
}

// --------------------------------------------------------------- Metrics ---

TEST(Metrics, CounterSumsItsShardsAcrossThreads) {
  Counter c;
  EXPECT_EQ(c.Value(), 0);
  c.Inc();
  c.Inc(4);
  EXPECT_EQ(c.Value(), 5);
  testutil::RunConcurrently(16, 1000, [&](int) { c.Inc(); });
  EXPECT_EQ(c.Value(), 16'005);
}

TEST(Metrics, GaugeSetsAndAdds) {
  Gauge g;
  g.Set(10);
  g.Add(-3);
  EXPECT_EQ(g.Value(), 7);
}

// Lines of `text` that start with `prefix`.
std::vector<std::string> LinesStartingWith(const std::string& text, std::string_view prefix) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    if (line.starts_with(prefix)) out.push_back(line);
    pos = eol + 1;
  }
  return out;
}

TEST(Metrics, HistogramRendersCumulativeBucketsSumAndCount) {
  Histogram h;
  h.ObserveNanos(30'000);          // 30 µs: first bucket (<= 50 µs)
  h.ObserveNanos(2'000'000);       // 2 ms: <= 2.5 ms
  h.ObserveNanos(3'000'000);       // 3 ms: <= 5 ms
  h.ObserveNanos(20'000'000'000);  // 20 s: only +Inf
  std::string out;
  h.Render(out, "x_seconds", "");
  const std::vector<std::string> buckets = LinesStartingWith(out, "x_seconds_bucket{");
  ASSERT_EQ(buckets.size(), Histogram::kBounds.size() + 1) << out;
  EXPECT_EQ(buckets.front(), "x_seconds_bucket{le=\"5e-05\"} 1");
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.0025\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.005\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"10\"} 3\n"), std::string::npos) << out;
  EXPECT_EQ(buckets.back(), "x_seconds_bucket{le=\"+Inf\"} 4");
  EXPECT_NE(out.find("x_seconds_sum 20.005030000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_count 4\n"), std::string::npos) << out;
  // Cumulative: never decreasing.
  long previous = 0;
  for (const std::string& line : buckets) {
    const long n = std::stol(line.substr(line.rfind(' ') + 1));
    EXPECT_GE(n, previous) << line;
    previous = n;
  }
}

TEST(Metrics, HistogramRendersLabelsBeforeLe) {
  Histogram h;
  h.ObserveNanos(1'000);
  std::string out;
  h.Render(out, "flashsale_request_duration_seconds", "route=\"purchase\"");
  EXPECT_NE(
      out.find("flashsale_request_duration_seconds_bucket{route=\"purchase\",le=\"5e-05\"} 1\n"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("flashsale_request_duration_seconds_sum{route=\"purchase\"} 0.000001000\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("flashsale_request_duration_seconds_count{route=\"purchase\"} 1\n"),
            std::string::npos)
      << out;
}

TEST(Metrics, HistogramCountsObservationsFromManyThreads) {
  Histogram h;
  testutil::RunConcurrently(8, 500, [&](int i) { h.ObserveNanos(1'000 * (i % 7)); });
  std::string out;
  h.Render(out, "h", "");
  EXPECT_NE(out.find("h_count 4000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_bucket{le=\"+Inf\"} 4000\n"), std::string::npos) << out;
}

TEST(Metrics, FunnelMetricsRenderEveryContractName) {
  FunnelMetrics m;
  m.l1_hits.Inc(3);
  m.stock_store_calls.Inc(7);
  m.orders_accepted.Inc(2);
  m.orders_persisted_confirmed.Inc(2);
  m.orders_persisted_failed.Inc(1);
  m.queue_depth.Set(4);
  m.consumer_lag.Set(5);
  m.handoff_duration.ObserveNanos(1'000'000);
  std::string out;
  m.Render(out);
  for (const char* line : {
           "# TYPE flashsale_l1_hits_total counter\n",
           "flashsale_l1_hits_total 3\n",
           "flashsale_stock_store_calls_total 7\n",
           "# TYPE flashsale_stock_store_duration_seconds histogram\n",
           "flashsale_stock_store_duration_seconds_count 0\n",
           "# TYPE flashsale_handoff_duration_seconds histogram\n",
           "flashsale_handoff_duration_seconds_count 1\n",
           "flashsale_orders_accepted_total 2\n",
           "flashsale_orders_persisted_total{status=\"CONFIRMED\"} 2\n",
           "flashsale_orders_persisted_total{status=\"FAILED\"} 1\n",
           "# TYPE flashsale_queue_depth gauge\n",
           "flashsale_queue_depth 4\n",
           "flashsale_consumer_lag 5\n",
       }) {
    EXPECT_NE(out.find(line), std::string::npos) << "missing: " << line << "in:\n" << out;
  }
  // Prometheus text: every sample line is "name[{labels}] value".
  for (const std::string& line : LinesStartingWith(out, "flashsale_")) {
    EXPECT_EQ(std::count(line.begin(), line.end(), ' '), 1) << line;
  }
}

}  // namespace
}  // namespace flashsale
