// funnel_test: PurchaseFunnel over the embedded backends (MemoryStockStore,
// MemoryIdempotencyStore, LocalStatusBroadcast) and a RecordingOrderQueue.
//
// Concurrency model: the in-memory store answers Reserve() inline, and the
// queue answers either inline or from its own thread, so a purchase may finish
// on another thread than the one that started it. Tests that race use
// RunConcurrently (16 threads released together) and count answers with
// atomics; each reply is checked where it arrives. Nothing here sleeps: time
// based behaviour (L1 TTL) is driven with explicit clock values.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/embedded/local_status_broadcast.hpp"
#include "backends/embedded/memory_idempotency_store.hpp"
#include "backends/embedded/memory_stock_store.hpp"
#include "fake_order_repository.hpp"
#include "funnel/catalog.hpp"
#include "funnel/local_sold_out_cache.hpp"
#include "funnel/purchase_funnel.hpp"
#include "one_thread_stock_store.hpp"
#include "recording_order_queue.hpp"
#include "run_concurrently.hpp"

namespace flashsale {
namespace {

using testutil::RecordingOrderQueue;
using testutil::RunConcurrently;

constexpr ProductId kPhone = 10'000'001;
constexpr ProductId kLaptop = 10'000'002;
constexpr Cents kPrice = 99'900;
constexpr std::int64_t kHour = 3'600'000;

Product MakeProduct(ProductId id, std::int64_t stock, std::int64_t limit = 1) {
  Product p;
  p.id = id;
  p.price = kPrice;
  p.stock = stock;
  p.limit_per_user = limit;
  return p;
}

PurchaseRequest BuyOne(ProductId product, UserId user, std::int64_t amount = 1,
                       std::string_view key = {}) {
  PurchaseRequest r;
  r.user = user;
  r.product = product;
  r.amount = amount;
  r.idempotency_key = key;
  return r;
}

// The funnel and its embedded backends, wired as EmbeddedStack wires them but
// with a fake queue and a fake database.
struct Harness {
  explicit Harness(std::vector<Product> products,
                   RecordingOrderQueue::Mode mode = RecordingOrderQueue::Mode::kInline,
                   PurchaseFunnel::Options options = {})
      : queue(mode),
        funnel(stock, queue, idempotency, broadcast, metrics, options),
        catalog(stock, repository, funnel) {
    stock.Load(products, {});
  }
  // Answers whatever a failed test left in flight while the funnel still exists.
  ~Harness() {
    queue.Release();
    queue.Flush();
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Buys and waits for the answer (which may come from the queue's thread).
  PurchaseReply Buy(const PurchaseRequest& req) {
    auto promise = std::make_shared<std::promise<PurchaseReply>>();
    std::future<PurchaseReply> future = promise->get_future();
    funnel.Buy(req, [promise](const PurchaseReply& reply) { promise->set_value(reply); });
    return future.get();
  }

  std::int64_t Remaining(ProductId id) {
    Result<std::optional<StockSnapshot>> snap = stock.Get(id);
    EXPECT_TRUE(snap && snap->has_value());
    return snap && snap->has_value() ? (*snap)->remaining : -1;
  }

  FunnelMetrics metrics;
  embedded::MemoryStockStore stock;
  embedded::MemoryIdempotencyStore idempotency;
  embedded::LocalStatusBroadcast broadcast;
  testutil::FakeOrderRepository repository;
  RecordingOrderQueue queue;
  PurchaseFunnel funnel;
  Catalog catalog;
};

std::string Describe(const PurchaseReply& r) {
  return r.status.ToString() + " / " + std::string(StatusName(r.outcome)) + " / " +
         std::string(r.order_id.view());
}

bool IsAccepted(const PurchaseReply& r) {
  return r.status.ok() && r.outcome == PurchaseOutcome::kAccepted;
}

// -------------------------------------------------- oversell / undersell ---

TEST(PurchaseFunnel, NeverAcceptsMoreThanStockUnderContention) {
  Harness h({MakeProduct(kPhone, 100)});
  std::atomic<int> accepted{0};
  std::atomic<int> sold_out{0};
  std::atomic<int> other{0};
  RunConcurrently(/*threads=*/16, /*calls_per_thread=*/500, [&](int i) {
    h.funnel.Buy(BuyOne(kPhone, UserId(i)), [&](const PurchaseReply& r) {
      EXPECT_TRUE(r.status.ok()) << Describe(r);
      if (IsAccepted(r)) {
        ++accepted;
      } else if (r.outcome == PurchaseOutcome::kSoldOut) {
        ++sold_out;
      } else {
        ++other;
      }
    });
  });
  h.queue.Flush();
  EXPECT_EQ(accepted.load(), 100);
  EXPECT_EQ(sold_out.load(), 16 * 500 - 100);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(h.queue.Size(), 100u);
  EXPECT_EQ(h.Remaining(kPhone), 0);
  EXPECT_EQ(h.metrics.orders_accepted.Value(), 100);
  // Every accepted order is distinct and carries the unit price.
  std::set<std::string> ids;
  for (const Order& o : h.queue.Delivered()) {
    ids.insert(o.id.str());
    EXPECT_EQ(o.price, kPrice);
    EXPECT_EQ(o.quantity, 1);
    EXPECT_EQ(o.product, kPhone);
  }
  EXPECT_EQ(ids.size(), 100u);
}

TEST(PurchaseFunnel, SellsTheLastUnitWhenDemandExceedsStock) {
  // The seed's `stock_maybe > 0` check lost the last unit; demand of exactly
  // stock + 1 must still sell every unit.
  for (std::int64_t stock : {1, 2, 7}) {
    SCOPED_TRACE(stock);
    Harness h({MakeProduct(kPhone, stock)});
    int accepted = 0;
    for (UserId u = 0; u <= stock; ++u) accepted += IsAccepted(h.Buy(BuyOne(kPhone, u)));
    EXPECT_EQ(accepted, stock);
    EXPECT_EQ(h.Remaining(kPhone), 0);
  }
}

TEST(PurchaseFunnel, SellsOutExactlyUnderContentionWithADeferredQueue) {
  // Answers come from the queue's thread, as with the real journal.
  Harness h({MakeProduct(kPhone, 50)}, RecordingOrderQueue::Mode::kDeferred);
  std::atomic<int> accepted{0};
  std::atomic<int> answered{0};
  RunConcurrently(16, 100, [&](int i) {
    h.funnel.Buy(BuyOne(kPhone, UserId(i)), [&](const PurchaseReply& r) {
      EXPECT_TRUE(r.status.ok()) << Describe(r);
      if (IsAccepted(r)) ++accepted;
      ++answered;
    });
  });
  h.queue.Flush();
  EXPECT_EQ(answered.load(), 1600);
  EXPECT_EQ(accepted.load(), 50);
  EXPECT_EQ(h.queue.Size(), 50u);
  EXPECT_EQ(h.Remaining(kPhone), 0);
}

TEST(PurchaseFunnel, ProductsDoNotShareStock) {
  Harness h({MakeProduct(kPhone, 1), MakeProduct(kLaptop, 1)});
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1))));
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 2)).outcome, PurchaseOutcome::kSoldOut);
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kLaptop, 2))));
}

