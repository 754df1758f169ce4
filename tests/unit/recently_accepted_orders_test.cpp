// recently_accepted_orders_test: the record of this instance's accepted orders
// that a buyer's list merges with the database's (issue 7, 2h): newest first,
// no duplicates, and bounded by age, count and orders per user. Time is given
// explicitly; nothing sleeps. The decorator is checked over the
// RecordingOrderQueue fake: only an OK hand-off is recorded, before the answer.
// The race test records and lists from 8 threads at once (run it under TSan).

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "funnel/recently_accepted_orders.hpp"
#include "recording_order_queue.hpp"
#include "run_concurrently.hpp"

namespace flashsale {
namespace {

constexpr UnixMillis kT0 = 1'764'000'000'000;

Order MakeOrder(OrderIdGenerator& ids, UserId user, UnixMillis created_at,
                OrderStatus status = OrderStatus::kPending) {
  Order o;
  o.id = ids.Next(created_at);
  o.user = user;
  o.product = 10;
  o.quantity = 1;
  o.price = 1250;
  o.status = status;
  o.created_at = created_at;
  o.idempotency_key = "key-" + o.id.str();
  return o;
}

std::vector<std::string> Ids(const std::vector<Order>& orders) {
  std::vector<std::string> out;
  for (const Order& o : orders) out.push_back(o.id.str());
  return out;
}

TEST(RecentlyAcceptedOrders, MergesInFlightOrdersNewestFirstAndForgetsStoredOnes) {
  OrderIdGenerator ids;
  RecentlyAcceptedOrders accepted;
  const Order stored_old = MakeOrder(ids, 7, kT0, OrderStatus::kConfirmed);
  const Order flying = MakeOrder(ids, 7, kT0 + 10);
  const Order landed = MakeOrder(ids, 7, kT0 + 20);
  accepted.Record(flying, kT0 + 10);
  accepted.Record(landed, kT0 + 20);
  accepted.Record(MakeOrder(ids, 8, kT0 + 30), kT0 + 30);  // another user
  ASSERT_EQ(accepted.Size(), 3u);

  Order landed_confirmed = landed;
  landed_confirmed.status = OrderStatus::kConfirmed;
  const std::vector<Order> listed =
      accepted.MergeWithStored(7, {landed_confirmed, stored_old}, 1000, kT0 + 40);
  EXPECT_EQ(Ids(listed),
            (std::vector<std::string>{landed.id.str(), flying.id.str(), stored_old.id.str()}));
  EXPECT_EQ(listed[0].status, OrderStatus::kConfirmed) << "the database's copy wins";
  EXPECT_EQ(listed[1].status, OrderStatus::kPending);
  EXPECT_EQ(listed[1].price, 1250);
  EXPECT_TRUE(listed[1].idempotency_key.empty()) << "keys are not kept";
  EXPECT_EQ(accepted.Size(), 2u) << "the stored order was forgotten";

  // The limit applies to the merged list.
  EXPECT_EQ(Ids(accepted.MergeWithStored(7, {stored_old}, 1, kT0 + 40)),
            (std::vector<std::string>{flying.id.str()}));
}

TEST(RecentlyAcceptedOrders, RecordingTheSameOrderTwiceListsItOnce) {
  OrderIdGenerator ids;
  RecentlyAcceptedOrders accepted;
  const Order o = MakeOrder(ids, 7, kT0);
  accepted.Record(o, kT0);
  accepted.Record(o, kT0);
  EXPECT_EQ(Ids(accepted.MergeWithStored(7, {}, 1000, kT0)),
            (std::vector<std::string>{o.id.str()}));
}

TEST(RecentlyAcceptedOrders, ForgetsOrdersOlderThanMaxAge) {
  OrderIdGenerator ids;
  RecentlyAcceptedOrders accepted({.max_age_ms = 1000, .max_orders = 100, .max_per_user = 100});
  const Order old = MakeOrder(ids, 7, kT0);
  const Order young = MakeOrder(ids, 7, kT0 + 500);
  accepted.Record(old, kT0);
  accepted.Record(young, kT0 + 500);
  EXPECT_EQ(accepted.MergeWithStored(7, {}, 1000, kT0 + 999).size(), 2u);
  EXPECT_EQ(Ids(accepted.MergeWithStored(7, {}, 1000, kT0 + 1000)),
            (std::vector<std::string>{young.id.str()}));
  EXPECT_TRUE(accepted.MergeWithStored(7, {}, 1000, kT0 + 1500).empty());
  EXPECT_EQ(accepted.Size(), 0u);
}

TEST(RecentlyAcceptedOrders, KeepsAtMostMaxOrdersAndMaxPerUser) {
  OrderIdGenerator ids;
  // 16 shards: max_orders 32 leaves 2 per shard; users 0 and 16 share a shard.
  RecentlyAcceptedOrders accepted({.max_age_ms = 3'600'000, .max_orders = 32, .max_per_user = 2});
  std::vector<Order> user0;
  for (int i = 0; i < 3; ++i) {
    user0.push_back(MakeOrder(ids, 0, kT0 + i));
    accepted.Record(user0.back(), kT0 + i);
  }
  EXPECT_EQ(Ids(accepted.MergeWithStored(0, {}, 1000, kT0 + 3)),
            (std::vector<std::string>{user0[2].id.str(), user0[1].id.str()}))
      << "per-user bound: the oldest went";
  const Order other = MakeOrder(ids, 16, kT0 + 4);
  accepted.Record(other, kT0 + 4);
  EXPECT_EQ(Ids(accepted.MergeWithStored(0, {}, 1000, kT0 + 5)),
            (std::vector<std::string>{user0[2].id.str()}))
      << "shard bound: the oldest of the shard went";
  EXPECT_EQ(accepted.MergeWithStored(16, {}, 1000, kT0 + 5).size(), 1u);

  // Many users: the total stays bounded.
  for (UserId u = 100; u < 1100; ++u) accepted.Record(MakeOrder(ids, u, kT0 + 6), kT0 + 6);
  EXPECT_LE(accepted.Size(), 32u);
}

TEST(RecentlyAcceptedOrders, RecordsAndListsFromManyThreadsAtOnce) {
  RecentlyAcceptedOrders accepted(
      {.max_age_ms = 3'600'000, .max_orders = 1'600, .max_per_user = 50});
  OrderIdGenerator ids;
  constexpr int kThreads = 8;
  constexpr int kCalls = 400;
  std::atomic<int> too_long{0};
  testutil::RunConcurrently(kThreads, kCalls, [&](int i) {
    const UserId user = i % 40;
    if (i % 2 == 0) {
      accepted.Record(MakeOrder(ids, user, kT0 + i), kT0 + i);
    } else if (accepted.MergeWithStored(user, {}, 1000, kT0 + i).size() > 50) {
      too_long.fetch_add(1);
    }
  });
  EXPECT_EQ(too_long.load(), 0);
  EXPECT_LE(accepted.Size(), 1'600u);
  std::size_t listed = 0;
  for (UserId u = 0; u < 40; ++u) listed += accepted.MergeWithStored(u, {}, 1000, kT0).size();
  EXPECT_EQ(listed, accepted.Size());
}

TEST(AcceptanceRecordingQueue, RecordsOnlyAcceptedHandOffsBeforeTheAnswer) {
  OrderIdGenerator ids;
  RecentlyAcceptedOrders accepted;
  testutil::RecordingOrderQueue inner;
  AcceptanceRecordingQueue queue(inner, accepted);
  const Order ok = MakeOrder(ids, 7, NowMillis());
  std::size_t listed_in_answer = 0;
  queue.HandOff(ok, [&](const Status& s) {
    ASSERT_TRUE(s.ok());
    listed_in_answer = accepted.MergeWithStored(7, {}, 1000, NowMillis()).size();
  });
  EXPECT_EQ(listed_in_answer, 1u);
  inner.AnswerWith(Status::NotDelivered("queue full"));
  queue.HandOff(MakeOrder(ids, 7, NowMillis()), [](const Status& s) { EXPECT_FALSE(s.ok()); });
  inner.AnswerWith(Status::Unknown("timed out"));
  queue.HandOff(MakeOrder(ids, 7, NowMillis()), [](const Status& s) { EXPECT_FALSE(s.ok()); });
  EXPECT_EQ(Ids(accepted.MergeWithStored(7, {}, 1000, NowMillis())),
            (std::vector<std::string>{ok.id.str()}));
  EXPECT_EQ(inner.HandOffs(), 3u);
}

}  // namespace
}  // namespace flashsale
