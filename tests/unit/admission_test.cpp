// admission_test: the waiting room's rule (the admission frontier), its signed
// tickets and passes, the embedded MemoryWaitingRoom (one place per user,
// positions unique and gap-free under contention, the per-address cap), and
// the pass check of the reservation step. Also run under ThreadSanitizer.

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <vector>

#include "backends/embedded/memory_stock_store.hpp"
#include "backends/embedded/memory_waiting_room.hpp"
#include "core/admission.hpp"
#include "run_concurrently.hpp"

namespace flashsale {
namespace {

constexpr ProductId kPhone = 30'000'001;
constexpr ProductId kPlain = 30'000'002;
constexpr UnixMillis kStart = 1'800'000'000'000;

QueueState Room(std::int64_t admit_per_s, std::int64_t joined,
                std::optional<UnixMillis> starts_at) {
  QueueState s;
  s.room = {.admit_per_s = admit_per_s, .pass_ttl_s = 30};
  s.joined = joined;
  s.starts_at = starts_at;
  return s;
}

TEST(AdmissionRule, NothingIsAdmittedBeforeTheSaleStarts) {
  QueueState s = Room(10, 100, kStart);
  AdvanceFrontier(s, kStart - 5000);
  EXPECT_EQ(s.AdmittedCount(), 0);
  EXPECT_EQ(s.as_of, kStart - 5000);
  AdvanceFrontier(s, kStart + 1000);  // only the second since the start counts
  EXPECT_EQ(s.AdmittedCount(), 10);
  EXPECT_EQ(s.newly_admitted, 10);
}

TEST(AdmissionRule, AdmitsAtTheRateInPositionOrder) {
  QueueState s = Room(4, 100, kStart);
  s.as_of = kStart;
  std::int64_t total = 0;
  for (int i = 1; i <= 20; ++i) {  // 20 steps of 250 ms: one position each
    AdvanceFrontier(s, kStart + i * 250);
    EXPECT_EQ(s.newly_admitted, 1) << i;
    total += s.newly_admitted;
  }
  EXPECT_EQ(total, 20);
  EXPECT_EQ(s.AdmittedCount(), 20);
}

TEST(AdmissionRule, AQuietQueueBanksNothing) {
  QueueState s = Room(10, 5, kStart);
  AdvanceFrontier(s, kStart + 60'000);  // a minute: all 5 admitted, capped there
  EXPECT_EQ(s.AdmittedCount(), 5);
  s.joined = 1005;                      // a crowd joins
  AdvanceFrontier(s, kStart + 61'000);  // one more second: 10 more, not 600
  EXPECT_EQ(s.AdmittedCount(), 15);
}

TEST(AdmissionRule, SoldOutStopsAdmission) {
  QueueState s = Room(10, 100, kStart);
  s.as_of = kStart;
  s.sold_out = true;
  AdvanceFrontier(s, kStart + 5000);
  EXPECT_EQ(s.AdmittedCount(), 0);
}

TEST(AdmissionRule, AdmittedAtAndEstimatedWait) {
  QueueState s = Room(10, 100, kStart);
  s.as_of = kStart;
  AdvanceFrontier(s, kStart + 2000);  // 20 admitted; position 15 crossed at +1.5 s
  EXPECT_EQ(AdmittedAt(s, 15), kStart + 1500);
  EXPECT_EQ(AdmittedAt(s, 20), kStart + 2000);
  EXPECT_EQ(EstimatedWaitS(s, 20, kStart + 2000), 0);
  EXPECT_EQ(EstimatedWaitS(s, 50, kStart + 2000), 3);  // 30 ahead at 10/s
  EXPECT_EQ(EstimatedWaitS(s, 21, kStart + 2000), 1);  // rounded up
  QueueState before = Room(10, 100, kStart);
  EXPECT_EQ(EstimatedWaitS(before, 10, kStart - 10'000), 11);  // the start, then 1 s
}

TEST(AdmissionTokens, PassIsBoundToUserProductAndExpiry) {
  const AdmissionTokens tokens("secret-a");
  const std::string pass = tokens.Pass(kPhone, 42, kStart + 30'000);
  EXPECT_EQ(tokens.CheckPass(pass, 42, kPhone, kStart), std::nullopt);
  EXPECT_EQ(tokens.CheckPass(pass, 43, kPhone, kStart), PassRejection::kOtherUser);
  EXPECT_EQ(tokens.CheckPass(pass, 42, kPlain, kStart), PassRejection::kOtherProduct);
  EXPECT_EQ(tokens.CheckPass(pass, 42, kPhone, kStart + 30'000), PassRejection::kExpired);
  EXPECT_EQ(tokens.CheckPass("", 42, kPhone, kStart), PassRejection::kMissing);
  EXPECT_EQ(tokens.CheckPass("junk", 42, kPhone, kStart), PassRejection::kMalformed);
  EXPECT_EQ(tokens.CheckPass(pass + "0", 42, kPhone, kStart), PassRejection::kMalformed);
  // Another secret's pass, and a pass whose expiry was pushed back by hand.
  const AdmissionTokens other("secret-b");
  EXPECT_EQ(tokens.CheckPass(other.Pass(kPhone, 42, kStart + 30'000), 42, kPhone, kStart),
            PassRejection::kForged);
  std::string extended = pass;
  extended.replace(extended.find(std::to_string(kStart + 30'000)), 13,
                   std::to_string(kStart + 99'999));
  EXPECT_EQ(tokens.CheckPass(extended, 42, kPhone, kStart), PassRejection::kForged);
}

TEST(AdmissionTokens, TicketsRoundTripAndRefuseForgeries) {
  const AdmissionTokens tokens("secret-a");
  const QueueTicket t{kPhone, 42, 17, 0xFEDCBA9876543210ULL};
  const std::string text = tokens.Ticket(t);
  const std::optional<QueueTicket> back = tokens.ParseTicket(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->product, kPhone);
  EXPECT_EQ(back->user, 42);
  EXPECT_EQ(back->position, 17);
  EXPECT_EQ(back->generation, t.generation);
  EXPECT_FALSE(AdmissionTokens("secret-b").ParseTicket(text));
  std::string moved = text;
  moved.replace(moved.find(".17."), 4, ".1.");  // jump the queue
  EXPECT_FALSE(tokens.ParseTicket(moved));
  EXPECT_FALSE(tokens.ParseTicket(""));
  EXPECT_FALSE(tokens.ParseTicket("1.2.3.4"));
}

class MemoryWaitingRoomTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Product phone{.id = kPhone, .price = 100, .stock = 1000, .starts_at = kStart};
    phone.waiting_room = WaitingRoom{.admit_per_s = 10, .pass_ttl_s = 30};
    Product plain{.id = kPlain, .price = 100, .stock = 10};
    stock_.Load({phone, plain}, {});
  }
  embedded::MemoryStockStore stock_;
  embedded::MemoryWaitingRoom room_{stock_};
};

TEST_F(MemoryWaitingRoomTest, OnePlacePerUserAndUnknownProducts) {
  auto first = room_.Join(kPhone, 7, "a", 0, kStart - 1000);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->outcome, WaitingRoomStore::JoinOutcome::kJoined);
  EXPECT_EQ(first->position, 1);
  auto again = room_.Join(kPhone, 7, "b", 0, kStart - 500);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, WaitingRoomStore::JoinOutcome::kAlreadyJoined);
  EXPECT_EQ(again->position, 1);
  EXPECT_EQ(again->state.generation, first->state.generation);
  EXPECT_EQ(room_.Join(kPlain, 7, "a", 0, kStart)->outcome,
            WaitingRoomStore::JoinOutcome::kNoWaitingRoom);
  EXPECT_EQ(room_.Join(99, 7, "a", 0, kStart)->outcome,
            WaitingRoomStore::JoinOutcome::kUnknownProduct);
  EXPECT_FALSE(*room_.Advance(kPlain, kStart));
}

TEST_F(MemoryWaitingRoomTest, PlacesPerAddressAreCapped) {
  for (UserId u = 1; u <= 3; ++u) {
    EXPECT_EQ(room_.Join(kPhone, u, "10.0.0.1", 3, kStart)->outcome,
              WaitingRoomStore::JoinOutcome::kJoined);
  }
  EXPECT_EQ(room_.Join(kPhone, 4, "10.0.0.1", 3, kStart)->outcome,
            WaitingRoomStore::JoinOutcome::kAddressFull);
  EXPECT_EQ(room_.Join(kPhone, 2, "10.0.0.1", 3, kStart)->outcome,  // a re-join is no new place
            WaitingRoomStore::JoinOutcome::kAlreadyJoined);
  EXPECT_EQ(room_.Join(kPhone, 4, "10.0.0.2", 3, kStart)->position, 4);
}

TEST_F(MemoryWaitingRoomTest, PositionsAreUniqueAndGapFreeUnderContention) {
  constexpr int kThreads = 8;
  constexpr int kUsers = 4000;
  std::mutex mu;
  std::vector<std::int64_t> positions;
  testutil::RunConcurrently(kThreads, kUsers / kThreads, [&](int i) {
    // Every user joins twice: the second must find the first's place.
    auto a = room_.Join(kPhone, i, "x", 0, kStart);
    auto b = room_.Join(kPhone, i, "x", 0, kStart);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(a->position, b->position);
    std::lock_guard<std::mutex> lock(mu);
    positions.push_back(a->position);
  });
  std::sort(positions.begin(), positions.end());
  ASSERT_EQ(positions.size(), static_cast<std::size_t>(kUsers));
  for (int i = 0; i < kUsers; ++i) EXPECT_EQ(positions[i], i + 1);
}

TEST_F(MemoryWaitingRoomTest, AdvanceAdmitsOnScheduleAndStopsWhenSoldOut) {
  for (UserId u = 1; u <= 100; ++u) ASSERT_TRUE(room_.Join(kPhone, u, "a", 0, kStart - 1));
  auto at2s = room_.Advance(kPhone, kStart + 2000);
  ASSERT_TRUE(at2s && *at2s);
  EXPECT_EQ((*at2s)->AdmittedCount(), 20);
  EXPECT_EQ((*at2s)->newly_admitted, 20);
  // Sell the rest: admission stops.
  Product phone{.id = kPhone, .price = 100, .stock = 0, .starts_at = kStart};
  phone.waiting_room = WaitingRoom{.admit_per_s = 10, .pass_ttl_s = 30};
  ASSERT_TRUE(stock_.Put(phone, [](const Product&) { return Status::Ok(); }));
  auto later = room_.Advance(kPhone, kStart + 9000);
  ASSERT_TRUE(later && *later);
  EXPECT_TRUE((*later)->sold_out);
  EXPECT_EQ((*later)->AdmittedCount(), 20);
}

TEST_F(MemoryWaitingRoomTest, ReservationNeedsAVerifiedPass) {
  OrderIdGenerator ids;
  const UnixMillis now = kStart + 1000;
  Reservation r{kPhone, 5, 1, ids.Next(now), now};
  ReserveOutcome outcome = ReserveOutcome::kReserved;
  stock_.Reserve(r, [&](Result<ReserveResult> res) { outcome = res->outcome; });
  EXPECT_EQ(outcome, ReserveOutcome::kPassRequired);
  EXPECT_EQ((*stock_.Get(kPhone))->remaining, 1000);  // nothing taken
  r.pass_verified = true;
  stock_.Reserve(r, [&](Result<ReserveResult> res) { outcome = res->outcome; });
  EXPECT_EQ(outcome, ReserveOutcome::kReserved);
  Reservation plain{kPlain, 5, 1, ids.Next(now), now};  // no room: no pass needed
  stock_.Reserve(plain, [&](Result<ReserveResult> res) { outcome = res->outcome; });
  EXPECT_EQ(outcome, ReserveOutcome::kReserved);
}

}  // namespace
}  // namespace flashsale
