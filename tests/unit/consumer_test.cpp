// consumer_test: OrderConsumer's error handling against in-memory fakes of its
// two interfaces (the real databases are covered by embedded_test and
// pg_database_pgtest). A batch the database refuses for its data must not
// stall the stream: the refused orders go to the dead-letter queue and the
// rest persist; a batch that fails for a passing reason is retried with
// backoff until it lands, once.
//
// Concurrency model: the poison tests run the consumer on its own thread (the
// code before the fix retried a refused batch forever, so they wait with a
// deadline and then stop it); the retry test calls RunOnce() on its thread.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "consumer/order_consumer.hpp"
#include "fake_order_repository.hpp"
#include "memory_order_source.hpp"

namespace flashsale {
namespace {

using testutil::FakeOrderRepository;
using testutil::MemoryOrderSource;

constexpr ProductId kPhone = 20'000'001;
constexpr ProductId kUnknownProduct = 20'000'999;

Order MakeOrder(UserId user, ProductId product = kPhone) {
  static OrderIdGenerator ids;
  Order o;
  o.id = ids.Next(1'795'600'800'000);
  o.user = user;
  o.product = product;
  o.quantity = 1;
  o.price = 1250;
  o.created_at = 1'795'600'800'000;
  return o;
}

// An OrderRepository over FakeOrderRepository that refuses, the way a
// database refuses a row (Status::Invalid, nothing of the batch stored), every
// batch holding a poisoned order id; reports orders of an unknown product by
// index like the real databases; and follows a script of failures, one entry
// per call: nullopt behaves as above, a Status fails the call with it (Unknown
// after storing the batch, like a COMMIT whose answer was lost; any other
// before storing anything). Safe for concurrent use.
class RefusingRepository final : public OrderRepository {
 public:
  void Poison(const OrderId& id) {
    std::lock_guard lock(mu_);
    poisoned_.insert(id.str());
  }
  void Script(std::vector<std::optional<Status>> calls) {
    std::lock_guard lock(mu_);
    script_.assign(calls.begin(), calls.end());
  }
  int Calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  FakeOrderRepository& store() { return store_; }

  Status UpsertProduct(const Product& p) override { return store_.UpsertProduct(p); }
  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override {
    std::lock_guard lock(mu_);
    ++calls_;
    if (!script_.empty()) {
      std::optional<Status> failure = std::move(script_.front());
      script_.pop_front();
      if (failure) {
        if (failure->IsUnknown()) (void)Store(orders);  // stored, but the answer was lost
        return *failure;
      }
    }
    for (const Order& o : orders) {
      if (poisoned_.count(o.id.str()) > 0) {
        return Status::Invalid("value out of range in order " + o.id.str());
      }
    }
    return Store(orders);
  }
  Result<std::optional<Order>> FindOrder(const OrderId& id) override {
    return store_.FindOrder(id);
  }
  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override {
    return store_.OrdersOfUser(user, limit);
  }

 private:
  Result<PersistSummary> Store(std::span<const Order> orders) {
    std::vector<Order> known;
    std::vector<std::size_t> unknown;
    for (std::size_t i = 0; i < orders.size(); ++i) {
      if (orders[i].product == kUnknownProduct) {
        unknown.push_back(i);
      } else {
        known.push_back(orders[i]);
      }
    }
    Result<PersistSummary> r = store_.PersistBatch(known);
    if (r) r->unknown_product = std::move(unknown);
    return r;
  }