// ------------------------------------------------------- per-user limit ---

TEST(PurchaseFunnel, PerUserLimitHoldsUnderContention) {
  for (std::int64_t limit = 1; limit <= 3; ++limit) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    constexpr int kUsers = 4;
    Harness h({MakeProduct(kPhone, 1000, limit)});
    std::mutex mu;
    std::map<UserId, int> accepted;
    std::map<UserId, std::set<std::string>> accepted_ids;
    std::atomic<int> limited{0};
    // 16 threads, each call for one of 4 users: every user races itself.
    RunConcurrently(16, 50, [&](int i) {
      const UserId user = i % kUsers;
      h.funnel.Buy(BuyOne(kPhone, user), [&, user](const PurchaseReply& r) {
        EXPECT_TRUE(r.status.ok()) << Describe(r);
        if (IsAccepted(r)) {
          std::lock_guard lock(mu);
          ++accepted[user];
          accepted_ids[user].insert(r.order_id.str());
        } else {
          EXPECT_EQ(r.outcome, PurchaseOutcome::kLimitExceeded) << Describe(r);
          // LIMIT_EXCEEDED names one of the user's own orders.
          EXPECT_FALSE(r.order_id.empty());
          ++limited;
        }
      });
    });
    h.queue.Flush();
    for (UserId u = 0; u < kUsers; ++u) {
      EXPECT_EQ(accepted[u], limit) << "user " << u;
      EXPECT_EQ(h.stock.UnitsOf(kPhone, u), limit) << "user " << u;
    }
    EXPECT_EQ(limited.load(), 16 * 50 - kUsers * static_cast<int>(limit));
    EXPECT_EQ(h.Remaining(kPhone), 1000 - kUsers * limit);
  }
}

TEST(PurchaseFunnel, LimitExceededCountsUnitsNotRequests) {
  Harness h({MakeProduct(kPhone, 100, /*limit=*/3)});
  const PurchaseReply first = h.Buy(BuyOne(kPhone, 7, /*amount=*/2));
  ASSERT_TRUE(IsAccepted(first)) << Describe(first);
  const PurchaseReply over = h.Buy(BuyOne(kPhone, 7, /*amount=*/2));
  EXPECT_TRUE(over.status.ok());
  EXPECT_EQ(over.outcome, PurchaseOutcome::kLimitExceeded);
  EXPECT_EQ(over.order_id, first.order_id);  // the user's latest order
  const PurchaseReply last = h.Buy(BuyOne(kPhone, 7, /*amount=*/1));
  ASSERT_TRUE(IsAccepted(last)) << Describe(last);
  const PurchaseReply again = h.Buy(BuyOne(kPhone, 7));
  EXPECT_EQ(again.outcome, PurchaseOutcome::kLimitExceeded);
  EXPECT_EQ(again.order_id, last.order_id);
  // Amount above the limit from a fresh user: LIMIT_EXCEEDED with no order.
  const PurchaseReply greedy = h.Buy(BuyOne(kPhone, 8, /*amount=*/4));
  EXPECT_EQ(greedy.outcome, PurchaseOutcome::kLimitExceeded);
  EXPECT_TRUE(greedy.order_id.empty());
}

