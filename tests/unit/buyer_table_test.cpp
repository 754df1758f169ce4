// buyer_table_test: BuyerTable, the per-product buyer records of the embedded
// stock store, against a brute-force model (std::map) over random operations,
// through incremental growth, with backward-shift deletion, and with ids
// chosen to cluster under a naive hash.

#include "backends/embedded/buyer_table.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <vector>

namespace flashsale::embedded {
namespace {

OrderIdGenerator& Ids() {
  static OrderIdGenerator gen;
  return gen;
}

struct ModelBuyer {
  std::int64_t units = 0;
  OrderId latest_order;
};
using Model = std::map<UserId, ModelBuyer>;

// Every record of the model is found with its units and order, and the table
// holds nothing else (its size matches).
void ExpectMatches(BuyerTable& table, const Model& model) {
  ASSERT_EQ(table.size(), model.size());
  for (const auto& [user, want] : model) {
    const BuyerTable::Record* r = table.Find(user);
    ASSERT_NE(r, nullptr) << "user " << user << " unreachable";
    EXPECT_EQ(r->user(), user);
    EXPECT_EQ(r->units(), want.units) << "user " << user;
    EXPECT_EQ(r->latest_order(), want.latest_order) << "user " << user;
  }
}

TEST(BuyerTable, InsertFindTakeErasesAtZero) {
  BuyerTable table;
  EXPECT_EQ(table.Find(7), nullptr);
  const OrderId first = Ids().Next(NowMillis());
  table.Insert(7, 2, first);
  BuyerTable::Record* r = table.Find(7);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->units(), 2);
  EXPECT_EQ(r->latest_order(), first);
  const OrderId second = Ids().Next(NowMillis());
  r->Add(3, second);
  EXPECT_EQ(table.Find(7)->units(), 5);
  EXPECT_EQ(table.Find(7)->latest_order(), second);

