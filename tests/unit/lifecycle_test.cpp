// lifecycle_test: the order lifecycle of embedded mode against a real SQLite
// file: payments racing the closer at the deadline, the closer's outbox and
// its coalesced RESTOCKED news, payments of orders still in the journal, and
// the signature and token helpers. Also run under ThreadSanitizer.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "backends/embedded/local_status_broadcast.hpp"
#include "backends/embedded/memory_stock_store.hpp"
#include "backends/embedded/sqlite_database.hpp"
#include "consumer/order_closer.hpp"
#include "core/signatures.hpp"
#include "temp_dir.hpp"

namespace flashsale::embedded {
namespace {

using testutil::TempDir;

constexpr ProductId kPhone = 20'000'001;
constexpr ProductId kLaptop = 20'000'002;

std::unique_ptr<SqliteDatabase> OpenDb(const TempDir& dir) {
  Result<std::unique_ptr<SqliteDatabase>> db =
      SqliteDatabase::Open({dir.File("flashsale.db"), JournalSync::kNormal});
  EXPECT_TRUE(db) << db.error().ToString();
  return db ? std::move(*db) : nullptr;
}

Product WindowedProduct(ProductId id, std::int64_t stock) {
  Product p;
  p.id = id;
  p.price = 1000;
  p.stock = stock;
  p.limit_per_user = 1;
  p.payment_window_s = 60;
  return p;
}

OrderIdGenerator& Ids() {
  static OrderIdGenerator gen;
  return gen;
}

Order WindowedOrder(ProductId product, UserId user, UnixMillis created_at, UnixMillis pay_by) {
  Order o;
  o.id = Ids().Next(created_at);
  o.user = user;
  o.product = product;
  o.quantity = 1;
  o.price = 1000;
  o.created_at = created_at;
  o.pay_by = pay_by;
  return o;
}

Order Find(SqliteDatabase& db, const OrderId& id) {
  Result<std::optional<Order>> found = db.FindOrder(id);
  EXPECT_TRUE(found && found->has_value());
  return found && found->has_value() ? **found : Order{};
}

// The stock store as the embedded start-up builds it, with `orders` reserved.
void Reserve(MemoryStockStore& stock, const std::vector<Order>& orders) {
  for (const Order& o : orders) {
    Reservation r{o.product, o.user, o.quantity, o.id, o.created_at};
    stock.Reserve(r, [](Result<ReserveResult> res) {
      ASSERT_TRUE(res);
      ASSERT_EQ(res->outcome, ReserveOutcome::kReserved);
    });
  }
}

TEST(Lifecycle, PaymentsAndExpiryRacingAtTheDeadlineDecideEachOrderOnce) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  constexpr int kOrders = 300;
  ASSERT_TRUE(db->UpsertProduct(WindowedProduct(kPhone, kOrders)).ok());
  const UnixMillis deadline = 1'800'000'000'000;
  std::vector<Order> orders;
  for (int i = 0; i < kOrders; ++i) {
    orders.push_back(WindowedOrder(kPhone, i, deadline - 60'000, deadline));
  }
  ASSERT_TRUE(db->PersistBatch(orders));
  // Payers at deadline - 1, deadline, deadline + 1 (the clock is the call's
  // received_at) while a closer expires at the deadline: whoever comes first.
  std::atomic<int> paid{0}, refused{0};
  std::atomic<std::int64_t> expired{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kOrders; i += 3) {
        const UnixMillis at = deadline - 1 + (i % 3);
        Result<PaymentDecision> d =
            db->Pay({orders[i].id, "ref-" + std::to_string(i), 1000, at}, std::nullopt);
        ASSERT_TRUE(d) << d.error().ToString();
        (d->outcome == PaymentOutcome::kPaid ? paid : refused)++;
        if (at >= deadline) {
          EXPECT_NE(d->outcome, PaymentOutcome::kPaid);
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int pass = 0; pass < 50; ++pass) {
      Result<std::int64_t> n = db->ExpireDue(deadline, 17);
      ASSERT_TRUE(n);
      expired += *n;
    }
  });
  for (auto& t : threads) t.join();
  int now_paid = 0, now_expired = 0;
  for (int i = 0; i < kOrders; ++i) {
    const Order o = Find(*db, orders[i].id);
    ASSERT_TRUE(o.status == OrderStatus::kPaid || o.status == OrderStatus::kExpired)
        << ToString(o.status);
    if (o.status == OrderStatus::kPaid) {
      ++now_paid;
      EXPECT_LT(*o.paid_at, deadline) << "a payment at or after pay_by won";
    } else {
      ++now_expired;
    }
  }
  EXPECT_EQ(now_paid, paid.load());
  EXPECT_EQ(now_expired, refused.load());
  // Only calls received before pay_by can pay (a third of them); how many of
  // those beat the closer is the race.
  EXPECT_LE(paid.load(), kOrders / 3);
  EXPECT_EQ(paid.load() + refused.load(), kOrders);
  EXPECT_LE(expired.load(), now_expired) << "the rest were expired by their late payments";
  // The stock guard counts PAID units only now: exactly the expired ones fit again.
  std::vector<Order> more;
  for (int i = 0; i <= now_expired; ++i) more.push_back(WindowedOrder(kPhone, 1000 + i, 1, 2));
  Result<PersistSummary> s = db->PersistBatch(more);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->confirmed, now_expired);
  EXPECT_EQ(s->failed, 1);
}

TEST(Lifecycle, CloserGivesUnitsBackOnceAndBroadcastsOncePerProduct) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(WindowedProduct(kPhone, 30)).ok());
  ASSERT_TRUE(db->UpsertProduct(WindowedProduct(kLaptop, 20)).ok());
  MemoryStockStore stock;
  Result<std::vector<Product>> products = db->LoadProducts();
  ASSERT_TRUE(products);
  stock.Load(*products, {});
  const UnixMillis now = NowMillis();
  std::vector<Order> orders;
  for (int i = 0; i < 30; ++i) orders.push_back(WindowedOrder(kPhone, i, now - 5000, now - 10));
  for (int i = 0; i < 20; ++i) orders.push_back(WindowedOrder(kLaptop, i, now - 5000, now - 10));
  Reserve(stock, orders);
  ASSERT_TRUE(db->PersistBatch(orders));
  // One paid in time, one cancelled; the rest expire.
  ASSERT_EQ(db->Pay({orders[0].id, "r0", 1000, now - 20}, std::nullopt)->outcome,
            PaymentOutcome::kPaid);
  ASSERT_EQ(db->Cancel(orders[1].id, now)->outcome, CancelOutcome::kCancelled);
  LocalStatusBroadcast broadcast;
  std::mutex mu;
  std::map<ProductId, int> restocked;
  broadcast.Subscribe([&](ProductId p, ProductStatusChange change, std::int64_t) {
    std::lock_guard lock(mu);
    if (change == ProductStatusChange::kRestocked) ++restocked[p];
  });
  FunnelMetrics metrics;
  OrderCloser closer(*db, stock, broadcast, metrics, {});
  EXPECT_EQ(closer.RunOnce(NowMillis()), 48 + 49);  // 48 expired, 49 given back
  EXPECT_EQ(restocked, (std::map<ProductId, int>{{kPhone, 1}, {kLaptop, 1}}));
  EXPECT_EQ((*stock.Get(kPhone))->remaining, 29);
  EXPECT_EQ((*stock.Get(kLaptop))->remaining, 20);
  EXPECT_EQ(stock.UnitsOf(kPhone, 0), 1);  // the paying buyer keeps the unit
  EXPECT_EQ(stock.UnitsOf(kPhone, 1), 0);  // the cancelling one may buy again
  EXPECT_EQ(metrics.units_returned.Value(), 49);
  EXPECT_EQ(metrics.orders_closed_cancelled.Value(), 1);
  EXPECT_EQ(metrics.orders_closed_expired.Value(), 48);
  // Nothing is handed out twice, nothing broadcast again.
  EXPECT_EQ(closer.RunOnce(NowMillis()), 0);
  EXPECT_EQ(restocked[kPhone], 1);
  EXPECT_EQ((*stock.Get(kPhone))->remaining, 29);
  Result<std::vector<Order>> left = db->LoadUnreturnedClosed();
  ASSERT_TRUE(left);
  EXPECT_TRUE(left->empty());
}