// ------------------------------------------------------ other outcomes ---

TEST(PurchaseFunnel, InsufficientStockWhenSomeButNotEnoughIsLeft) {
  Harness h({MakeProduct(kPhone, 3, /*limit=*/10)});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1, 2))));
  const PurchaseReply short_reply = h.Buy(BuyOne(kPhone, 2, 2));  // 0 < left (1) < amount (2)
  EXPECT_TRUE(short_reply.status.ok());
  EXPECT_EQ(short_reply.outcome, PurchaseOutcome::kInsufficientStock);
  EXPECT_EQ(h.Remaining(kPhone), 1);                     // nothing taken
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 2, 1))));  // the last unit still sells
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 3, 2)).outcome, PurchaseOutcome::kSoldOut);  // 0 left
}

TEST(PurchaseFunnel, SaleWindow) {
  const UnixMillis now = NowMillis();
  Product later = MakeProduct(kPhone, 10);
  later.starts_at = now + kHour;
  Product over = MakeProduct(kLaptop, 10);
  over.starts_at = now - 2 * kHour;
  over.ends_at = now - kHour;
  Product open = MakeProduct(kLaptop + 1, 10);
  open.starts_at = now - kHour;
  open.ends_at = now + kHour;
  Harness h({later, over, open});

  const PurchaseReply not_started = h.Buy(BuyOne(kPhone, 1));
  EXPECT_TRUE(not_started.status.ok());
  EXPECT_EQ(not_started.outcome, PurchaseOutcome::kNotStarted);
  const PurchaseReply ended = h.Buy(BuyOne(kLaptop, 1));
  EXPECT_TRUE(ended.status.ok());
  EXPECT_EQ(ended.outcome, PurchaseOutcome::kEnded);
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kLaptop + 1, 1))));
  // Refusals take nothing.
  EXPECT_EQ(h.Remaining(kPhone), 10);
  EXPECT_EQ(h.Remaining(kLaptop), 10);
  EXPECT_EQ(h.queue.HandOffs(), 1u);
}

TEST(PurchaseFunnel, SaleWindowComesBeforeTheLimit) {
  // Outcome precedence (SPEC §1): the window refuses before the limit would.
  Product later = MakeProduct(kPhone, 10, /*limit=*/1);
  later.starts_at = NowMillis() + kHour;
  Harness h({later});
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 1, /*amount=*/5)).outcome, PurchaseOutcome::kNotStarted);
}

TEST(PurchaseFunnel, UnknownProduct) {
  Harness h({MakeProduct(kPhone, 10)});
  const PurchaseReply r = h.Buy(BuyOne(kLaptop, 1));
  EXPECT_TRUE(r.status.ok()) << Describe(r);
  EXPECT_EQ(r.outcome, PurchaseOutcome::kUnknownProduct);
  EXPECT_TRUE(r.order_id.empty());
  EXPECT_EQ(h.queue.HandOffs(), 0u);
}

// ------------------------------------------------------------------ L1 ---

TEST(PurchaseFunnel, L1AnswersAfterSellOutWithoutTheStore) {
  Harness h({MakeProduct(kPhone, 1)});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1))));  // takes the last unit: L1 set
  const std::int64_t calls = h.metrics.stock_store_calls.Value();
  const std::int64_t hits = h.metrics.l1_hits.Value();
  for (UserId u = 2; u < 12; ++u) {
    const PurchaseReply r = h.Buy(BuyOne(kPhone, u));
    EXPECT_TRUE(r.status.ok());
    EXPECT_EQ(r.outcome, PurchaseOutcome::kSoldOut);
  }
  EXPECT_EQ(h.metrics.l1_hits.Value(), hits + 10);
  EXPECT_EQ(h.metrics.stock_store_calls.Value(), calls);
}

TEST(PurchaseFunnel, StoreSoldOutAnswerSetsL1) {
  // L1 learns "sold out" from the store too, not only from the last unit
  // (e.g. after the L1 entry expired or was never set on this instance).
  Harness h({MakeProduct(kPhone, 0)});
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 1)).outcome, PurchaseOutcome::kSoldOut);
  EXPECT_EQ(h.metrics.stock_store_calls.Value(), 1);
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 2)).outcome, PurchaseOutcome::kSoldOut);
  EXPECT_EQ(h.metrics.stock_store_calls.Value(), 1);
  EXPECT_EQ(h.metrics.l1_hits.Value(), 1);
}

TEST(PurchaseFunnel, L1OfOneProductDoesNotRefuseAnother) {
  Harness h({MakeProduct(kPhone, 1), MakeProduct(kLaptop, 5)});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1))));
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kLaptop, 1))));
}