  EXPECT_FALSE(table.Take(7, 6)) << "more than held";
  EXPECT_FALSE(table.Take(8, 1)) << "no record";
  EXPECT_EQ(table.Find(7)->units(), 5);
  EXPECT_TRUE(table.Take(7, 4));
  EXPECT_EQ(table.Find(7)->units(), 1);
  EXPECT_TRUE(table.Take(7, 1));
  EXPECT_EQ(table.Find(7), nullptr) << "a record at 0 units is erased";
  EXPECT_EQ(table.size(), 0u);
}

TEST(BuyerTable, ExtremeUserIdsAreOrdinaryKeys) {
  BuyerTable table;
  const std::vector<UserId> users = {0, 1, std::numeric_limits<UserId>::max(),
                                     std::numeric_limits<UserId>::min(), -1};
  for (UserId u : users) table.Insert(u, 1, Ids().Next(NowMillis()));
  for (UserId u : users) {
    ASSERT_NE(table.Find(u), nullptr) << u;
    EXPECT_EQ(table.Find(u)->user(), u);
  }
  EXPECT_EQ(table.size(), users.size());
}

TEST(BuyerTable, RecordWithoutOrderIdStaysWithout) {
  BuyerTable table;
  table.Insert(1, 3, OrderId());
  EXPECT_TRUE(table.Find(1)->latest_order().empty());
  table.Find(1)->Merge(1, OrderId());
  EXPECT_TRUE(table.Find(1)->latest_order().empty());
  EXPECT_EQ(table.Find(1)->units(), 4);
  // Any id is greater than none.
  const OrderId id = Ids().Next(NowMillis());
  table.Find(1)->Merge(1, id);
  EXPECT_EQ(table.Find(1)->latest_order(), id);
  // A purchase replaces it, even with none (Add is "this one is the latest").
  table.Find(1)->Add(1, OrderId());
  EXPECT_TRUE(table.Find(1)->latest_order().empty());
}

TEST(BuyerTable, MergeKeepsTheGreatestOrderIdInAnyOrder) {
  const OrderId older = *OrderId::Parse("00000000001aaaaaa0000001");
  const OrderId newer = *OrderId::Parse("00000000002000000ffffff0");
  BuyerTable table;
  table.Insert(1, 1, newer);
  table.Find(1)->Merge(2, older);
  EXPECT_EQ(table.Find(1)->latest_order(), newer);
  table.Insert(2, 1, older);
  table.Find(2)->Merge(2, newer);
  EXPECT_EQ(table.Find(2)->latest_order(), newer);
  EXPECT_EQ(table.Find(1)->units(), 3);
  EXPECT_EQ(table.Find(2)->units(), 3);
}

// Random inserts, purchases, merges and takes over a small universe of users,
// so runs of occupied slots form, records are erased from the middle of them
// (backward shift) and the table grows and shrinks in population, checked
// against a std::map after every operation that changed something and in full
// every 64 operations.
void RunRandomOps(std::size_t migrate_slots_per_call, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  BuyerTable table(migrate_slots_per_call);
  Model model;
  std::uniform_int_distribution<UserId> pick_user(0, 3000);
  std::uniform_int_distribution<int> pick_op(0, 9);
  std::uniform_int_distribution<std::int64_t> pick_units(1, 3);
  bool saw_growth = false;
  for (int step = 0; step < 40'000; ++step) {
    const UserId user = pick_user(rng);
    const std::int64_t units = pick_units(rng);
    const OrderId order = Ids().Next(NowMillis());
    const int op = pick_op(rng);
    auto found = model.find(user);
    if (op < 6) {  // a purchase
      BuyerTable::Record* r = table.Find(user);
      ASSERT_EQ(r != nullptr, found != model.end()) << "user " << user;
      if (r != nullptr) {
        r->Add(units, order);
      } else {
        table.Insert(user, units, order);
      }
      ModelBuyer& b = model[user];
      b.units += units;
      b.latest_order = order;
    } else {  // a release, possibly of more than held
      const bool can = found != model.end() && found->second.units >= units;
      ASSERT_EQ(table.Take(user, units), can) << "user " << user;
      if (can && (found->second.units -= units) == 0) model.erase(found);
    }
    saw_growth = saw_growth || table.growing();
    if (step % 64 == 0) ExpectMatches(table, model);
    if (::testing::Test::HasFatalFailure()) return;
  }
  ExpectMatches(table, model);
  EXPECT_GT(table.capacity(), 2048u);
  if (migrate_slots_per_call != BuyerTable::kMigrateAllAtOnce) {
    EXPECT_TRUE(saw_growth) << "some checks ran with records in both arrays";
  }
}

TEST(BuyerTable, MatchesAModelOverRandomOperations) {
  RunRandomOps(BuyerTable::kMigrateSlotsPerCall, 1);
}

TEST(BuyerTable, MatchesAModelWhileGrowingOneSlotPerCall) {
  // The slowest migration: most operations meet records in both arrays.
  RunRandomOps(1, 2);
}

TEST(BuyerTable, MatchesAModelGrowingStopTheWorld) {
  RunRandomOps(BuyerTable::kMigrateAllAtOnce, 3);
}

TEST(BuyerTable, GrowthIsIncrementalAndEveryRecordStaysReachable) {
  BuyerTable table(/*migrate_slots_per_call=*/1);
  Model model;
  UserId next = 0;
  // Fill up to the doubling that happens at 3/4 of 1024 slots.
  while (!(table.growing() && table.capacity() > 1024 + 512)) {
    const OrderId order = Ids().Next(NowMillis());
    table.Insert(next, 1, order);
    model[next++] = {1, order};
    ASSERT_LT(next, 10'000);
  }
  // Right after the doubling nearly everything is still in the old array:
  // one call moved one slot's records, or one run of them.
  EXPECT_EQ(table.capacity(), 1024u + 2048u);
  // Releases of records still in the old array erase them there.
  ASSERT_TRUE(table.growing());
  EXPECT_TRUE(table.Take(0, 1));
  EXPECT_TRUE(table.Take(next - 2, 1));
  model.erase(0);
  model.erase(next - 2);
  ExpectMatches(table, model);  // lookups consult both arrays (and move a slot each)
  // The old array empties within one call per old slot.
  for (int i = 0; i < 1024 && table.growing(); ++i) table.Find(-1);
  EXPECT_FALSE(table.growing());
  EXPECT_EQ(table.capacity(), 2048u);
  ExpectMatches(table, model);
}

TEST(BuyerTable, MappedArraysHandBackTheirEmptiedPrefixWhileGrowing) {
  // Arrays of 2 MiB and more are mapped, and the old one's migrated prefix is
  // returned to the system during the doubling: the slots there must still
  // read as empty, for lookups whose probe starts or wraps there.
  BuyerTable table(/*migrate_slots_per_call=*/1);
  Model model;
  const OrderId order = Ids().Next(NowMillis());
  UserId next = 0;
  // 3/4 of 131072 slots (4 MiB): the next insert doubles to 262144.
  while (!(table.growing() && table.capacity() == 131072u + 262144u)) {
    table.Insert(next, 1, order);
    model[next++] = {1, order};
    ASSERT_LT(next, 200'000);
  }
  // Each call passes one empty old slot (32768 in all) and moves the run of
  // records after it: after 20000 calls the first 2 MiB piece of the old
  // array (65536 slots) has been handed back while records remain behind it.
  for (UserId u = 0; u < 20'000; ++u) {
    const BuyerTable::Record* r = table.Find(u);
    ASSERT_NE(r, nullptr) << u;
    EXPECT_EQ(r->units(), 1);
  }
  ASSERT_TRUE(table.growing());
  for (UserId u = 0; u < 24'000; u += 3) {
    ASSERT_TRUE(table.Take(u, 1));
    model.erase(u);
  }
  EXPECT_TRUE(table.growing());
  for (UserId u = next; u < next + 1000; ++u) EXPECT_EQ(table.Find(u), nullptr);
  ExpectMatches(table, model);
  for (int i = 0; i < 131072 && table.growing(); ++i) table.Find(-1);
  EXPECT_FALSE(table.growing());
  ExpectMatches(table, model);
}

TEST(BuyerTable, ClusteringIdsStayFindable) {
  // Sequential ids and ids differing only in their high bits would pile into
  // runs under an identity or low-bits hash; the keyed mixer spreads them.
  BuyerTable table;
  Model model;
  const OrderId order = Ids().Next(NowMillis());
  for (UserId i = 0; i < 20'000; ++i) {
    for (UserId user : {i, i << 40}) {
      if (model.count(user) != 0) continue;
      table.Insert(user, 1, order);
      model[user] = {1, order};
    }
  }
  ExpectMatches(table, model);
  for (UserId i = 0; i < 20'000; i += 2) {
    ASSERT_TRUE(table.Take(i, 1));
    model.erase(i);
  }
  ExpectMatches(table, model);
}

}  // namespace
}  // namespace flashsale::embedded