TEST(Lifecycle, APaymentForAnOrderInTheJournalIsAppliedWhenItLands) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(WindowedProduct(kPhone, 5)).ok());
  const UnixMillis now = NowMillis();
  const Order o = WindowedOrder(kPhone, 7, now, now + 60'000);
  ASSERT_TRUE(db->AppendPending(std::span<const Order>(&o, 1)).ok());
  Order in_flight = Find(*db, o.id);
  ASSERT_EQ(in_flight.status, OrderStatus::kPending);
  ASSERT_EQ(in_flight.pay_by, o.pay_by);
  // Wrong amount, then in time: recorded; the same ref again: recorded; another: refused.
  EXPECT_EQ(db->Pay({o.id, "r", 999, now}, in_flight)->outcome, PaymentOutcome::kAmountMismatch);
  EXPECT_EQ(db->Pay({o.id, "r", 1000, now}, in_flight)->outcome, PaymentOutcome::kRecorded);
  EXPECT_EQ(db->Pay({o.id, "r", 1000, now + 1}, in_flight)->outcome, PaymentOutcome::kRecorded);
  EXPECT_EQ(db->Pay({o.id, "other", 1000, now}, in_flight)->outcome, PaymentOutcome::kWrongStatus);
  // Late for another in-flight order: refused, nothing recorded.
  const Order late = WindowedOrder(kPhone, 8, now - 70'000, now - 10'000);
  EXPECT_EQ(db->Pay({late.id, "r", 1000, now}, late)->outcome, PaymentOutcome::kWrongStatus);
  // The settle lands it PAID, with the payment's time; the closer never sees it.
  ASSERT_TRUE(db->PersistBatch(std::vector<Order>{o, late}));
  const Order landed = Find(*db, o.id);
  EXPECT_EQ(landed.status, OrderStatus::kPaid);
  EXPECT_EQ(landed.paid_at, now);
  EXPECT_EQ(landed.payment_ref, "r");
  EXPECT_EQ(*db->ExpireDue(now, 100), 1);  // `late` only
  EXPECT_EQ(Find(*db, late.id).status, OrderStatus::kExpired);
}