TEST(PurchaseFunnel, L1TtlZeroAlwaysAsksTheStore) {
  Harness h({MakeProduct(kPhone, 1)}, RecordingOrderQueue::Mode::kInline,
            PurchaseFunnel::Options{/*l1_ttl_ms=*/0});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1))));
  const std::int64_t calls = h.metrics.stock_store_calls.Value();
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 2)).outcome, PurchaseOutcome::kSoldOut);
  EXPECT_EQ(h.metrics.stock_store_calls.Value(), calls + 1);
  EXPECT_EQ(h.metrics.l1_hits.Value(), 0);
}

// ------------------------------------------------------------- hand-off ---

TEST(PurchaseFunnel, NotDeliveredHandOffReleasesUnitsAndUserRecord) {
  Harness h({MakeProduct(kPhone, 1)});
  h.queue.AnswerWith(Status::NotDelivered("journal refused"));
  const PurchaseReply refused = h.Buy(BuyOne(kPhone, 42));
  EXPECT_TRUE(refused.status.IsNotDelivered()) << Describe(refused);
  EXPECT_TRUE(refused.order_id.empty());  // nothing to query
  EXPECT_EQ(h.queue.HandOffs(), 1u);
  EXPECT_EQ(h.queue.Size(), 0u);
  // The unit and the user's record came back.
  EXPECT_EQ(h.Remaining(kPhone), 1);
  EXPECT_EQ(h.stock.UnitsOf(kPhone, 42), 0);
  EXPECT_EQ(h.metrics.orders_accepted.Value(), 0);
  EXPECT_EQ(h.metrics.queue_depth.Value(), 0);

  // The same user can buy again, and since it took the last unit the L1 flag
  // set by the sell-out was cleared: the retry reaches the store.
  h.queue.AnswerWith(Status::Ok());
  const std::int64_t calls = h.metrics.stock_store_calls.Value();
  const PurchaseReply retry = h.Buy(BuyOne(kPhone, 42));
  EXPECT_TRUE(IsAccepted(retry)) << Describe(retry);
  EXPECT_EQ(h.metrics.stock_store_calls.Value(), calls + 1);
  EXPECT_EQ(h.Remaining(kPhone), 0);
  EXPECT_EQ(h.stock.UnitsOf(kPhone, 42), 1);
}

TEST(PurchaseFunnel, NotDeliveredUnderContentionNeverLosesUnits) {
  // Half the hand-offs are refused while 16 threads race; every refused unit
  // must go back so that, in the end, exactly `stock` orders are delivered.
  Harness h({MakeProduct(kPhone, 40)});
  std::atomic<int> accepted{0};
  RunConcurrently(16, 100, [&](int i) {
    if (i % 7 == 0) h.queue.AnswerWith(Status::NotDelivered("flaky"));
    if (i % 7 == 3) h.queue.AnswerWith(Status::Ok());
    h.funnel.Buy(BuyOne(kPhone, UserId(i)), [&](const PurchaseReply& r) {
      if (IsAccepted(r)) ++accepted;
    });
  });
  h.queue.AnswerWith(Status::Ok());
  // Finish the sale with fresh users: whatever was released sells now.
  for (UserId u = 10'000; u < 10'100; ++u) accepted += IsAccepted(h.Buy(BuyOne(kPhone, u)));
  EXPECT_EQ(accepted.load(), 40);
  EXPECT_EQ(h.queue.Size(), 40u);
  EXPECT_EQ(h.Remaining(kPhone), 0);
}

TEST(PurchaseFunnel, UnknownHandOffKeepsTheReservationAndReturnsTheOrderId) {
  Harness h({MakeProduct(kPhone, 5)});
  h.queue.AnswerWith(Status::Unknown("timed out"));
  const PurchaseReply r = h.Buy(BuyOne(kPhone, 42));
  EXPECT_TRUE(r.status.IsUnknown()) << Describe(r);
  ASSERT_FALSE(r.order_id.empty());
  ASSERT_EQ(h.queue.HandOffs(), 1u);
  EXPECT_EQ(h.queue.All().front().id, r.order_id);
  // The reservation stays for reconciliation (audit --repair).
  EXPECT_EQ(h.Remaining(kPhone), 4);
  EXPECT_EQ(h.stock.UnitsOf(kPhone, 42), 1);
  // So the limit still counts it.
  h.queue.AnswerWith(Status::Ok());
  const PurchaseReply again = h.Buy(BuyOne(kPhone, 42));
  EXPECT_EQ(again.outcome, PurchaseOutcome::kLimitExceeded);
  EXPECT_EQ(again.order_id, r.order_id);
}

