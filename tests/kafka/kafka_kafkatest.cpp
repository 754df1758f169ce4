// The Kafka adapters against a real broker (the CTest server fixture sets
// FLASHSALE_TEST_KAFKA; by hand: FLASHSALE_TEST_KAFKA=127.0.0.1:39092). Each
// case creates its own topics under a unique prefix, so cases and reruns never
// see each other's messages. Without a broker the cases skip, unless CI=true.
//
// Concurrency model: producers' callbacks run on the queue's poll thread and
// only touch atomics or a mutex-guarded vector; the test thread waits on them
// with deadlines. Sources are used from the test thread only.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "backends/kafka/kafka_options.hpp"
#include "backends/kafka/kafka_order_queue.hpp"
#include "backends/kafka/kafka_order_source.hpp"
#include "backends/kafka/kafka_status_broadcast.hpp"
#include "backends/kafka/order_codec.hpp"

namespace flashsale::kafka {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Options for a fresh set of topics, or nullopt (the caller skips).
std::optional<KafkaOptions> TestOptions() {
  static std::atomic<int> counter{0};
  const char* bootstrap = std::getenv("FLASHSALE_TEST_KAFKA");
  if (bootstrap == nullptr || *bootstrap == '\0') return std::nullopt;
  KafkaOptions o;
  o.bootstrap = bootstrap;
  o.topic_prefix = "t" + std::to_string(::getpid()) + "_" +
                   std::to_string(NowMillis() % 100'000'000) + "_" + std::to_string(counter++) +
                   "_";
  o.client_id = "flashsale-test";
  return o;
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

#define KAFKA_OPTIONS_OR_SKIP(var)                                     \
  std::optional<KafkaOptions> var##_opt = TestOptions();               \
  if (!var##_opt) {                                                    \
    if (InCi()) FAIL() << "FLASHSALE_TEST_KAFKA is not set (CI=true)"; \
    GTEST_SKIP() << "FLASHSALE_TEST_KAFKA not set: no broker";         \
  }                                                                    \
  KafkaOptions var = *var##_opt;                                       \
  const Status var##_topics = EnsureTopics(var, 3);                    \
  ASSERT_TRUE(var##_topics.ok()) << var##_topics.ToString()

Order MakeOrder(int n, ProductId product = 7) {
  static OrderIdGenerator ids;
  Order o;
  o.id = ids.Next(NowMillis());
  o.user = 1000 + n;
  o.product = product;
  o.quantity = 1 + n % 3;
  o.price = 1250 + n;
  o.created_at = NowMillis();
  return o;
}

// Hands `orders` off and waits for every answer; returns the non-OK ones.
std::vector<Status> HandOffAll(KafkaOrderQueue& q, const std::vector<Order>& orders) {
  std::mutex mu;
  std::vector<Status> failures;
  std::atomic<std::size_t> answered{0};
  for (const Order& o : orders) {
    q.HandOff(o, [&](const Status& s) {
      if (!s.ok()) {
        std::lock_guard lock(mu);
        failures.push_back(s);
      }
      answered.fetch_add(1);
    });
  }
  q.Flush();
  EXPECT_EQ(answered.load(), orders.size());
  return failures;
}

// Polls until `want` orders arrived or `timeout` passed.
std::vector<Order> PollAtLeast(KafkaOrderSource& s, std::size_t want,
                               std::chrono::milliseconds timeout, std::size_t max_batch = 500) {
  std::vector<Order> all;
  const auto deadline = Clock::now() + timeout;
  while (all.size() < want && Clock::now() < deadline) {
    Result<std::vector<Order>> batch = s.Poll(max_batch, 200);
    EXPECT_TRUE(batch.has_value());
    if (!batch) break;
    all.insert(all.end(), batch->begin(), batch->end());
  }
  return all;
}

// A plain producer for hand-made (bad) messages.
void ProduceRaw(const KafkaOptions& o, const std::string& topic, std::string_view key,
                std::string_view value) {
  Result<ConfPtr> conf = MakeConf(o);
  ASSERT_TRUE(conf.has_value());
  Result<KafkaPtr> rk = MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  ASSERT_TRUE(rk.has_value());
  ASSERT_EQ(rd_kafka_producev(rk->get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                              RD_KAFKA_V_KEY(key.data(), key.size()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_flush(rk->get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

struct DlqMessage {
  std::string value;
  std::map<std::string, std::string> headers;
};

// Reads the dlq topic (1 partition) from the beginning until `want` messages.
std::vector<DlqMessage> ReadDlq(const KafkaOptions& o, std::size_t want) {
  std::vector<DlqMessage> out;
  Result<ConfPtr> conf = MakeConf(o);
  EXPECT_TRUE(conf.has_value());
  EXPECT_TRUE(SetConf(conf->get(), "group.id", o.topic_prefix + "dlq-reader").ok());
  Result<KafkaPtr> rk = MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
  EXPECT_TRUE(rk.has_value());
  PartitionListPtr parts(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(parts.get(), Topics::For(o).dlq.c_str(), 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  EXPECT_EQ(rd_kafka_assign(rk->get(), parts.get()), RD_KAFKA_RESP_ERR_NO_ERROR);
  const auto deadline = Clock::now() + 15s;
  while (out.size() < want && Clock::now() < deadline) {
    MessagePtr msg(rd_kafka_consumer_poll(rk->get(), 200));
    if (!msg || msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    DlqMessage m;
    m.value.assign(static_cast<const char*>(msg->payload), msg->len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(msg.get(), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      for (std::size_t i = 0;
           rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        m.headers[name] = std::string(static_cast<const char*>(value), size);
      }
    }
    out.push_back(std::move(m));
  }
  rd_kafka_consumer_close(rk->get());
  return out;
}

std::set<std::string> Ids(const std::vector<Order>& orders) {
  std::set<std::string> ids;
  for (const Order& o : orders) ids.insert(o.id.str());
  return ids;
}

TEST(KafkaOrderQueue, HandsOffConcurrentlyAndSourceReadsBackExactlyOnce) {
  KAFKA_OPTIONS_OR_SKIP(o);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::vector<Order>> per_thread(kThreads);
  std::set<std::string> sent;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      per_thread[t].push_back(MakeOrder(t * kPerThread + i, 1 + i % 10));
      sent.insert(per_thread[t].back().id.str());
    }
  }
  {
    Result<std::unique_ptr<KafkaOrderQueue>> q = KafkaOrderQueue::Create(o);
    ASSERT_TRUE(q.has_value()) << q.error().ToString();
    std::atomic<int> ok{0};
    std::atomic<int> not_ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (const Order& order : per_thread[t]) {
          (*q)->HandOff(order, [&](const Status& s) { (s.ok() ? ok : not_ok).fetch_add(1); });
        }
      });
    }
    for (std::thread& th : threads) th.join();
    (*q)->Flush();
    EXPECT_EQ(ok.load(), kThreads * kPerThread);
    EXPECT_EQ(not_ok.load(), 0);
    EXPECT_TRUE((*q)->Health().ok()) << (*q)->Health().ToString();
  }
  const std::string group = o.topic_prefix + "consumers";
  {
    Result<std::unique_ptr<KafkaOrderSource>> s = KafkaOrderSource::Create(o, group);
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    std::vector<Order> got = PollAtLeast(**s, sent.size(), 20s);
    EXPECT_EQ(got.size(), sent.size());
    EXPECT_EQ(Ids(got), sent);
    // Field by field for one of them.
    const Order& first = per_thread[0][0];
    for (const Order& g : got) {
      if (g.id == first.id) {
        EXPECT_EQ(EncodeOrder(g), EncodeOrder(first));
      }
    }
    // Nothing more than what was sent.
    Result<std::vector<Order>> more = (*s)->Poll(100, 300);
    ASSERT_TRUE(more.has_value());
    EXPECT_TRUE(more->empty());
    EXPECT_EQ((*s)->Lag(), 0);
    EXPECT_TRUE((*s)->Commit().ok());
  }
  {
    // Same group after the commit: only what is new.
    Result<std::unique_ptr<KafkaOrderSource>> s = KafkaOrderSource::Create(o, group);
    ASSERT_TRUE(s.has_value());
    Result<std::unique_ptr<KafkaOrderQueue>> q = KafkaOrderQueue::Create(o);
    ASSERT_TRUE(q.has_value());
    const Order marker = MakeOrder(99999, 3);
    EXPECT_TRUE(HandOffAll(**q, {marker}).empty());
    std::vector<Order> got = PollAtLeast(**s, 1, 15s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].id, marker.id);
    Result<std::vector<Order>> more = (*s)->Poll(100, 300);
    ASSERT_TRUE(more.has_value());
    EXPECT_TRUE(more->empty());
  }
}

TEST(KafkaOrderQueue, UnreachableBrokerAnswersNotDelivered) {
  KafkaOptions o;
  o.bootstrap = "127.0.0.1:1";
  o.delivery_timeout_ms = 1500;
  o.topic_prefix = "unreachable_";
  Result<std::unique_ptr<KafkaOrderQueue>> q = KafkaOrderQueue::Create(o);
  ASSERT_TRUE(q.has_value()) << q.error().ToString();
  const auto start = Clock::now();
  std::vector<Status> failures = HandOffAll(**q, {MakeOrder(1), MakeOrder(2)});
  const auto took = Clock::now() - start;
  ASSERT_EQ(failures.size(), 2u);
  for (const Status& s : failures) {
    EXPECT_TRUE(s.IsNotDelivered()) << s.ToString();
  }
  EXPECT_LT(took, 5s);
  Status health = (*q)->Health();
  EXPECT_FALSE(health.ok());
  EXPECT_NE(health.message().find("kafka"), std::string::npos) << health.ToString();
}

TEST(KafkaOrderSource, UncommittedBatchIsDeliveredAgain) {
  KAFKA_OPTIONS_OR_SKIP(o);
  std::vector<Order> orders;
  for (int i = 0; i < 100; ++i) orders.push_back(MakeOrder(i, i % 5));
  {
    Result<std::unique_ptr<KafkaOrderQueue>> q = KafkaOrderQueue::Create(o);
    ASSERT_TRUE(q.has_value());
    ASSERT_TRUE(HandOffAll(**q, orders).empty());
  }
  const std::string group = o.topic_prefix + "consumers";
  {
    Result<std::unique_ptr<KafkaOrderSource>> s = KafkaOrderSource::Create(o, group);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(Ids(PollAtLeast(**s, orders.size(), 15s)), Ids(orders));
    // Closed without Commit().
  }
  {
    Result<std::unique_ptr<KafkaOrderSource>> s = KafkaOrderSource::Create(o, group);
    ASSERT_TRUE(s.has_value());
    std::vector<Order> again = PollAtLeast(**s, orders.size(), 15s);
    EXPECT_EQ(again.size(), orders.size());
    EXPECT_EQ(Ids(again), Ids(orders));
    EXPECT_TRUE((*s)->Commit().ok());
  }
}

TEST(KafkaOrderSource, SafeTimesFollowCommitsAndCaughtUpPartitionsOnly) {
  // T_p: every order created before it that will ever be in partition p is
  // committed. After a commit it is (newest timestamp - H); a partition read
  // to its end with nothing uncommitted gets (now - H); a partition with
  // polled but uncommitted orders must not pass their creation time.
  KAFKA_OPTIONS_OR_SKIP(o);
  constexpr std::int64_t kH = 1000;
  Result<std::unique_ptr<KafkaOrderQueue>> q = KafkaOrderQueue::Create(o);
  ASSERT_TRUE(q.has_value());
  Result<std::unique_ptr<KafkaOrderSource>> s =
      KafkaOrderSource::Create(o, o.topic_prefix + "consumers");
  ASSERT_TRUE(s.has_value());
  (*s)->TrackSafeTimes(kH);
  Result<int> partitions = (*s)->PartitionCount(5000);
  ASSERT_TRUE(partitions.has_value()) << partitions.error().ToString();
  EXPECT_EQ(*partitions, 3);

  // All of product 7: one partition busy, two idle.
  std::vector<Order> first;
  for (int i = 0; i < 50; ++i) first.push_back(MakeOrder(i, 7));
  const UnixMillis before_first = NowMillis();
  ASSERT_TRUE(HandOffAll(**q, first).empty());
  EXPECT_EQ(PollAtLeast(**s, first.size(), 15s).size(), first.size());
  ASSERT_TRUE((*s)->Commit().ok());
  // Quiet polls: every partition is caught up.
  const UnixMillis quiet_from = NowMillis();
  const auto quiet_until = Clock::now() + 600ms;
  while (Clock::now() < quiet_until) ASSERT_TRUE((*s)->Poll(100, 100).has_value());
  std::map<std::int32_t, UnixMillis> safe = (*s)->SafeTimes();
  ASSERT_EQ(safe.size(), 3u);
  for (const auto& [p, t] : safe) {
    EXPECT_GE(t, std::max(before_first, quiet_from) - kH) << "partition " << p;
    EXPECT_LE(t, NowMillis() - kH) << "partition " << p;
  }

  // More orders, polled but not committed, for longer than H: the idle
  // partitions move past their creation time, the busy one must not.
  std::vector<Order> second;
  for (int i = 0; i < 20; ++i) second.push_back(MakeOrder(100 + i, 7));
  const UnixMillis second_created = NowMillis();
  ASSERT_TRUE(HandOffAll(**q, second).empty());
  EXPECT_EQ(PollAtLeast(**s, second.size(), 15s).size(), second.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(kH + 300));
  const auto until = Clock::now() + 600ms;
  while (Clock::now() < until) {
    Result<std::vector<Order>> none = (*s)->Poll(100, 100);
    ASSERT_TRUE(none.has_value());
    EXPECT_TRUE(none->empty());
  }
  safe = (*s)->SafeTimes();
  ASSERT_EQ(safe.size(), 3u);
  int held_back = 0;
  for (const auto& [p, t] : safe) held_back += t <= second_created ? 1 : 0;
  EXPECT_EQ(held_back, 1) << "exactly the partition with uncommitted orders stays behind them";
  ASSERT_TRUE((*s)->Commit().ok());
  for (const auto& [p, t] : (*s)->SafeTimes()) EXPECT_GE(t, second_created - kH) << p;
}

TEST(KafkaOrderSource, MalformedMessagesGoToTheDeadLetterTopic) {
  KAFKA_OPTIONS_OR_SKIP(o);
  const Topics topics = Topics::For(o);
  const std::string bad = "{\"order_id\": not json";
  ProduceRaw(o, topics.orders, "7", bad);
  std::vector<Order> orders;
  for (int i = 0; i < 10; ++i) orders.push_back(MakeOrder(i, 7));  // same partition as the bad one
  {
    Result<std::unique_ptr<KafkaOrderQueue>> q = KafkaOrderQueue::Create(o);
    ASSERT_TRUE(q.has_value());
    ASSERT_TRUE(HandOffAll(**q, orders).empty());
  }
  Result<std::unique_ptr<KafkaOrderSource>> s = KafkaOrderSource::Create(o, o.topic_prefix + "g");
  ASSERT_TRUE(s.has_value());
  // One order per Poll so that DeadLetter(0) names a known one.
  std::vector<Order> got;
  Result<std::vector<Order>> first = Result<std::vector<Order>>(std::vector<Order>{});
  const auto deadline = Clock::now() + 15s;
  while (first->empty() && Clock::now() < deadline) first = (*s)->Poll(1, 200);
  ASSERT_EQ(first->size(), 1u);
  ASSERT_TRUE((*s)->DeadLetter(0, "unknown product 7").ok());
  EXPECT_FALSE((*s)->DeadLetter(1, "out of range").ok());
  got = PollAtLeast(**s, orders.size() - 1, 15s);
  got.insert(got.begin(), (*first)[0]);
  EXPECT_EQ(Ids(got), Ids(orders));  // the bad message did not block the partition
  ASSERT_TRUE((*s)->Commit().ok());

  std::vector<DlqMessage> dlq = ReadDlq(o, 2);
  ASSERT_EQ(dlq.size(), 2u);
  EXPECT_EQ(dlq[0].value, bad);  // original bytes
  EXPECT_FALSE(dlq[0].headers["error"].empty());
  EXPECT_EQ(dlq[0].headers.count("source_partition"), 1u);
  EXPECT_EQ(dlq[0].headers["source_offset"], "0");
  EXPECT_EQ(dlq[1].value, EncodeOrder((*first)[0]));
  EXPECT_EQ(dlq[1].headers["error"], "unknown product 7");
  EXPECT_EQ(dlq[1].headers["source_partition"], dlq[0].headers["source_partition"]);
  EXPECT_EQ(dlq[1].headers["source_offset"], "1");
}

// Listener that records what it hears.
struct Heard {
  std::mutex mu;
  std::vector<std::tuple<ProductId, ProductStatusChange, std::int64_t>> changes;
  void Add(ProductId p, ProductStatusChange c, std::int64_t e) {
    std::lock_guard lock(mu);
    changes.emplace_back(p, c, e);
  }
  bool Has(ProductId p, ProductStatusChange c, std::int64_t e) {
    std::lock_guard lock(mu);
    return std::find(changes.begin(), changes.end(), std::make_tuple(p, c, e)) != changes.end();
  }
  bool WaitFor(ProductId p, ProductStatusChange c, std::int64_t e, std::chrono::milliseconds t) {
    const auto deadline = Clock::now() + t;
    while (!Has(p, c, e)) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }
};

TEST(KafkaStatusBroadcast, EveryInstanceHearsEveryChange) {
  KAFKA_OPTIONS_OR_SKIP(o);
  Heard heard_a;
  Heard heard_b;
  Result<std::unique_ptr<KafkaStatusBroadcast>> a = KafkaStatusBroadcast::Create(o);
  Result<std::unique_ptr<KafkaStatusBroadcast>> b = KafkaStatusBroadcast::Create(o);
  ASSERT_TRUE(a.has_value() && b.has_value());
  (*a)->Subscribe(
      [&](ProductId p, ProductStatusChange c, std::int64_t e) { heard_a.Add(p, c, e); });
  (*b)->Subscribe(
      [&](ProductId p, ProductStatusChange c, std::int64_t e) { heard_b.Add(p, c, e); });
  ASSERT_TRUE((*a)->Start().ok());
  ASSERT_TRUE((*b)->Start().ok());

  ProduceRaw(o, Topics::For(o).status, "1", "garbage");  // skipped, not fatal
  (*a)->Publish(42, ProductStatusChange::kSoldOut, 3);
  EXPECT_TRUE(heard_a.Has(42, ProductStatusChange::kSoldOut, 3));  // at once, locally
  EXPECT_TRUE(heard_b.WaitFor(42, ProductStatusChange::kSoldOut, 3, 10s));
  (*b)->Publish(42, ProductStatusChange::kRestocked, 4);
  EXPECT_TRUE(heard_a.WaitFor(42, ProductStatusChange::kRestocked, 4, 10s));
  (*a)->Stop();
  (*b)->Stop();
}

// Not a benchmark (shared CI cores), but prints the rates it saw.
TEST(KafkaThroughput, HandOffAndPollBack) {
  KAFKA_OPTIONS_OR_SKIP(o);
  constexpr int kOrders = 100'000;
  std::vector<Order> orders;
  orders.reserve(kOrders);
  for (int i = 0; i < kOrders; ++i) orders.push_back(MakeOrder(i, i % 50));
  Result<std::unique_ptr<KafkaOrderQueue>> q = KafkaOrderQueue::Create(o);
  ASSERT_TRUE(q.has_value());
  std::atomic<int> ok{0};
  auto start = Clock::now();
  for (const Order& order : orders) {
    (*q)->HandOff(order, [&](const Status& s) {
      if (s.ok()) ok.fetch_add(1, std::memory_order_relaxed);
    });
  }
  (*q)->Flush();
  const double produce_s = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(ok.load(), kOrders);

  Result<std::unique_ptr<KafkaOrderSource>> s = KafkaOrderSource::Create(o, o.topic_prefix + "g");
  ASSERT_TRUE(s.has_value());
  // Wait for the assignment and the first fetch, then time the drain.
  std::vector<Order> got = PollAtLeast(**s, 1, 15s, 1);
  start = Clock::now();
  std::vector<Order> rest = PollAtLeast(**s, kOrders - got.size(), 20s, 5000);
  const double consume_s = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(got.size() + rest.size(), static_cast<std::size_t>(kOrders));
  EXPECT_TRUE((*s)->Commit().ok());
  std::printf(
      "hand-off: %d orders in %.2f s (%.0f/s, acked); poll+decode: %zu in %.2f s (%.0f/s)\n",
      kOrders, produce_s, kOrders / produce_s, rest.size(), consume_s,
      static_cast<double>(rest.size()) / consume_s);
}

}  // namespace
}  // namespace flashsale::kafka