  FakeOrderRepository store_;
  std::mutex mu_;
  std::set<std::string> poisoned_;            // guarded by mu_
  std::deque<std::optional<Status>> script_;  // guarded by mu_
  int calls_ = 0;                             // guarded by mu_
};

bool Stored(RefusingRepository& repo, const Order& o) {
  Result<std::optional<Order>> found = repo.FindOrder(o.id);
  return found && found->has_value();
}

OrderConsumer::Options FastOptions(std::size_t max_batch) {
  OrderConsumer::Options options;
  options.max_batch = max_batch;
  options.poll_wait_ms = 1;
  options.batch_interval_ms = 0;
  options.max_backoff_ms = 40;
  return options;
}

TEST(OrderConsumer, OrdersTheDatabaseRefusesGoToTheDeadLetterQueueAndTheRestPersist) {
  RefusingRepository repo;
  MemoryOrderSource source;
  std::vector<Order> batch;
  for (UserId u = 0; u < 16; ++u) batch.push_back(MakeOrder(u));
  batch[6] = MakeOrder(6, kUnknownProduct);
  repo.Poison(batch[3].id);
  repo.Poison(batch[11].id);
  std::vector<Order> next;  // behind the poison batch, on the same stream
  for (UserId u = 100; u < 105; ++u) next.push_back(MakeOrder(u));
  source.Push(batch);
  source.Push(next);
  // Offsets are committed only once the good orders are stored and the bad
  // ones parked: check both at every commit.
  std::vector<std::string> commit_problems;
  source.OnCommit([&] {
    for (std::size_t i = 0; i < batch.size() && source.Commits() == 0; ++i) {
      const bool bad = i == 3 || i == 6 || i == 11;
      if (!bad && !Stored(repo, batch[i]))
        commit_problems.push_back("order not stored: " + batch[i].id.str());
    }
    if (source.Commits() == 0 && source.DeadLetters().size() != 3) {
      commit_problems.push_back("committed with " + std::to_string(source.DeadLetters().size()) +
                                " dead letters");
    }
  });
  FunnelMetrics metrics;
  OrderConsumer consumer(source, repo, metrics, FastOptions(16));
  consumer.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (source.Committed() < batch.size() + next.size() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  consumer.Stop(false);

  EXPECT_EQ(source.Committed(), batch.size() + next.size()) << "the stream stalled";
  EXPECT_TRUE(commit_problems.empty()) << commit_problems.front();
  std::vector<std::string> parked;
  for (const auto& letter : source.DeadLetters()) {
    parked.push_back(letter.order.id.str());
    EXPECT_FALSE(letter.reason.empty());
  }
  std::sort(parked.begin(), parked.end());
  std::vector<std::string> expected = {batch[3].id.str(), batch[6].id.str(), batch[11].id.str()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(parked, expected);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const bool bad = i == 3 || i == 6 || i == 11;
    EXPECT_EQ(Stored(repo, batch[i]), !bad) << "order #" << i;
  }
  for (const Order& o : next) EXPECT_TRUE(Stored(repo, o));
  EXPECT_EQ(metrics.orders_persisted_confirmed.Value(), 13 + 5);
}

TEST(OrderConsumer, RetryableFailuresBackOffThenPersistEveryOrderOnce) {
  RefusingRepository repo;
  MemoryOrderSource source;
  std::vector<Order> batch;
  for (UserId u = 0; u < 10; ++u) batch.push_back(MakeOrder(u));
  source.Push(batch);
  // Three failures, the last one after the batch was stored (an unknown
  // COMMIT outcome): the retry must find them stored, not store them twice.
  repo.Script({Status::Unavailable("database is down"), Status::Unavailable("database is down"),
               Status::Unknown("COMMIT: server closed the connection")});
  FunnelMetrics metrics;
  OrderConsumer::Options options = FastOptions(10);
  options.max_backoff_ms = 25;
  OrderConsumer consumer(source, repo, metrics, options);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.RunOnce(), batch.size());
  const auto took = std::chrono::steady_clock::now() - started;

  EXPECT_EQ(repo.Calls(), 4);
  // Backoff doubles from 10 ms, capped at max_backoff_ms: 10 + 20 + 25.
  EXPECT_GE(took, std::chrono::milliseconds(55));
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ(source.Committed(), batch.size());
  EXPECT_TRUE(source.DeadLetters().empty());
  for (const Order& o : batch) EXPECT_TRUE(Stored(repo, o));
  // Stored once: the replay after the unknown outcome found all of them.
  EXPECT_EQ(metrics.orders_persisted_confirmed.Value(), 0);
  Result<PersistSummary> again = repo.PersistBatch(batch);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->duplicates, 10);
}

TEST(OrderConsumer, HooksSeeEachStoredBatchBeforeTheCommitAndEveryRun) {
  // after_persist: once per successful PersistBatch, with its orders, before
  // the source's progress is committed (distributed mode takes landed orders
  // out of Redis' in-flight index there); never for a failed attempt.
  // after_run: after every RunOnce, an empty poll too.
  RefusingRepository repo;
  MemoryOrderSource source;
  std::vector<Order> batch;
  for (UserId u = 0; u < 6; ++u) batch.push_back(MakeOrder(u));
  source.Push(batch);
  repo.Script({Status::Unavailable("database is down")});
  FunnelMetrics metrics;
  OrderConsumer::Options options = FastOptions(10);
  std::vector<std::vector<std::string>> seen;
  std::vector<std::size_t> committed_at_hook;
  int runs = 0;
  options.after_persist = [&](std::span<const Order> orders) {
    std::vector<std::string> ids;
    for (const Order& o : orders) ids.push_back(o.id.str());
    seen.push_back(std::move(ids));
    committed_at_hook.push_back(source.Committed());
  };
  options.after_run = [&] { ++runs; };
  OrderConsumer consumer(source, repo, metrics, options);
  EXPECT_EQ(consumer.RunOnce(), batch.size());
  EXPECT_EQ(consumer.RunOnce(), 0u);  // nothing left: the hook runs anyway
  EXPECT_EQ(repo.Calls(), 2);
  ASSERT_EQ(seen.size(), 1u) << "called for the failed attempt, or not at all";
  ASSERT_EQ(seen[0].size(), batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(seen[0][i], batch[i].id.str());
  EXPECT_EQ(committed_at_hook[0], 0u) << "the hook must run before the commit";
  EXPECT_EQ(source.Committed(), batch.size());
  EXPECT_EQ(runs, 2);
}

TEST(OrderConsumer, StopCutsABackoffShort) {
  // The database stays down: the consumer backs off 10, 20, 40 ... ms. Once the
  // wait is in the seconds, Stop() must not sit it out (a SIGTERM to
  // `flashsale consume` during an outage would otherwise wait up to
  // max_backoff_ms, then the batch is left uncommitted as before).
  RefusingRepository repo;
  MemoryOrderSource source;
  source.Push({MakeOrder(1)});
  std::vector<std::optional<Status>> down(64, Status::Unavailable("database is down"));
  repo.Script(down);
  FunnelMetrics metrics;
  OrderConsumer::Options options = FastOptions(10);
  options.max_backoff_ms = 60'000;
  OrderConsumer consumer(source, repo, metrics, options);
  consumer.Start();
  // Attempt 9 fails after 10 + 20 + ... + 1280 ms of waits; the next wait is 2560 ms.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (repo.Calls() < 9 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(repo.Calls(), 9);
  const auto stop_started = std::chrono::steady_clock::now();
  consumer.Stop(false);
  const auto took = std::chrono::steady_clock::now() - stop_started;
  EXPECT_LT(took, std::chrono::milliseconds(1000)) << "Stop() waited out the backoff";
  EXPECT_EQ(source.Committed(), 0u) << "nothing was stored: nothing may be committed";
}

TEST(OrderConsumer, ARetryableFailureWhileIsolatingAPoisonOrderIsRetriedNotDeadLettered) {
  RefusingRepository repo;
  MemoryOrderSource source;
  std::vector<Order> batch;
  for (UserId u = 0; u < 8; ++u) batch.push_back(MakeOrder(u));
  repo.Poison(batch[5].id);
  source.Push(batch);
  // The whole batch is refused once; then the database goes away while the
  // consumer looks for the refused order.
  repo.Script({std::nullopt, Status::Unavailable("database is down"),
               Status::Unavailable("database is down"), Status::Unknown("COMMIT: no answer")});
  FunnelMetrics metrics;
  OrderConsumer consumer(source, repo, metrics, FastOptions(8));
  consumer.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (source.Committed() < batch.size() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  consumer.Stop(false);
  EXPECT_EQ(source.Committed(), batch.size()) << "the stream stalled";
  ASSERT_EQ(source.DeadLetters().size(), 1u);
  EXPECT_EQ(source.DeadLetters()[0].order.id, batch[5].id);
  for (std::size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(Stored(repo, batch[i]), i != 5);
}

}  // namespace
}  // namespace flashsale