TEST(PurchaseFunnel, RefusedHandOffGivesUnitsBackWithoutWaitingOnTheStoreThread) {
  // The order queue refuses at once (a Kafka producer whose queue is full), so
  // the refusal arrives on the thread that answered the reservation: the stock
  // store's own thread. The release is answered by that thread too; the funnel
  // must hand it the work and answer the client from the release's callback,
  // never wait there for it.
  testutil::OneThreadStockStore stock;
  constexpr std::int64_t kStock = 3;
  stock.data().Load({MakeProduct(kPhone, kStock)}, {});
  RecordingOrderQueue queue(RecordingOrderQueue::Mode::kInline);
  queue.AnswerWith(Status::NotDelivered("produce refused: Local: Queue full"));
  embedded::MemoryIdempotencyStore idempotency;
  embedded::LocalStatusBroadcast broadcast;
  FunnelMetrics metrics;
  PurchaseFunnel funnel(stock, queue, idempotency, broadcast, metrics, {});

  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 2;
  std::mutex mu;
  std::condition_variable all_answered;
  std::vector<PurchaseReply> replies;
  std::vector<UserId> still_holding;  // users whose record was still there when answered
  std::size_t refused = 0;
  RunConcurrently(kThreads, kCallsPerThread, [&](int i) {
    const UserId user = 1'000 + i;
    funnel.Buy(BuyOne(kPhone, user), [&, user](const PurchaseReply& r) {
      // A client told 503 may retry at once: its record must be gone by then.
      const bool holding = stock.data().UnitsOf(kPhone, user) != 0;
      std::lock_guard lock(mu);
      replies.push_back(r);
      if (holding) still_holding.push_back(user);
      all_answered.notify_all();
    });
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(all_answered.wait_for(
        lock, std::chrono::seconds(30),
        [&] { return replies.size() == static_cast<std::size_t>(kThreads * kCallsPerThread); }))
        << replies.size() << " answers";
    // Each purchase got the store's units and was refused, or found them all
    // held by the others' refused purchases (SOLD_OUT until released).
    for (const PurchaseReply& r : replies) {
      if (r.status.ok()) {
        EXPECT_EQ(r.outcome, PurchaseOutcome::kSoldOut) << Describe(r);
        continue;
      }
      ++refused;
      EXPECT_TRUE(r.status.IsNotDelivered()) << Describe(r);
      EXPECT_TRUE(r.order_id.empty()) << Describe(r);
    }
    EXPECT_GE(refused, static_cast<std::size_t>(kStock));
    EXPECT_TRUE(still_holding.empty()) << still_holding.size() << " users answered before release";
  }
  EXPECT_EQ(queue.HandOffs(), refused);
  // Every unit is back, and the sell-outs seen meanwhile were forgotten (L1
  // cleared by the release's RESTOCKED): the stock sells again.
  EXPECT_EQ((*stock.Get(kPhone))->remaining, kStock);
  EXPECT_FALSE((*stock.Get(kPhone))->sold_out);
  queue.AnswerWith(Status::Ok());
  for (UserId u = 2'000; u < 2'000 + kStock; ++u) {
    auto answer = std::make_shared<std::promise<PurchaseReply>>();
    std::future<PurchaseReply> future = answer->get_future();
    funnel.Buy(BuyOne(kPhone, u), [answer](const PurchaseReply& r) { answer->set_value(r); });
    ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    const PurchaseReply r = future.get();
    EXPECT_TRUE(IsAccepted(r)) << Describe(r);
  }
  EXPECT_EQ((*stock.Get(kPhone))->remaining, 0);
  stock.Drain();  // the queue's bookkeeping after each answer ran on the store's thread
}

TEST(PurchaseFunnel, AcceptedOnlyAfterTheHandOffAnswered) {
  Harness h({MakeProduct(kPhone, 5)}, RecordingOrderQueue::Mode::kDeferred);
  h.queue.Hold();
  std::atomic<bool> answered{false};
  h.funnel.Buy(BuyOne(kPhone, 1), [&](const PurchaseReply& r) {
    EXPECT_TRUE(IsAccepted(r)) << Describe(r);
    answered = true;
  });
  EXPECT_FALSE(answered.load());  // the hand-off is not durable yet
  EXPECT_EQ(h.queue.HandOffs(), 1u);
  h.queue.Release();
  h.queue.Flush();
  EXPECT_TRUE(answered.load());
}

// -------------------------------------------------------- Idempotency-Key ---

TEST(PurchaseFunnel, IdempotentRetriesReserveOnce) {
  Harness h({MakeProduct(kPhone, 10, /*limit=*/5)});
  const PurchaseReply first = h.Buy(BuyOne(kPhone, 1, 1, "key-1"));
  ASSERT_TRUE(IsAccepted(first)) << Describe(first);
  for (int i = 0; i < 5; ++i) {
    const PurchaseReply retry = h.Buy(BuyOne(kPhone, 1, 1, "key-1"));
    EXPECT_TRUE(IsAccepted(retry)) << Describe(retry);
    EXPECT_EQ(retry.order_id, first.order_id);
  }
  EXPECT_EQ(h.queue.HandOffs(), 1u);
  EXPECT_EQ(h.Remaining(kPhone), 9);
  EXPECT_EQ(h.stock.UnitsOf(kPhone, 1), 1);
  // Another key is another purchase.
  const PurchaseReply other = h.Buy(BuyOne(kPhone, 1, 1, "key-2"));
  EXPECT_TRUE(IsAccepted(other));
  EXPECT_NE(other.order_id, first.order_id);
  EXPECT_EQ(h.Remaining(kPhone), 8);
}

TEST(PurchaseFunnel, OrderCarriesItsIdempotencyKey) {
  Harness h({MakeProduct(kPhone, 10)});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1, 1, "abc"))));
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 2))));
  const std::vector<Order> orders = h.queue.Delivered();
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].idempotency_key, "abc");  // restored from the database at start-up
  EXPECT_EQ(orders[1].idempotency_key, "");
}