TEST(Lifecycle, ALatePaymentOnAStoredOrderExpiresItThere) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(WindowedProduct(kPhone, 1)).ok());
  const Order o = WindowedOrder(kPhone, 1, 1000, 2000);
  ASSERT_TRUE(db->PersistBatch(std::vector<Order>{o}));
  Result<PaymentDecision> d = db->Pay({o.id, "r", 1000, 2000}, std::nullopt);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d->order.status, OrderStatus::kExpired);
  EXPECT_EQ(d->order.closed_at, 2000);
  // Its units are queued for return, and the guard has them back.
  Result<std::vector<Order>> queued = db->LoadUnreturnedClosed();
  ASSERT_TRUE(queued);
  ASSERT_EQ(queued->size(), 1u);
  EXPECT_EQ(db->PersistBatch(std::vector<Order>{WindowedOrder(kPhone, 2, 1, 2)})->confirmed, 1);
}

TEST(Signatures, PaymentSignatureChecks) {
  const std::string body = R"({"payment_ref":"p","amount":1})";
  const std::int64_t now = 1'800'000'000;
  const std::string good = SignPayment("s3cret", body, now);
  EXPECT_EQ(CheckPaymentSignature("s3cret", good, body, now), SignatureCheck::kValid);
  EXPECT_EQ(CheckPaymentSignature("s3cret", good, body, now + 300), SignatureCheck::kValid);
  EXPECT_EQ(CheckPaymentSignature("s3cret", good, body, now + 301), SignatureCheck::kStale);
  EXPECT_EQ(CheckPaymentSignature("other", good, body, now), SignatureCheck::kMismatch);
  EXPECT_EQ(CheckPaymentSignature("s3cret", good, body + " ", now), SignatureCheck::kMismatch);
  EXPECT_EQ(CheckPaymentSignature("s3cret", "", body, now), SignatureCheck::kMissing);
  EXPECT_EQ(CheckPaymentSignature("s3cret", "t=x,v1=00", body, now), SignatureCheck::kMalformed);
  // Rotation: any of several v1 values may match.
  const std::string v1 = good.substr(good.find("v1="));
  EXPECT_EQ(
      CheckPaymentSignature("s3cret", "t=" + std::to_string(now) + ",v1=abc, " + v1, body, now),
      SignatureCheck::kValid);
  // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Signatures, KeyedHmacMatchesTheOneShotForEveryKeyLength) {
  for (std::size_t key_len : {0, 1, 32, 63, 64, 65, 200}) {
    const std::string key(key_len, 'k');
    const KeyedHmacSha256 mac(key);
    for (std::string_view msg : {"", "cancel:0123",
                                 "a longer message than one block of sha-256, "
                                 "which is sixty-four bytes long, to be sure"}) {
      EXPECT_EQ(mac.Hex(msg), HmacSha256Hex(key, msg)) << key_len << " " << msg;
    }
  }
}

TEST(Signatures, CancelTokensAreBoundToOrderAndSecret) {
  OrderIdGenerator ids;
  const OrderId a = ids.Next(1), b = ids.Next(1);
  OrderTokens tokens("k1");
  const std::string t = tokens.CancelToken(a);
  EXPECT_EQ(t.size(), OrderTokens::kTokenLength);
  EXPECT_TRUE(tokens.CheckCancelToken(a, t));
  EXPECT_FALSE(tokens.CheckCancelToken(b, t));
  EXPECT_FALSE(OrderTokens("k2").CheckCancelToken(a, t));
  EXPECT_FALSE(tokens.CheckCancelToken(a, ""));
}

}  // namespace
}  // namespace flashsale::embedded