void ExpectRacingRetriesReserveOnce(RecordingOrderQueue::Mode mode, bool hold) {
  Harness h({MakeProduct(kPhone, 10, /*limit=*/5)}, mode);
  if (hold) h.queue.Hold();  // the first hand-off stays in flight while all retries arrive
  std::mutex mu;
  std::vector<PurchaseReply> replies;
  RunConcurrently(16, 1, [&](int) {
    h.funnel.Buy(BuyOne(kPhone, 1, 1, "same-key"), [&](const PurchaseReply& r) {
      std::lock_guard lock(mu);
      replies.push_back(r);
    });
  });
  if (hold) h.queue.Release();
  h.queue.Flush();
  std::lock_guard lock(mu);
  ASSERT_EQ(replies.size(), 16u);
  for (const PurchaseReply& r : replies) {
    EXPECT_TRUE(IsAccepted(r)) << Describe(r);
    EXPECT_EQ(r.order_id, replies.front().order_id);
  }
  EXPECT_FALSE(replies.front().order_id.empty());
  EXPECT_EQ(h.queue.HandOffs(), 1u);
  EXPECT_EQ(h.Remaining(kPhone), 9);
  EXPECT_EQ(h.stock.UnitsOf(kPhone, 1), 1);
}

TEST(PurchaseFunnel, RacingIdempotentRetriesReserveOnce) {
  ExpectRacingRetriesReserveOnce(RecordingOrderQueue::Mode::kInline, false);
}

TEST(PurchaseFunnel, RacingIdempotentRetriesWaitForTheInFlightFirstAnswer) {
  ExpectRacingRetriesReserveOnce(RecordingOrderQueue::Mode::kDeferred, true);
}

TEST(PurchaseFunnel, IdempotentReplayAfterSellOutReturnsTheFirstAccepted) {
  Harness h({MakeProduct(kPhone, 1)});
  const PurchaseReply first = h.Buy(BuyOne(kPhone, 1, 1, "k"));
  ASSERT_TRUE(IsAccepted(first)) << Describe(first);
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 2)).outcome, PurchaseOutcome::kSoldOut);  // L1 is set now
  const PurchaseReply replay = h.Buy(BuyOne(kPhone, 1, 1, "k"));
  EXPECT_TRUE(IsAccepted(replay)) << Describe(replay);
  EXPECT_EQ(replay.order_id, first.order_id);
  EXPECT_EQ(h.queue.HandOffs(), 1u);
}

TEST(PurchaseFunnel, IdempotencyKeyWithAnotherBodyIsItsOwnOutcome) {
  Harness h({MakeProduct(kPhone, 10, /*limit=*/5)});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1, 1, "k"))));
  for (const PurchaseRequest& other :
       {BuyOne(kPhone, 1, 2, "k"), BuyOne(kPhone, 2, 1, "k"), BuyOne(kLaptop, 1, 1, "k")}) {
    const PurchaseReply r = h.Buy(other);
    EXPECT_TRUE(r.status.ok()) << Describe(r);
    EXPECT_EQ(r.outcome, PurchaseOutcome::kIdempotencyKeyMismatch) << Describe(r);
  }
  EXPECT_EQ(h.queue.HandOffs(), 1u);
  EXPECT_EQ(h.Remaining(kPhone), 9);
}

TEST(PurchaseFunnel, IdempotentRefusalIsRepeatedToo) {
  // A business refusal is a final answer: the retry gets it again, even if
  // stock came back in between.
  Harness h({MakeProduct(kPhone, 0)});
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 1, 1, "k")).outcome, PurchaseOutcome::kSoldOut);
  ASSERT_TRUE(h.catalog.Restock(kPhone, 5));
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 1, 1, "k")).outcome, PurchaseOutcome::kSoldOut);
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1, 1, "k2"))));
}

TEST(PurchaseFunnel, IdempotentRetryAfterNotDeliveredStartsAfresh) {
  Harness h({MakeProduct(kPhone, 5)});
  h.queue.AnswerWith(Status::NotDelivered("journal refused"));
  EXPECT_TRUE(h.Buy(BuyOne(kPhone, 1, 1, "k")).status.IsNotDelivered());
  h.queue.AnswerWith(Status::Ok());
  const PurchaseReply retry = h.Buy(BuyOne(kPhone, 1, 1, "k"));
  EXPECT_TRUE(IsAccepted(retry)) << Describe(retry);
  EXPECT_EQ(h.queue.HandOffs(), 2u);
  EXPECT_EQ(h.Remaining(kPhone), 4);
}

TEST(PurchaseFunnel, IdempotentRetryAfterUnknownRepeatsTheUnknownAnswer) {
  Harness h({MakeProduct(kPhone, 5)});
  h.queue.AnswerWith(Status::Unknown("timed out"));
  const PurchaseReply first = h.Buy(BuyOne(kPhone, 1, 1, "k"));
  ASSERT_TRUE(first.status.IsUnknown());
  h.queue.AnswerWith(Status::Ok());
  const PurchaseReply retry = h.Buy(BuyOne(kPhone, 1, 1, "k"));
  EXPECT_TRUE(retry.status.IsUnknown()) << Describe(retry);
  EXPECT_EQ(retry.order_id, first.order_id);
  EXPECT_EQ(h.queue.HandOffs(), 1u);  // never reserved twice
}

// --------------------------------------------------------------- Catalog ---

TEST(Catalog, PutConflictsWhenStockIsBelowSold) {
  Harness h({MakeProduct(kPhone, 10)});
  for (UserId u = 0; u < 5; ++u) ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, u))));
  const std::size_t saved = h.repository.SavedProducts().size();

  Result<PutResult> below = h.catalog.Put(MakeProduct(kPhone, 4));
  ASSERT_FALSE(below);
  EXPECT_EQ(below.error().code(), Status::Code::kConflict) << below.error().ToString();
  EXPECT_EQ(h.repository.SavedProducts().size(), saved);  // nothing written
  EXPECT_EQ(h.Remaining(kPhone), 5);                      // nothing changed

  Result<PutResult> exact = h.catalog.Put(MakeProduct(kPhone, 5));  // stock == sold: sold out
  ASSERT_TRUE(exact) << exact.error().ToString();
  EXPECT_FALSE(exact->created);
  EXPECT_FALSE(exact->reopened);
  EXPECT_EQ(h.Remaining(kPhone), 0);
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 99)).outcome, PurchaseOutcome::kSoldOut);
  ASSERT_FALSE(h.repository.SavedProducts().empty());
  EXPECT_EQ(h.repository.SavedProducts().back().stock, 5);
}

TEST(Catalog, PutCreatesAndAFailedDatabaseWriteChangesNothing) {
  Harness h(std::vector<Product>{});
  Result<PutResult> created = h.catalog.Put(MakeProduct(kPhone, 3));
  ASSERT_TRUE(created);
  EXPECT_TRUE(created->created);
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1))));

  h.repository.FailNextUpserts(1);
  Result<PutResult> failed = h.catalog.Put(MakeProduct(kPhone, 100));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), Status::Code::kUnavailable);
  EXPECT_EQ(h.Remaining(kPhone), 2);  // the store kept the old stock
}

TEST(Catalog, RestockReopensAndClearsL1) {
  Harness h({MakeProduct(kPhone, 2)});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1))));
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 2))));
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 3)).outcome, PurchaseOutcome::kSoldOut);
  EXPECT_GE(h.metrics.l1_hits.Value(), 1);  // sold out is now answered by L1

  Result<PutResult> restocked = h.catalog.Restock(kPhone, 1);
  ASSERT_TRUE(restocked) << restocked.error().ToString();
  EXPECT_TRUE(restocked->reopened);
  // L1 cleared: the next Buy reaches the store, and gets the new unit.
  const std::int64_t calls = h.metrics.stock_store_calls.Value();
  const PurchaseReply r = h.Buy(BuyOne(kPhone, 3));
  EXPECT_TRUE(IsAccepted(r)) << Describe(r);
  EXPECT_EQ(h.metrics.stock_store_calls.Value(), calls + 1);
  EXPECT_EQ(h.Remaining(kPhone), 0);
}

TEST(Catalog, PutWithMoreStockReopensAndClearsL1) {
  Harness h({MakeProduct(kPhone, 1)});
  ASSERT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 1))));
  EXPECT_EQ(h.Buy(BuyOne(kPhone, 2)).outcome, PurchaseOutcome::kSoldOut);
  Result<PutResult> put = h.catalog.Put(MakeProduct(kPhone, 3));
  ASSERT_TRUE(put);
  EXPECT_TRUE(put->reopened);
  EXPECT_EQ(h.Remaining(kPhone), 2);
  const std::int64_t calls = h.metrics.stock_store_calls.Value();
  EXPECT_TRUE(IsAccepted(h.Buy(BuyOne(kPhone, 2))));
  EXPECT_EQ(h.metrics.stock_store_calls.Value(), calls + 1);
}

TEST(Catalog, RestockOfAnUnknownProductIsNotFound) {
  Harness h({MakeProduct(kPhone, 1)});
  Result<PutResult> r = h.catalog.Restock(kLaptop, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Status::Code::kNotFound);
}

TEST(Catalog, RestockRacingPurchasesSellsEveryUnit) {
  // Restocks interleave with purchases; L1 must never hide a restocked unit
  // for good. After the race a final round of buyers takes whatever is left.
  Harness h({MakeProduct(kPhone, 10)});
  std::atomic<int> accepted{0};
  RunConcurrently(16, 100, [&](int i) {
    if (i % 100 == 50) {
      EXPECT_TRUE(h.catalog.Restock(kPhone, 5));
      return;
    }
    h.funnel.Buy(BuyOne(kPhone, UserId(i)), [&](const PurchaseReply& r) {
      if (IsAccepted(r)) ++accepted;
    });
  });
  for (UserId u = 100'000; u < 100'100; ++u) accepted += IsAccepted(h.Buy(BuyOne(kPhone, u)));
  EXPECT_EQ(accepted.load(), 10 + 16 * 5);
  EXPECT_EQ(h.Remaining(kPhone), 0);
}

// ---------------------------------------------------- LocalSoldOutCache ---

TEST(LocalSoldOutCache, MarkAndClear) {
  LocalSoldOutCache l1(/*ttl_ms=*/1000);
  EXPECT_FALSE(l1.Contains(kPhone, 0));
  l1.MarkSoldOut(kPhone, /*epoch=*/0, /*now_ms=*/100);
  EXPECT_TRUE(l1.Contains(kPhone, 100));
  EXPECT_FALSE(l1.Contains(kLaptop, 100));
  l1.Clear(kPhone, /*epoch=*/1);
  EXPECT_FALSE(l1.Contains(kPhone, 100));
}

TEST(LocalSoldOutCache, OlderEpochAfterClearIsIgnored) {
  // A SOLD_OUT from a reservation that ran before a restock must not hide the
  // restock: its epoch is older than the Clear().
  LocalSoldOutCache l1(1000);
  l1.MarkSoldOut(kPhone, 0, 100);
  l1.Clear(kPhone, 1);
  l1.MarkSoldOut(kPhone, 0, 200);  // late, stale news
  EXPECT_FALSE(l1.Contains(kPhone, 200));
  l1.MarkSoldOut(kPhone, 1, 300);  // sold out again after the restock
  EXPECT_TRUE(l1.Contains(kPhone, 300));
  // A Clear() with an older epoch still clears (clearing is always safe) ...
  l1.Clear(kPhone, 0);
  EXPECT_FALSE(l1.Contains(kPhone, 300));
  // ... but does not lower the epoch.
  l1.MarkSoldOut(kPhone, 0, 400);
  EXPECT_FALSE(l1.Contains(kPhone, 400));
}

TEST(LocalSoldOutCache, ClearBeforeAnyMarkStillRecordsTheEpoch) {
  LocalSoldOutCache l1(1000);
  l1.Clear(kPhone, 3);
  l1.MarkSoldOut(kPhone, 2, 100);
  EXPECT_FALSE(l1.Contains(kPhone, 100));
  l1.MarkSoldOut(kPhone, 3, 100);
  EXPECT_TRUE(l1.Contains(kPhone, 100));
}

TEST(LocalSoldOutCache, EntriesExpireAfterTheTtl) {
  LocalSoldOutCache l1(/*ttl_ms=*/600);
  l1.MarkSoldOut(kPhone, 0, /*now_ms=*/1'000);
  EXPECT_TRUE(l1.Contains(kPhone, 1'000));
  EXPECT_TRUE(l1.Contains(kPhone, 1'599));
  EXPECT_FALSE(l1.Contains(kPhone, 1'600));
  EXPECT_FALSE(l1.Contains(kPhone, 50'000));
  // Marking again restarts the TTL.
  l1.MarkSoldOut(kPhone, 0, 2'000);
  EXPECT_TRUE(l1.Contains(kPhone, 2'599));
  EXPECT_FALSE(l1.Contains(kPhone, 2'600));
}

TEST(LocalSoldOutCache, ManyProductsInASmallTable) {
  // More products than slots: some marks are dropped (safe: a miss only asks
  // the store), but a hit is never reported for a product never marked.
  LocalSoldOutCache l1(1000, /*capacity=*/16);
  for (ProductId id = 1; id <= 64; ++id) l1.MarkSoldOut(id, 0, 0);
  int hits = 0;
  for (ProductId id = 1; id <= 64; ++id) hits += l1.Contains(id, 0);
  EXPECT_GT(hits, 0);
  EXPECT_LE(hits, 16);
  for (ProductId id = 65; id <= 200; ++id) EXPECT_FALSE(l1.Contains(id, 0)) << id;
}

TEST(LocalSoldOutCache, ConcurrentMarksClearsAndLookups) {
  LocalSoldOutCache l1(1'000'000, 1024);
  RunConcurrently(16, 2000, [&](int i) {
    const ProductId id = 1 + i % 200;
    switch (i % 3) {
      case 0:
        l1.MarkSoldOut(id, i % 5, i);
        break;
      case 1:
        l1.Clear(id, i % 5);
        break;
      default:
        (void)l1.Contains(id, i);
        break;
    }
  });
  // Quiescent: the final epoch rules still hold for every product.
  for (ProductId id = 1; id <= 200; ++id) {
    l1.Clear(id, 10);
    l1.MarkSoldOut(id, 9, 0);
    EXPECT_FALSE(l1.Contains(id, 0)) << id;
    l1.MarkSoldOut(id, 10, 0);
    EXPECT_TRUE(l1.Contains(id, 0)) << id;
  }
}

}  // namespace
}  // namespace flashsale
