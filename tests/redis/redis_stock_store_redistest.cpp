// RedisStockStore against a real, throwaway redis-server started by the test
// (fork/exec on a free 127.0.0.1 port, in a temp dir, no persistence). Without
// redis-server on PATH the tests skip, unless CI=true: then they fail.
//
// Concurrency model: one io_context thread runs the RedisConnection; test
// threads call the store and wait on futures (SyncReserve).

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "backends/embedded/local_status_broadcast.hpp"
#include "backends/redis/lua_scripts.hpp"
#include "backends/redis/redis_connection.hpp"
#include "backends/redis/redis_idempotency_store.hpp"
#include "backends/redis/redis_keys.hpp"
#include "backends/redis/redis_stock_store.hpp"
#include "backends/redis/redis_waiting_room.hpp"
#include "funnel/purchase_funnel.hpp"
#include "recording_order_queue.hpp"
#include "run_concurrently.hpp"
#include "temp_dir.hpp"

namespace flashsale::redis {
namespace {

using namespace std::chrono_literals;

std::uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool HaveRedisServer() { return std::system("command -v redis-server >/dev/null 2>&1") == 0; }

// A redis-server child process; killed (SIGKILL) by Stop() or the destructor.
class RedisServer {
 public:
  // persistent: an append-only file fsynced on every write, so a SIGKILL and a
  // restart keep everything acknowledged (a server that was stopped, not wiped).
  explicit RedisServer(std::string dir, bool persistent = false)
      : dir_(std::move(dir)), port_(FreePort()), persistent_(persistent) {}
  ~RedisServer() { Stop(); }

  void Start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
               "--dir", dir_.c_str(), "--save", "", "--appendonly", persistent_ ? "yes" : "no",
               "--appendfsync", "always", "--logfile", (dir_ + "/redis.log").c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Wait for PING.
    std::string cmd = "redis-cli -p " + std::to_string(port_) + " ping >/dev/null 2>&1";
    for (int i = 0; i < 200; ++i) {
      if (std::system(cmd.c_str()) == 0) return;
      std::this_thread::sleep_for(25ms);
    }
    FAIL() << "redis-server did not answer PING on port " << port_;
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGSTOP / SIGCONT: a server that accepts bytes but never answers.
  void Pause() { ::kill(pid_, SIGSTOP); }
  void Resume() { ::kill(pid_, SIGCONT); }
  void Cli(const std::string& args) {
    std::string cmd = "redis-cli -p " + std::to_string(port_) + " " + args + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  std::string dir_;
  std::uint16_t port_;
  bool persistent_;
  pid_t pid_ = -1;
};

constexpr ProductId kPhone = 1;
const StockStore::PersistProduct kNoPersist = [](const Product&) { return Status::Ok(); };

class RedisStockStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRedisServer()) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true")
        FAIL() << "redis-server not on PATH (CI=true)";
      GTEST_SKIP() << "redis-server not on PATH";
    }
    server_ = std::make_unique<RedisServer>(dir_.path().string(), Persistent());
    server_->Start();
    if (HasFatalFailure()) return;
    RedisConnection::Options opts;
    opts.port = server_->port();
    opts.timeout = 1000ms;
    connection_ = std::make_unique<RedisConnection>(io_, opts);
    store_ = std::make_unique<RedisStockStore>(*connection_);
    io_thread_ = std::thread([this] { io_.run(); });
  }
  [[nodiscard]] virtual bool Persistent() const { return false; }
  void TearDown() override {
    work_.reset();
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    store_.reset();
    connection_.reset();
    server_.reset();
  }

  Result<ReserveResult> SyncReserve(UserId user, std::int64_t qty, ProductId product = kPhone,
                                    bool pass_verified = false) {
    Reservation r;
    r.product = product;
    r.user = user;
    r.quantity = qty;
    r.order = ids_.Next(Now());
    r.now = Now();
    r.pass_verified = pass_verified;
    last_ = r;
    std::promise<Result<ReserveResult>> p;
    auto f = p.get_future();
    store_->Reserve(r, [&p](Result<ReserveResult> res) { p.set_value(std::move(res)); });
    return f.get();
  }
  // Release() and a wait for its answer (the test thread is not the io thread).
  Result<std::int64_t> SyncRelease(const Reservation& r) {
    std::promise<Result<std::int64_t>> p;
    auto f = p.get_future();
    store_->Release(r, [&p](Result<std::int64_t> e) { p.set_value(std::move(e)); });
    return f.get();
  }
  static UnixMillis Now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void PutProduct(std::int64_t stock, std::int64_t limit, std::optional<UnixMillis> starts = {},
                  std::optional<UnixMillis> ends = {}) {
    Product p{kPhone, 1999, stock, starts, ends, limit};
    Result<PutResult> r = store_->Put(p, kNoPersist);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
  }
  void PutWindowed(ProductId id, std::int64_t stock, std::optional<std::int64_t> window_s) {
    Product p{id, 1999, stock, {}, {}, /*limit_per_user=*/5};
    p.payment_window_s = window_s;
    Result<PutResult> r = store_->Put(p, kNoPersist);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
  }
  // One raw command on the fixture's connection, and its reply.
  RedisValue Command(std::vector<std::string> argv) {
    std::promise<Result<RedisValue>> p;
    connection_->Send(std::move(argv), [&p](Result<RedisValue> v) { p.set_value(std::move(v)); });
    Result<RedisValue> v = p.get_future().get();
    EXPECT_TRUE(v.has_value()) << v.error().ToString();
    return v.has_value() ? *v : RedisValue{};
  }
  // The members of a product's in-flight index, oldest first.
  std::vector<std::string> InFlightIds(ProductId id) {
    std::vector<std::string> out;
    for (const RedisValue& m :
         Command({"ZRANGE", "item:{" + std::to_string(id) + "}:inflight", "0", "-1"}).elements) {
      out.push_back(m.str);
    }
    return out;
  }

  testutil::TempDir dir_;
  std::unique_ptr<RedisServer> server_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread io_thread_;
  std::unique_ptr<RedisConnection> connection_;
  std::unique_ptr<RedisStockStore> store_;
  OrderIdGenerator ids_;
  Reservation last_;
};

// A connection with its own I/O thread, for tests that need other options than the
// fixture's. The thread stops before the connection goes (RedisConnection's REQUIRES).
class OwnConnection {
 public:
  explicit OwnConnection(RedisConnection::Options options)
      : conn_(io_, std::move(options)), thread_([this] { io_.run(); }) {}
  ~OwnConnection() {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  RedisConnection& operator*() { return conn_; }
  RedisConnection* operator->() { return &conn_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  RedisConnection conn_;
  std::thread thread_;
};

ReserveOutcome OutcomeOf(const Result<ReserveResult>& r) {
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r.has_value() ? r->outcome : ReserveOutcome::kUnknownProduct;
}

TEST_F(RedisStockStoreTest, AnswersEveryOutcomeCode) {
  EXPECT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kUnknownProduct);
  PutProduct(3, 2);
  Result<ReserveResult> first = SyncReserve(1, 1);
  ASSERT_EQ(OutcomeOf(first), ReserveOutcome::kReserved);
  EXPECT_EQ(first->price, 1999);
  EXPECT_FALSE(first->took_last_unit);
  const OrderId first_order = last_.order;
  EXPECT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kReserved);
  Result<ReserveResult> over = SyncReserve(1, 1);
  ASSERT_EQ(OutcomeOf(over), ReserveOutcome::kLimitExceeded);
  EXPECT_FALSE(over->latest_order.empty());
  EXPECT_FALSE(over->latest_order == first_order);  // the latest, not the first
  EXPECT_EQ(OutcomeOf(SyncReserve(2, 2)), ReserveOutcome::kInsufficientStock);
  Result<ReserveResult> last = SyncReserve(2, 1);
  ASSERT_EQ(OutcomeOf(last), ReserveOutcome::kReserved);
  EXPECT_TRUE(last->took_last_unit);
  EXPECT_EQ(OutcomeOf(SyncReserve(3, 1)), ReserveOutcome::kSoldOut);

  Result<std::optional<StockSnapshot>> snap = store_->Get(kPhone);
  ASSERT_TRUE(snap.has_value() && snap->has_value());
  EXPECT_EQ((*snap)->remaining, 0);
  EXPECT_TRUE((*snap)->sold_out);
  EXPECT_EQ((*snap)->product.stock, 3);
  EXPECT_EQ((*snap)->product.limit_per_user, 2);

  PutProduct(10, 1, Now() + 3'600'000);
  EXPECT_EQ(OutcomeOf(SyncReserve(4, 1)), ReserveOutcome::kNotStarted);
  PutProduct(10, 1, Now() - 7'200'000, Now() - 3'600'000);
  EXPECT_EQ(OutcomeOf(SyncReserve(4, 1)), ReserveOutcome::kEnded);
}

TEST_F(RedisStockStoreTest, PutIsConflictBelowSoldAndSkipsPersist) {
  PutProduct(5, 3);
  ASSERT_EQ(OutcomeOf(SyncReserve(1, 3)), ReserveOutcome::kReserved);
  bool persisted = false;
  Result<PutResult> r = store_->Put(Product{kPhone, 1999, 2, {}, {}, 3}, [&](const Product&) {
    persisted = true;
    return Status::Ok();
  });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Status::Code::kConflict);
  EXPECT_FALSE(persisted);
  // Redis decides first: a database that fails afterwards is reported, and the
  // change stays in effect (the row catches up with the next change).
  Result<PutResult> failed = store_->Put(Product{kPhone, 1999, 9, {}, {}, 3}, [](const Product&) {
    return Status::Unavailable("db down");
  });
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), Status::Code::kInternal);
  EXPECT_NE(failed.error().message().find("db down"), std::string::npos);
  EXPECT_EQ((*store_->Get(kPhone))->product.stock, 9);
  Product recorded;
  Result<PutResult> ok = store_->Put(Product{kPhone, 1999, 10, {}, {}, 3}, [&](const Product& p) {
    recorded = p;
    return Status::Ok();
  });
  ASSERT_TRUE(ok.has_value());
  EXPECT_FALSE(ok->created);
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 7);
  EXPECT_EQ(recorded.stock, 10);
  EXPECT_EQ(recorded.version, (*store_->Get(kPhone))->product.version);
}

TEST_F(RedisStockStoreTest, AdminChangesAreNumberedAndPersistWhatRedisHolds) {
  PutProduct(5, 3);
  const std::int64_t v0 = (*store_->Get(kPhone))->product.version;
  ASSERT_EQ(OutcomeOf(SyncReserve(1, 2)), ReserveOutcome::kReserved);
  std::vector<Product> persisted;
  auto record = [&](const Product& p) {
    persisted.push_back(p);
    return Status::Ok();
  };
  Product windowed{kPhone, 2500, 8, Now() - 1000, Now() + 3'600'000, 4};
  ASSERT_TRUE(store_->Put(windowed, record).has_value());
  ASSERT_TRUE(store_->Restock(kPhone, 3, record).has_value());
  ASSERT_EQ(persisted.size(), 2u);
  EXPECT_EQ(persisted[0].version, v0 + 1);
  // The restock persists the whole product as Redis holds it after the change.
  const Product& restocked = persisted[1];
  EXPECT_EQ(restocked.version, v0 + 2);
  EXPECT_EQ(restocked.stock, 11);
  EXPECT_EQ(restocked.price, 2500);
  EXPECT_EQ(restocked.limit_per_user, 4);
  EXPECT_EQ(restocked.starts_at, windowed.starts_at);
  EXPECT_EQ(restocked.ends_at, windowed.ends_at);
  Result<std::optional<StockSnapshot>> snap = store_->Get(kPhone);
  EXPECT_EQ((*snap)->product.version, v0 + 2);
  EXPECT_EQ((*snap)->remaining, 9);
  // A refused change is neither numbered nor persisted.
  EXPECT_FALSE(store_->Put(Product{kPhone, 2500, 1, {}, {}, 4}, record).has_value());
  EXPECT_EQ(persisted.size(), 2u);
  EXPECT_EQ((*store_->Get(kPhone))->product.version, v0 + 2);
  Result<PutResult> overflow = store_->Restock(kPhone, INT64_MAX, record);
  ASSERT_FALSE(overflow.has_value());
  EXPECT_EQ(overflow.error().code(), Status::Code::kInvalid);
  EXPECT_EQ((*store_->Get(kPhone))->product.stock, 11);
}

TEST_F(RedisStockStoreTest, RestockReopensASoldOutProduct) {
  Result<PutResult> missing = store_->Restock(kPhone, 5, kNoPersist);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Status::Code::kNotFound);
  PutProduct(1, 1);
  ASSERT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kReserved);
  ASSERT_EQ(OutcomeOf(SyncReserve(2, 1)), ReserveOutcome::kSoldOut);
  std::int64_t persisted_stock = 0;
  Result<PutResult> r = store_->Restock(kPhone, 4, [&](const Product& p) {
    persisted_stock = p.stock;
    return Status::Ok();
  });
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->reopened);
  EXPECT_EQ(r->restock_epoch, 1);
  EXPECT_EQ(persisted_stock, 5);
  Result<std::optional<StockSnapshot>> snap = store_->Get(kPhone);
  EXPECT_EQ((*snap)->remaining, 4);
  EXPECT_EQ((*snap)->product.stock, 5);
  EXPECT_FALSE((*snap)->sold_out);
  EXPECT_EQ(OutcomeOf(SyncReserve(2, 1)), ReserveOutcome::kReserved);
}

TEST_F(RedisStockStoreTest, PipelinedRaceSellsExactlyTheStock) {
  PutProduct(100, 2);
  // A connection of its own with a generous reply timeout: under TSan on a loaded 2-core
  // machine the 3,200 queued reservations can keep one waiting longer than the fixture's
  // 1 s (seen once in CI), and this test is about pipelining and exact stock, not timeouts.
  RedisConnection::Options opts;
  opts.port = server_->port();
  opts.timeout = 20s;
  OwnConnection connection(opts);
  RedisStockStore store(*connection);
  std::atomic<int> units{0};
  std::mutex mu;
  std::map<UserId, int> per_user;
  OrderIdGenerator ids;
  const UnixMillis now = Now();
  const std::uint64_t batches_before = connection->BatchesWritten();
  const std::uint64_t commands_before = connection->CommandsWritten();
  // 16 threads x 200 calls, each issued asynchronously so many are queued at once.
  std::atomic<int> answered{0};
  std::promise<void> all_done;
  constexpr int kThreads = 16, kCalls = 200;
  testutil::RunConcurrently(kThreads, kCalls, [&](int i) {
    Reservation r{kPhone, static_cast<UserId>(i % 300), 1, ids.Next(now), now};
    store.Reserve(r, [&, user = r.user](Result<ReserveResult> res) {
      EXPECT_TRUE(res.has_value()) << res.error().ToString();
      if (res.has_value() && res->outcome == ReserveOutcome::kReserved) {
        ++units;
        std::lock_guard lock(mu);
        ++per_user[user];
      }
      if (++answered == kThreads * kCalls) all_done.set_value();
    });
  });
  ASSERT_EQ(all_done.get_future().wait_for(60s), std::future_status::ready);
  EXPECT_EQ(units.load(), 100);
  for (const auto& [user, n] : per_user) EXPECT_LE(n, 2) << "user " << user;
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 0);
  const std::uint64_t batches = connection->BatchesWritten() - batches_before;
  const std::uint64_t commands = connection->CommandsWritten() - commands_before;
  EXPECT_GE(commands, static_cast<std::uint64_t>(kThreads * kCalls));
  EXPECT_LT(batches, commands / 2) << "no pipelining: " << batches << " writes for " << commands;
  std::printf("race: %llu commands in %llu writes\n", static_cast<unsigned long long>(commands),
              static_cast<unsigned long long>(batches));
}

TEST_F(RedisStockStoreTest, CommandsSentWhileABatchIsOutGoOutTogetherInTheNextWrite) {
  RedisConnection::Options opts;
  opts.port = server_->port();
  opts.max_batches_in_flight = 1;
  OwnConnection own(opts);
  RedisConnection& conn = *own;
  auto call = [&conn](std::vector<std::string> argv) {
    std::promise<Result<RedisValue>> p;
    auto f = p.get_future();
    conn.Send(argv, [&p](Result<RedisValue> r) { p.set_value(std::move(r)); });
    return f.get();
  };
  ASSERT_TRUE(call({"PING"}).has_value());  // connected: no hand-shake batch below
  const std::uint64_t before = conn.BatchesWritten();
  // The server answers the BLPOP only after 300 ms; the 200 commands sent meanwhile wait
  // for that reply and then leave in one write, and are answered in order.
  std::promise<void> done;
  std::vector<std::string> replies;
  std::mutex mu;
  conn.Send({"BLPOP", "flashsale:test:never", "0.3"}, [](Result<RedisValue>) {});
  constexpr int kCommands = 200;
  for (int i = 0; i < kCommands; ++i) {
    conn.Send({"ECHO", std::to_string(i)}, [&, i](Result<RedisValue> r) {
      std::lock_guard lock(mu);
      replies.push_back(r.has_value() ? r->str : r.error().ToString());
      if (i == kCommands - 1) done.set_value();
    });
  }
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  std::lock_guard lock(mu);
  ASSERT_EQ(replies.size(), static_cast<std::size_t>(kCommands));
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(replies[i], std::to_string(i));
  EXPECT_EQ(conn.BatchesWritten() - before, 2u);
}

// Each I/O thread that attaches gets its own connection on its own event loop, and
// reservations made on that thread go through it (no hand-over to the shared one).
TEST_F(RedisStockStoreTest, ReservationsOnAnAttachedThreadUseThatThreadsConnection) {
  PutProduct(100, 100);
  RedisConnection::Options opts;
  opts.port = server_->port();
  for (auto& command : RedisStockStore::ScriptLoadCommands()) opts.on_connect.push_back(command);
  ThreadLocalRedis per_thread(opts);
  RedisStockStore store(*connection_, {.order_ttl_s = 60, .per_thread = &per_thread});
  EXPECT_EQ(per_thread.Current(), nullptr);  // this thread never attached
  constexpr int kThreads = 2, kCalls = 50;
  std::atomic<int> reserved{0};
  std::vector<std::uint64_t> own_commands(kThreads, 0);
  std::vector<std::thread> threads;
  const std::uint64_t shared_before = connection_->CommandsWritten();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      boost::asio::io_context io;
      per_thread.AttachThisThread(io);
      RedisConnection* mine = per_thread.Current();
      ASSERT_NE(mine, nullptr);
      OrderIdGenerator ids;
      int answered = 0;
      for (int i = 0; i < kCalls; ++i) {
        Reservation r{kPhone, static_cast<UserId>(t * 1000 + i), 1, ids.Next(Now()), Now()};
        store.Reserve(r, [&](Result<ReserveResult> res) {
          // Answered on this very thread, inside io.run().
          EXPECT_EQ(per_thread.Current(), mine);
          if (res.has_value() && res->outcome == ReserveOutcome::kReserved) ++reserved;
          if (++answered == kCalls) io.stop();
        });
      }
      io.run_for(10s);
      own_commands[t] = mine->CommandsWritten();
      per_thread.DetachThisThread();
      EXPECT_EQ(per_thread.Current(), nullptr);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(reserved.load(), kThreads * kCalls);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_GE(own_commands[t], static_cast<std::uint64_t>(kCalls)) << "thread " << t;
  }
  EXPECT_EQ(connection_->CommandsWritten(), shared_before);  // nothing through the shared one
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 100 - kThreads * kCalls);
}

TEST_F(RedisStockStoreTest, ReleaseRestoresUnitsAndIsIdempotent) {
  PutProduct(1, 1);
  ASSERT_EQ(OutcomeOf(SyncReserve(7, 1)), ReserveOutcome::kReserved);
  const Reservation held = last_;
  ASSERT_EQ(OutcomeOf(SyncReserve(8, 1)), ReserveOutcome::kSoldOut);
  // The hand-off was NotDelivered: give the unit back.
  Result<std::int64_t> epoch = SyncRelease(held);
  ASSERT_TRUE(epoch.has_value()) << epoch.error().ToString();
  EXPECT_EQ(*epoch, 1);
  Result<std::optional<StockSnapshot>> snap = store_->Get(kPhone);
  EXPECT_EQ((*snap)->remaining, 1);
  EXPECT_FALSE((*snap)->sold_out);
  Result<std::int64_t> again = SyncRelease(held);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, 1);
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 1);
  EXPECT_EQ(OutcomeOf(SyncReserve(7, 1)), ReserveOutcome::kReserved);  // user 7 may buy again
}

// A hand-off refused at once releases on the thread that answered the
// reservation: with a shared connection that is its io thread, the only one
// that can read the release's reply. Release() must not wait there.
TEST_F(RedisStockStoreTest, ReleaseFromTheConnectionsOwnThreadAnswersWithoutWaiting) {
  PutProduct(1, 1);
  Reservation r{kPhone, 7, 1, ids_.Next(Now()), Now()};
  std::promise<Result<std::int64_t>> released;
  store_->Reserve(r, [&](Result<ReserveResult> res) {
    ASSERT_TRUE(res.has_value() && res->outcome == ReserveOutcome::kReserved);
    store_->Release(r, [&](Result<std::int64_t> e) { released.set_value(std::move(e)); });
  });
  auto epoch = released.get_future();
  ASSERT_EQ(epoch.wait_for(5s), std::future_status::ready) << "the io thread waited for itself";
  Result<std::int64_t> e = epoch.get();
  ASSERT_TRUE(e.has_value()) << e.error().ToString();
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 1);
  EXPECT_EQ(OutcomeOf(SyncReserve(7, 1)), ReserveOutcome::kReserved);  // record released too
}

// Like Reserve(), Release() on an attached I/O thread goes through that
// thread's connection and is answered there (no hand-over, no wait).
TEST_F(RedisStockStoreTest, ReleaseOnAnAttachedThreadUsesThatThreadsConnection) {
  PutProduct(100, 1);
  RedisConnection::Options opts;
  opts.port = server_->port();
  for (auto& command : RedisStockStore::ScriptLoadCommands()) opts.on_connect.push_back(command);
  ThreadLocalRedis per_thread(opts);
  RedisStockStore store(*connection_, {.order_ttl_s = 60, .per_thread = &per_thread});
  const std::uint64_t shared_before = connection_->CommandsWritten();
  Result<std::int64_t> epoch = Status::Internal("not answered");
  std::thread io_thread([&] {
    boost::asio::io_context io;
    per_thread.AttachThisThread(io);
    RedisConnection* mine = per_thread.Current();
    Reservation r{kPhone, 7, 1, ids_.Next(Now()), Now()};
    store.Reserve(r, [&](Result<ReserveResult> res) {
      EXPECT_TRUE(res.has_value() && res->outcome == ReserveOutcome::kReserved);
      store.Release(r, [&](Result<std::int64_t> e) {
        EXPECT_EQ(per_thread.Current(), mine);  // answered on this very thread
        epoch = std::move(e);
        io.stop();
      });
    });
    io.run_for(10s);
    per_thread.DetachThisThread();
  });
  io_thread.join();
  ASSERT_TRUE(epoch.has_value()) << epoch.error().ToString();
  EXPECT_EQ(connection_->CommandsWritten(), shared_before);  // nothing through the shared one
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 100);
}

// A host name is looked up asynchronously (asio's resolver thread), not on
// the connection's strand: the lookup and its failure are answered like any
// other command. (A slow DNS server cannot be staged on loopback; this covers
// the asynchronous path: found, and not found.)
TEST_F(RedisStockStoreTest, HostNamesAreResolvedAsynchronously) {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  RedisConnection::Options by_name;
  by_name.host = "localhost";  // not numeric: goes through the resolver
  by_name.port = server_->port();
  RedisConnection::Options unknown = by_name;
  unknown.host = "flashsale-test.invalid";  // RFC 6761: never resolves
  RedisConnection found(io, by_name);
  RedisConnection not_found(io, unknown);
  std::thread io_thread([&] { io.run(); });
  std::promise<Result<RedisValue>> pong;
  std::promise<Result<RedisValue>> refused;
  found.Send({"PING"}, [&](Result<RedisValue> r) { pong.set_value(std::move(r)); });
  not_found.Send({"PING"}, [&](Result<RedisValue> r) { refused.set_value(std::move(r)); });
  auto pong_f = pong.get_future();
  auto refused_f = refused.get_future();
  const bool answered = pong_f.wait_for(5s) == std::future_status::ready &&
                        refused_f.wait_for(5s) == std::future_status::ready;
  work.reset();
  io.stop();
  io_thread.join();  // before the connections go (their REQUIRES)
  ASSERT_TRUE(answered);
  Result<RedisValue> p = pong_f.get();
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->str, "PONG");
  Result<RedisValue> r = refused_f.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Status::Code::kUnavailable) << r.error().ToString();
  EXPECT_NE(r.error().ToString().find("cannot resolve"), std::string::npos) << r.error().ToString();
}

TEST_F(RedisStockStoreTest, ReusedReleasedOrderIdIsInternalNotAnOutcome) {
  PutProduct(5, 1);
  ASSERT_EQ(OutcomeOf(SyncReserve(7, 1)), ReserveOutcome::kReserved);
  const Reservation held = last_;
  ASSERT_TRUE(SyncRelease(held).has_value());
  std::promise<Result<ReserveResult>> p;
  store_->Reserve(held, [&p](Result<ReserveResult> r) { p.set_value(std::move(r)); });
  Result<ReserveResult> r = p.get_future().get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Status::Code::kInternal);
}

TEST_F(RedisStockStoreTest, ReloadsScriptsAfterScriptFlush) {
  PutProduct(10, 5);
  ASSERT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kReserved);
  server_->Cli("SCRIPT FLUSH");
  EXPECT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kReserved);
  server_->Cli("SCRIPT FLUSH");
  EXPECT_TRUE(SyncRelease(last_).has_value());
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 9);
}

TEST_F(RedisStockStoreTest, ServerDownIsANonOkStatusThenRecovers) {
  PutProduct(10, 5);
  ASSERT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kReserved);
  server_->Stop();
  const auto start = std::chrono::steady_clock::now();
  Result<ReserveResult> down = SyncReserve(1, 1);
  EXPECT_LE(std::chrono::steady_clock::now() - start, 1500ms);
  ASSERT_FALSE(down.has_value());
  EXPECT_TRUE(down.error().IsRetryable()) << down.error().ToString();

  server_->Start();  // same port, empty data set
  ASSERT_FALSE(HasFatalFailure());
  // The reconnect waits out the backoff; retry for a while.
  Result<ReserveResult> up = Status::Unavailable("not tried");
  for (int i = 0; i < 100 && !up.has_value(); ++i) {
    up = SyncReserve(1, 1);
    if (!up.has_value()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(up.has_value()) << up.error().ToString();
  EXPECT_EQ(up->outcome, ReserveOutcome::kUnknownProduct);  // fresh server: no data
  PutProduct(10, 5);
  EXPECT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kReserved);  // NOSCRIPT path too
}

TEST_F(RedisStockStoreTest, StalledServerTimesOutAsUnknown) {
  PutProduct(10, 5);
  ASSERT_EQ(OutcomeOf(SyncReserve(1, 1)), ReserveOutcome::kReserved);
  server_->Pause();
  const auto start = std::chrono::steady_clock::now();
  Result<ReserveResult> stalled = SyncReserve(1, 1);
  const auto waited = std::chrono::steady_clock::now() - start;
  server_->Resume();
  ASSERT_FALSE(stalled.has_value());
  EXPECT_TRUE(stalled.error().IsUnknown()) << stalled.error().ToString();  // may have run
  EXPECT_GE(waited, 900ms);
  EXPECT_LE(waited, 1500ms);
  Result<ReserveResult> again = Status::Unavailable("not tried");
  for (int i = 0; i < 100 && !again.has_value(); ++i) {
    again = SyncReserve(2, 1);
    if (!again.has_value()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_EQ(again->outcome, ReserveOutcome::kReserved);
}

// ------------------------------------------------------ distributed-mode extras ---

TEST_F(RedisStockStoreTest, ListAndProductCountFollowPutAndSeed) {
  EXPECT_EQ(*store_->ProductCount(), 0);
  PutProduct(5, 1);
  // Seed: creates what is missing (with what the database says was sold), keeps the rest.
  std::vector<Product> products = {{.id = kPhone, .price = 1, .stock = 99, .limit_per_user = 1},
                                   {.id = 7,
                                    .price = 250,
                                    .stock = 10,
                                    .limit_per_user = 2,
                                    .version = 41,
                                    .payment_window_s = 300}};
  OrderIdGenerator ids;
  const OrderId latest = ids.Next(Now());
  std::vector<SoldUnits> sold = {{7, 42, 2, latest}, {7, 43, 1, ids.Next(Now())}};
  Result<std::int64_t> created = store_->Seed(products, sold);
  ASSERT_TRUE(created) << created.error().ToString();
  EXPECT_EQ(*created, 1);
  EXPECT_EQ(*store_->ProductCount(), 2);
  Result<std::vector<StockSnapshot>> all = store_->List(0, 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].product.id, kPhone);
  EXPECT_EQ((*all)[0].product.stock, 5);  // kept, not overwritten by the seed
  EXPECT_EQ((*all)[1].product.id, 7);
  EXPECT_EQ((*all)[1].remaining, 7);  // 10 - 3 sold
  // The database row's version came along: the next admin change is numbered above it.
  EXPECT_EQ((*all)[1].product.version, 41);
  EXPECT_EQ((*all)[1].product.payment_window_s, 300);
  EXPECT_EQ((*all)[0].product.payment_window_s, std::nullopt);
  Product restocked;
  ASSERT_TRUE(store_->Restock(7, 1, [&](const Product& q) {
    restocked = q;
    return Status::Ok();
  }));
  EXPECT_EQ(restocked.version, 42);
  EXPECT_EQ(restocked.stock, 11);
  EXPECT_EQ(restocked.payment_window_s, 300);  // the persisted row keeps the window
  EXPECT_EQ(store_->List(1, 10)->size(), 1u);
  EXPECT_TRUE(store_->List(5, 10)->empty());
  // The buyer records came along: user 42 holds 2 of a limit of 2.
  Reservation r{7, 42, 1, ids.Next(Now()), Now()};
  std::promise<Result<ReserveResult>> p;
  store_->Reserve(r, [&p](Result<ReserveResult> res) { p.set_value(std::move(res)); });
  Result<ReserveResult> over = p.get_future().get();
  ASSERT_EQ(OutcomeOf(over), ReserveOutcome::kLimitExceeded);
  EXPECT_TRUE(over->latest_order == latest);
}

// Rebuilding Redis from a database that has sold a lot: far more buyer records than one
// command, or one wait within the 1 s timeout, may carry (it used to time out at start-up).
TEST_F(RedisStockStoreTest, SeedsHundredsOfThousandsOfBuyersInWavesAndStagedChunks) {
  constexpr int kBig = 3, kBuyersPerBig = 60'000, kSmall = 2'000;
  std::vector<Product> products;
  std::vector<SoldUnits> sold;
  OrderIdGenerator ids;
  for (int i = 0; i < kBig; ++i) {
    const ProductId id = 100 + i;
    products.push_back({id, 500, 1'000'000, {}, {}, 3});
    for (int u = 0; u < kBuyersPerBig; ++u) sold.push_back({id, u, 1 + u % 3, ids.Next(Now())});
  }
  for (int i = 0; i < kSmall; ++i) {
    const ProductId id = 10'000 + i;
    products.push_back({id, 100, 50, {}, {}, 1});
    for (int u = 0; u < 20; ++u) sold.push_back({id, u, 1, ids.Next(Now())});
  }
  // A shorter timeout than the server's 1 s: all of this in one wave takes Redis ~0.6 s.
  RedisConnection::Options opts;
  opts.port = server_->port();
  opts.timeout = 400ms;
  OwnConnection seeding(opts);
  RedisStockStore seeder(*seeding);
  const auto start = std::chrono::steady_clock::now();
  Result<std::int64_t> created = seeder.Seed(products, sold);
  ASSERT_TRUE(created) << created.error().ToString();
  EXPECT_EQ(*created, kBig + kSmall);
  std::printf("seeded %zu buyer records of %zu products in %lld ms\n", sold.size(), products.size(),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - start)
                                         .count()));
  // Every buyer record is there (two fields each), no staging hash is left behind.
  std::promise<Result<RedisValue>> hlen;
  connection_->Send({"HLEN", "item:{101}:buyers"},
                    [&](Result<RedisValue> v) { hlen.set_value(std::move(v)); });
  Result<RedisValue> n = hlen.get_future().get();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->integer, 2 * kBuyersPerBig);
  std::promise<Result<RedisValue>> scan;
  connection_->Send({"KEYS", "*:seed:*"},
                    [&](Result<RedisValue> v) { scan.set_value(std::move(v)); });
  Result<RedisValue> staging = scan.get_future().get();
  ASSERT_TRUE(staging.has_value());
  EXPECT_TRUE(staging->elements.empty()) << staging->elements.size() << " staging hashes left";
  // Remaining = stock - units sold (1+2+3 per 3 buyers), and the limits hold.
  Result<std::optional<StockSnapshot>> big = store_->Get(102);
  ASSERT_TRUE(big && big->has_value());
  EXPECT_EQ((*big)->remaining, 1'000'000 - 2 * kBuyersPerBig);
  Result<std::optional<StockSnapshot>> small = store_->Get(10'000 + kSmall - 1);
  ASSERT_TRUE(small && small->has_value());
  EXPECT_EQ((*small)->remaining, 30);
  EXPECT_EQ(OutcomeOf(SyncReserve(59'999, 1, 102)), ReserveOutcome::kLimitExceeded);  // holds 3
  EXPECT_EQ(OutcomeOf(SyncReserve(59'998, 1, 102)), ReserveOutcome::kReserved);       // holds 2
  EXPECT_EQ(OutcomeOf(SyncReserve(19, 1, 10'000)), ReserveOutcome::kLimitExceeded);
  // Seeding again keeps everything (and leaves no staging hash either).
  Result<std::int64_t> again = seeder.Seed(products, sold);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(*again, 0);
  std::promise<Result<RedisValue>> scan2;
  connection_->Send({"KEYS", "*:seed:*"},
                    [&](Result<RedisValue> v) { scan2.set_value(std::move(v)); });
  EXPECT_TRUE(scan2.get_future().get()->elements.empty());
}

TEST_F(RedisStockStoreTest, InFlightOrderIsReadableUntilItExpires) {
  PutProduct(5, 1);
  ASSERT_EQ(OutcomeOf(SyncReserve(9, 1)), ReserveOutcome::kReserved);
  Result<std::optional<Order>> order = store_->FindInFlightOrder(last_.order);
  ASSERT_TRUE(order && order->has_value());
  EXPECT_EQ((*order)->status, OrderStatus::kPending);
  EXPECT_EQ((*order)->user, 9);
  EXPECT_EQ((*order)->product, kPhone);
  EXPECT_EQ((*order)->quantity, 1);
  EXPECT_EQ((*order)->price, 1999);
  EXPECT_EQ((*order)->created_at, last_.now);
  EXPECT_FALSE(store_->FindInFlightOrder(ids_.Next(Now()))->has_value());
  EXPECT_TRUE(store_->Ping().ok());
}

// Order lifecycle: the reservation step fixes pay_by = now + the product's
// payment window, the marker carries it, and a retried reservation answers it again.
TEST_F(RedisStockStoreTest, ReservationWithAPaymentWindowCarriesPayBy) {
  PutWindowed(kPhone, 5, 90);
  Result<std::optional<StockSnapshot>> snap = store_->Get(kPhone);
  ASSERT_TRUE(snap && snap->has_value());
  EXPECT_EQ((*snap)->product.payment_window_s, 90);
  Result<ReserveResult> r = SyncReserve(3, 2);
  ASSERT_EQ(OutcomeOf(r), ReserveOutcome::kReserved);
  EXPECT_EQ(r->pay_by, last_.now + 90'000);
  const Reservation held = last_;
  Result<std::optional<Order>> order = store_->FindInFlightOrder(held.order);
  ASSERT_TRUE(order && order->has_value());
  EXPECT_EQ((*order)->pay_by, held.now + 90'000);
  EXPECT_EQ((*order)->quantity, 2);
  // The marker outlives the window plus order_ttl_s (release_stock.lua's idempotency).
  const std::int64_t ttl = Command({"TTL", "order:" + held.order.str()}).integer;
  EXPECT_GT(ttl, RedisStockStore::Options{}.order_ttl_s);
  EXPECT_LE(ttl, RedisStockStore::Options{}.order_ttl_s + 90);
  // A retry of the same reservation, later and after the window changed: the first answer.
  PutWindowed(kPhone, 5, 10);
  Reservation retry = held;
  retry.now += 5'000;
  std::promise<Result<ReserveResult>> p;
  store_->Reserve(retry, [&p](Result<ReserveResult> res) { p.set_value(std::move(res)); });
  Result<ReserveResult> again = p.get_future().get();
  ASSERT_EQ(OutcomeOf(again), ReserveOutcome::kReserved);
  EXPECT_EQ(again->pay_by, held.now + 90'000);
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 3);
  // No window: no pay_by.
  PutWindowed(kPhone, 5, std::nullopt);
  Result<ReserveResult> plain = SyncReserve(4, 1);
  ASSERT_EQ(OutcomeOf(plain), ReserveOutcome::kReserved);
  EXPECT_EQ(plain->pay_by, std::nullopt);
  EXPECT_EQ((*store_->FindInFlightOrder(last_.order))->pay_by, std::nullopt);
  EXPECT_EQ((*store_->Get(kPhone))->product.payment_window_s, std::nullopt);
}

TEST_F(RedisStockStoreTest, PaymentWindowOutOfRangeIsInvalidAndChangesNothing) {
  PutWindowed(kPhone, 5, 60);
  for (std::int64_t bad :
       {std::int64_t{0}, std::int64_t{-1}, RedisStockStore::kMaxPaymentWindowS + 1}) {
    Product p{kPhone, 1999, 9, {}, {}, 5};
    p.payment_window_s = bad;
    Result<PutResult> r = store_->Put(p, kNoPersist);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), Status::Code::kInvalid);
  }
  EXPECT_EQ((*store_->Get(kPhone))->product.stock, 5);
  EXPECT_EQ((*store_->Get(kPhone))->product.payment_window_s, 60);
}

// The waiting room travels with the product: Put, Get/List, the row persisted
// by a restock, and Seed from the database; out-of-range values are refused.
TEST_F(RedisStockStoreTest, WaitingRoomIsPutReadRestockedAndSeeded) {
  const WaitingRoom room{.admit_per_s = 50, .pass_ttl_s = 120};
  Product p{.id = kPhone, .price = 1999, .stock = 5, .limit_per_user = 1, .waiting_room = room};
  Product persisted;
  auto keep = [&](const Product& q) {
    persisted = q;
    return Status::Ok();
  };
  ASSERT_TRUE(store_->Put(p, keep));
  EXPECT_EQ(persisted.waiting_room, room);
  EXPECT_EQ((*store_->Get(kPhone))->product.waiting_room, room);
  EXPECT_EQ(store_->List(0, 10)->front().product.waiting_room, room);
  ASSERT_TRUE(store_->Restock(kPhone, 1, keep));
  EXPECT_EQ(persisted.waiting_room, room);  // the persisted row keeps the waiting room
  // Out of range: refused before Redis, nothing changed.
  for (const WaitingRoom bad : {WaitingRoom{0, 5}, WaitingRoom{kMaxAdmitPerS + 1, 5},
                                WaitingRoom{5, 0}, WaitingRoom{5, kMaxPassTtlS + 1}}) {
    Product q = p;
    q.stock = 9;
    q.waiting_room = bad;
    Result<PutResult> r = store_->Put(q, kNoPersist);
    ASSERT_FALSE(r.has_value()) << bad.admit_per_s << " " << bad.pass_ttl_s;
    EXPECT_EQ(r.error().code(), Status::Code::kInvalid);
  }
  EXPECT_EQ((*store_->Get(kPhone))->product.stock, 6);
  // A PUT without one clears it.
  p.waiting_room.reset();
  ASSERT_TRUE(store_->Put(p, keep));
  EXPECT_EQ((*store_->Get(kPhone))->product.waiting_room, std::nullopt);
  ASSERT_TRUE(store_->Restock(kPhone, 1, keep));
  EXPECT_EQ(persisted.waiting_room, std::nullopt);
  // Seed from the database rows.
  const WaitingRoom seeded{.admit_per_s = kMaxAdmitPerS, .pass_ttl_s = kMaxPassTtlS};
  std::vector<Product> rows = {
      {.id = 8, .price = 1, .stock = 3, .limit_per_user = 1, .version = 4, .waiting_room = seeded},
      {.id = 9, .price = 1, .stock = 3, .limit_per_user = 1, .version = 4}};
  Result<std::int64_t> created = store_->Seed(rows, {});
  ASSERT_TRUE(created) << created.error().ToString();
  EXPECT_EQ(*created, 2);
  EXPECT_EQ((*store_->Get(8))->product.waiting_room, seeded);
  EXPECT_EQ((*store_->Get(9))->product.waiting_room, std::nullopt);
}

// Markers written before the payment step have 7 fields: still read as in-flight
// orders (no pay_by), still released once.
TEST_F(RedisStockStoreTest, SevenFieldMarkersAreStillReadAndReleased) {
  PutWindowed(kPhone, 5, 60);
  ASSERT_EQ(OutcomeOf(SyncReserve(3, 1)), ReserveOutcome::kReserved);
  const Reservation held = last_;
  const std::string key = "order:" + held.order.str();
  Command({"SET", key, "R|3|" + std::to_string(kPhone) + "|1|1999|0|" + std::to_string(held.now),
           "EX", "600"});
  Result<std::optional<Order>> order = store_->FindInFlightOrder(held.order);
  ASSERT_TRUE(order && order->has_value());
  EXPECT_EQ((*order)->user, 3);
  EXPECT_EQ((*order)->created_at, held.now);
  EXPECT_EQ((*order)->pay_by, std::nullopt);
  ASSERT_TRUE(SyncRelease(held).has_value());
  ASSERT_TRUE(SyncRelease(held).has_value());
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 5);
  EXPECT_TRUE(InFlightIds(kPhone).empty());
}

// The closer may release an expired order's units again after a crash: the
// units come back once.
TEST_F(RedisStockStoreTest, ReleasingAWindowedReservationTwiceGivesTheUnitsBackOnce) {
  PutWindowed(kPhone, 2, 30);
  ASSERT_EQ(OutcomeOf(SyncReserve(3, 2)), ReserveOutcome::kReserved);
  const Reservation held = last_;
  EXPECT_EQ(InFlightIds(kPhone), std::vector<std::string>{held.order.str()});
  Result<std::int64_t> first = SyncRelease(held);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  Result<std::int64_t> second = SyncRelease(held);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  EXPECT_EQ(*second, *first);  // ALREADY_RELEASED: the epoch did not move
  Result<std::optional<StockSnapshot>> snap = store_->Get(kPhone);
  EXPECT_EQ((*snap)->remaining, 2);
  EXPECT_FALSE((*snap)->sold_out);
  EXPECT_TRUE(InFlightIds(kPhone).empty());
  // The buyer may buy both units again, and no more.
  EXPECT_EQ(OutcomeOf(SyncReserve(3, 2)), ReserveOutcome::kReserved);
  EXPECT_EQ(OutcomeOf(SyncReserve(4, 1)), ReserveOutcome::kSoldOut);
}

TEST_F(RedisStockStoreTest, ForgetLandedTakesOrdersOutOfTheirProductsIndexes) {
  constexpr ProductId kOther = 2;
  PutWindowed(kPhone, 10, 60);
  PutWindowed(kOther, 10, std::nullopt);
  std::vector<Order> landed;
  std::vector<std::string> kept;
  for (int i = 0; i < 6; ++i) {
    const ProductId product = i % 2 == 0 ? kPhone : kOther;
    ASSERT_EQ(OutcomeOf(SyncReserve(100 + i, 1, product)), ReserveOutcome::kReserved);
    Order o;
    o.id = last_.order;
    o.product = product;
    if (i < 4) {
      landed.push_back(o);
    } else {
      kept.push_back(o.id.str());
    }
  }
  EXPECT_EQ(InFlightIds(kPhone).size(), 3u);
  EXPECT_EQ(InFlightIds(kOther).size(), 3u);
  ASSERT_TRUE(store_->ForgetLanded(landed).ok());
  EXPECT_EQ(InFlightIds(kPhone), std::vector<std::string>{kept[0]});
  EXPECT_EQ(InFlightIds(kOther), std::vector<std::string>{kept[1]});
  // Idempotent, and nothing to do is fine.
  EXPECT_TRUE(store_->ForgetLanded(landed).ok());
  EXPECT_TRUE(store_->ForgetLanded({}).ok());
  EXPECT_EQ(InFlightIds(kPhone).size(), 1u);
  // Landed orders keep their units (forgetting is not releasing).
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 7);
  // A consumer batch larger than one ZREM carries (5,000): every one forgotten.
  std::vector<Order> batch(12'001);
  std::vector<std::string> zadd{"ZADD", "item:{3}:inflight"};
  for (Order& o : batch) {
    o.id = ids_.Next(Now());
    o.product = 3;
    zadd.push_back(std::to_string(Now()));
    zadd.push_back(o.id.str());
  }
  EXPECT_EQ(Command(std::move(zadd)).integer, 12'001);
  ASSERT_TRUE(store_->ForgetLanded(std::span<const Order>(batch).first(12'000)).ok());
  EXPECT_EQ(InFlightIds(3), std::vector<std::string>{batch.back().id.str()});
}

TEST_F(RedisStockStoreTest, StaleInFlightReadsMarkersAndDropsDeadEntries) {
  PutWindowed(kPhone, 10, 120);
  std::vector<Reservation> held;
  const UnixMillis t0 = Now() - 60'000;
  for (int i = 0; i < 5; ++i) {
    Reservation r{kPhone, 200 + i, 1 + i % 2, ids_.Next(t0 + i * 1000), t0 + i * 1000};
    std::promise<Result<ReserveResult>> p;
    store_->Reserve(r, [&p](Result<ReserveResult> res) { p.set_value(std::move(res)); });
    ASSERT_EQ(OutcomeOf(p.get_future().get()), ReserveOutcome::kReserved);
    held.push_back(r);
  }
  // Created strictly before t0 + 3000: the first three, oldest first, as their markers say.
  Result<std::vector<Order>> stale = store_->StaleInFlight(kPhone, t0 + 3000, 100);
  ASSERT_TRUE(stale.has_value()) << stale.error().ToString();
  ASSERT_EQ(stale->size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const Order& o = (*stale)[i];
    EXPECT_TRUE(o.id == held[i].order);
    EXPECT_EQ(o.product, kPhone);
    EXPECT_EQ(o.user, held[i].user);
    EXPECT_EQ(o.quantity, held[i].quantity);
    EXPECT_EQ(o.price, 1999);
    EXPECT_EQ(o.created_at, held[i].now);
    EXPECT_EQ(o.pay_by, held[i].now + 120'000);
    EXPECT_EQ(o.status, OrderStatus::kPending);
  }
  // At most `max`.
  ASSERT_EQ(store_->StaleInFlight(kPhone, t0 + 3000, 2)->size(), 2u);
  // A marker that expired and one released behind the index's back: dropped from the
  // index and skipped; the live ones still come.
  Command({"DEL", "order:" + held[0].order.str()});
  Command({"SET", "order:" + held[1].order.str(), "X|201|1|2|1999|0|1|", "KEEPTTL"});
  stale = store_->StaleInFlight(kPhone, t0 + 10'000, 100);
  ASSERT_TRUE(stale.has_value());
  ASSERT_EQ(stale->size(), 3u);
  EXPECT_TRUE((*stale)[0].id == held[2].order);
  EXPECT_EQ(InFlightIds(kPhone), (std::vector<std::string>{held[2].order.str(), held[3].order.str(),
                                                           held[4].order.str()}));
  // Released through the store: out of the index at once.
  ASSERT_TRUE(SyncRelease(held[2]).has_value());
  EXPECT_EQ(store_->StaleInFlight(kPhone, t0 + 10'000, 100)->size(), 2u);
  EXPECT_TRUE(store_->StaleInFlight(kPhone, t0, 100)->empty());
  EXPECT_TRUE(store_->StaleInFlight(99, t0 + 10'000, 100)->empty());
  // Every product, for the closer's sweep.
  EXPECT_EQ(*store_->ProductIds(), std::vector<ProductId>{kPhone});
}

TEST_F(RedisStockStoreTest, ConnectHandshakeSelectsTheDatabaseAndLoadsScripts) {
  // Connections of their own on an io_context of their own, stopped before
  // they are destroyed (RedisConnection's contract).
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread io_thread([&io] { io.run(); });
  {
    RedisConnection::Options opts = OptionsFor({"127.0.0.1", server_->port(), "", 3});
    for (auto& c : RedisStockStore::ScriptLoadCommands()) opts.on_connect.push_back(c);
    RedisPool pool(io, opts, 3);
    RedisStockStore other(pool);
    Product p{kPhone, 5, 2, {}, {}, 1};
    EXPECT_TRUE(other.Put(p, kNoPersist));  // EXPECT: the io thread must be stopped below
    EXPECT_EQ(*other.ProductCount(), 1);
    EXPECT_EQ(*store_->ProductCount(), 0);  // db 0 untouched
    // A wrong password fails the connection with the server's reason.
    RedisConnection refused(io, OptionsFor({"127.0.0.1", server_->port(), "nope", 0}));
    RedisStockStore denied(refused);
    Status ping = denied.Ping();
    EXPECT_FALSE(ping.ok());
    EXPECT_NE(ping.message().find("AUTH"), std::string::npos) << ping.ToString();
    work.reset();
    io.stop();
    io_thread.join();
  }
}

TEST(RedisUrl, ParsesTheSeedsForms) {
  Result<RedisAddress> a = ParseRedisUrl("redis://127.0.0.1:16379/0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 16379);
  EXPECT_EQ(a->db, 0);
  Result<RedisAddress> b = ParseRedisUrl("redis://:s3cret@redis:6380/2");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "redis");
  EXPECT_EQ(b->password, "s3cret");
  EXPECT_EQ(b->port, 6380);
  EXPECT_EQ(b->db, 2);
  Result<RedisAddress> c = ParseRedisUrl("redis://localhost");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_EQ(c->port, 6379);
  EXPECT_FALSE(ParseRedisUrl("http://x"));
  EXPECT_FALSE(ParseRedisUrl("redis://h:0/0"));
  EXPECT_FALSE(ParseRedisUrl("redis://h:99999"));
  EXPECT_FALSE(ParseRedisUrl("redis://h:1/x"));
}

// RedisIdempotencyStore: the first claim owns the key; racing claims (as from
// two instances) wait for its answer; a refused answer frees the key.
TEST_F(RedisStockStoreTest, IdempotencyKeysAreSharedAndRacingRetriesWait) {
  RedisIdempotencyStore keys(*connection_, io_, {60'000, 5'000, 2});
  const PurchaseFingerprint fp{1, kPhone, 1};
  auto claim = [&](std::string_view key, const PurchaseFingerprint& f) {
    auto p = std::make_shared<std::promise<IdempotencyStore::ClaimResult>>();
    keys.Claim(key, f, ids_.Next(Now()),
               [p](const IdempotencyStore::ClaimResult& r) { p->set_value(r); });
    return p->get_future();
  };
  EXPECT_EQ(claim("k1", fp).get().state, IdempotencyStore::ClaimState::kFirst);
  auto waiting = claim("k1", fp);  // in flight: waits
  EXPECT_EQ(waiting.wait_for(50ms), std::future_status::timeout);
  EXPECT_EQ(claim("k1", {2, kPhone, 1}).get().state, IdempotencyStore::ClaimState::kMismatch);
  PurchaseReply accepted;
  accepted.outcome = PurchaseOutcome::kAccepted;
  accepted.order_id = ids_.Next(Now());
  keys.Finish("k1", accepted, true);
  IdempotencyStore::ClaimResult replay = waiting.get();
  EXPECT_EQ(replay.state, IdempotencyStore::ClaimState::kReplay);
  EXPECT_TRUE(replay.reply.status.ok());
  EXPECT_EQ(replay.reply.outcome, PurchaseOutcome::kAccepted);
  EXPECT_TRUE(replay.reply.order_id == accepted.order_id);
  // A refused (503) answer is not remembered: the next retry owns the key again.
  EXPECT_EQ(claim("k2", fp).get().state, IdempotencyStore::ClaimState::kFirst);
  PurchaseReply refused;
  refused.status = Status::NotDelivered("broker down");
  keys.Finish("k2", refused, false);
  EXPECT_EQ(claim("k2", fp).get().state, IdempotencyStore::ClaimState::kFirst);
  // UNKNOWN is final and keeps its order id.
  PurchaseReply unknown;
  unknown.status = Status::Unknown("possibly persisted");
  unknown.outcome = PurchaseOutcome::kAccepted;
  unknown.order_id = ids_.Next(Now());
  keys.Finish("k2", unknown, true);
  IdempotencyStore::ClaimResult u = claim("k2", fp).get();
  EXPECT_TRUE(u.reply.status.IsUnknown());
  EXPECT_TRUE(u.reply.order_id == unknown.order_id);
  // 16 racing claims of a fresh key: exactly one owner.
  std::atomic<int> owners{0};
  std::vector<std::future<IdempotencyStore::ClaimResult>> racing;
  for (int i = 0; i < 16; ++i) racing.push_back(claim("k3", fp));
  std::this_thread::sleep_for(100ms);
  for (auto& f : racing) {
    if (f.wait_for(0ms) == std::future_status::ready &&
        f.get().state == IdempotencyStore::ClaimState::kFirst) {
      ++owners;
    }
  }
  EXPECT_EQ(owners.load(), 1);
  keys.Finish("k3", accepted, true);
  // The waiters get the owner's answer (and stop polling before `keys` goes).
  for (auto& f : racing) {
    if (!f.valid()) continue;
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(f.get().state, IdempotencyStore::ClaimState::kReplay);
  }
}

// The Idempotency-Key scripts go by EVALSHA with the SHA1 CMake computed of the
// compiled-in source: it must be the name Redis gives that source (else every
// call would pay a NOSCRIPT and an EVAL). After SCRIPT FLUSH (as after a
// restart) the store falls back to EVAL once and the script is cached again.
TEST_F(RedisStockStoreTest, IdempotencyScriptsRunByShaAndSurviveScriptFlush) {
  RedisIdempotencyStore keys(*connection_, io_, {60'000, 5'000, 2});
  const PurchaseFingerprint fp{1, kPhone, 1};
  auto command = [&](std::vector<std::string> argv) {
    std::promise<Result<RedisValue>> reply;
    connection_->Send(argv, [&](Result<RedisValue> v) { reply.set_value(std::move(v)); });
    return reply.get_future().get();
  };
  auto claim = [&](std::string_view key) {
    auto p = std::make_shared<std::promise<IdempotencyStore::ClaimResult>>();
    keys.Claim(key, fp, ids_.Next(Now()),
               [p](const IdempotencyStore::ClaimResult& r) { p->set_value(r); });
    return p->get_future().get();
  };
  auto cached = [&](std::string_view sha1) {
    Result<RedisValue> exists = command({"SCRIPT", "EXISTS", std::string(sha1)});
    return exists.has_value() && exists->elements.size() == 1 && exists->elements[0].integer == 1;
  };
  for (std::string_view source :
       {ClaimIdempotencyKeyLua(), TakeOverIdempotencyKeyLua(), FinishIdempotencyKeyLua()}) {
    Result<RedisValue> loaded = command({"SCRIPT", "LOAD", std::string(source)});
    ASSERT_TRUE(loaded.has_value());
    EXPECT_TRUE(loaded->str == ClaimIdempotencyKeyLuaSha1() ||
                loaded->str == TakeOverIdempotencyKeyLuaSha1() ||
                loaded->str == FinishIdempotencyKeyLuaSha1())
        << loaded->str;
  }
  ASSERT_TRUE(command({"SCRIPT", "FLUSH"}).has_value());
  ASSERT_FALSE(cached(ClaimIdempotencyKeyLuaSha1()));
  EXPECT_EQ(claim("flushed").state, IdempotencyStore::ClaimState::kFirst);
  EXPECT_TRUE(cached(ClaimIdempotencyKeyLuaSha1()));  // the EVAL fallback cached it
  PurchaseReply sold_out;
  sold_out.outcome = PurchaseOutcome::kSoldOut;
  keys.Finish("flushed", sold_out, true);
  IdempotencyStore::ClaimResult replay = claim("flushed");  // polls until the Finish landed
  EXPECT_EQ(replay.state, IdempotencyStore::ClaimState::kReplay);
  EXPECT_EQ(replay.reply.outcome, PurchaseOutcome::kSoldOut);
  EXPECT_TRUE(cached(FinishIdempotencyKeyLuaSha1()));
}

// ------------------------------------------------------------- waiting room ---

// A product with a waiting room, as the admin API writes it: the product, then
// its wr_* fields in the meta hash (written here with HSET directly).
class WaitingRoomTest : public RedisStockStoreTest {
 protected:
  static constexpr UnixMillis kT = 1'800'000'000'000;  // the scripts take `now` from the caller

  void SetUp() override {
    RedisStockStoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    room_ = std::make_unique<RedisWaitingRoom>(*connection_);
  }
  void TearDown() override {
    room_.reset();
    RedisStockStoreTest::TearDown();
  }
  void PutRoom(ProductId id, std::int64_t stock, std::int64_t admit_per_s,
               std::optional<UnixMillis> starts_at = {}) {
    Product p{id, 1999, stock, starts_at, {}, /*limit_per_user=*/1};
    ASSERT_TRUE(store_->Put(p, kNoPersist).has_value());
    Command({"HSET", keys::Meta(id), "wr_admit_per_s", std::to_string(admit_per_s), "wr_pass_ttl_s",
             "60"});
  }
  WaitingRoomStore::Joined Join(ProductId id, UserId user, UnixMillis now,
                                std::string address = "a", std::int64_t max_places = 0) {
    Result<WaitingRoomStore::Joined> j = room_->Join(id, user, address, max_places, now);
    EXPECT_TRUE(j.has_value()) << j.error().ToString();
    return j.has_value() ? *j : WaitingRoomStore::Joined{};
  }
  QueueState Advance(ProductId id, UnixMillis now) {
    Result<std::optional<QueueState>> s = room_->Advance(id, now);
    EXPECT_TRUE(s.has_value() && s->has_value()) << (s ? "no waiting room" : s.error().ToString());
    return s.has_value() && s->has_value() ? **s : QueueState{};
  }

  std::unique_ptr<RedisWaitingRoom> room_;
};

using JoinOutcome = WaitingRoomStore::JoinOutcome;

TEST_F(RedisStockStoreTest, WaitingRoomProductRefusesReservationsWithoutAVerifiedPass) {
  PutProduct(5, 2);
  Command({"HSET", keys::Meta(kPhone), "wr_admit_per_s", "10", "wr_pass_ttl_s", "60"});
  EXPECT_EQ(OutcomeOf(SyncReserve(1, 1, kPhone, /*pass_verified=*/false)),
            ReserveOutcome::kPassRequired);
  // Nothing reserved, nothing written: no units, no buyer record, no marker, no index entry.
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 5);
  EXPECT_EQ(Command({"EXISTS", keys::Buyers(kPhone), keys::Order(last_.order)}).integer, 0);
  EXPECT_TRUE(InFlightIds(kPhone).empty());
  EXPECT_EQ(OutcomeOf(SyncReserve(1, 1, kPhone, /*pass_verified=*/true)),
            ReserveOutcome::kReserved);
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 4);

  // Before the sale window, L2 and stock: a sold-out product without a pass is
  // told PASS_REQUIRED, and its L2 flag is not set by the refusal.
  Command({"SET", keys::Stock(kPhone), "0"});
  EXPECT_EQ(OutcomeOf(SyncReserve(2, 1)), ReserveOutcome::kPassRequired);
  EXPECT_EQ(Command({"EXISTS", keys::SoldOut(kPhone)}).integer, 0);
  EXPECT_EQ(OutcomeOf(SyncReserve(2, 1, kPhone, true)), ReserveOutcome::kSoldOut);

  // Waiting room removed ("" = none): the flag is ignored.
  Command({"SET", keys::Stock(kPhone), "3"});
  Command({"DEL", keys::SoldOut(kPhone)});  // set by the SOLD_OUT answer above
  Command({"HSET", keys::Meta(kPhone), "wr_admit_per_s", ""});
  EXPECT_EQ(OutcomeOf(SyncReserve(3, 1, kPhone, false)), ReserveOutcome::kReserved);
  EXPECT_EQ(OutcomeOf(SyncReserve(4, 1, kPhone, true)), ReserveOutcome::kReserved);
}

TEST_F(WaitingRoomTest, UnknownProductAndNoWaitingRoom) {
  EXPECT_EQ(Join(kPhone, 1, kT).outcome, JoinOutcome::kUnknownProduct);
  Result<std::optional<QueueState>> none = room_->Advance(kPhone, kT);
  ASSERT_TRUE(none.has_value()) << none.error().ToString();
  EXPECT_FALSE(none->has_value());
  PutProduct(5, 1);
  EXPECT_EQ(Join(kPhone, 1, kT).outcome, JoinOutcome::kNoWaitingRoom);
  none = room_->Advance(kPhone, kT);
  ASSERT_TRUE(none.has_value()) << none.error().ToString();
  EXPECT_FALSE(none->has_value());
  // Neither call created a queue.
  EXPECT_EQ(Command({"EXISTS", keys::Queue(kPhone), keys::QueueUsers(kPhone)}).integer, 0);
}

TEST_F(WaitingRoomTest, JoinHandsOutPositionsOncePerUserUnderOneGeneration) {
  PutRoom(kPhone, 100, 2, kT + 60'000);
  const WaitingRoomStore::Joined first = Join(kPhone, 11, kT);  // before the sale: allowed
  ASSERT_EQ(first.outcome, JoinOutcome::kJoined);
  EXPECT_EQ(first.position, 1);
  EXPECT_EQ(first.state.joined, 1);
  EXPECT_EQ(first.state.room, (WaitingRoom{2, 60}));
  EXPECT_EQ(first.state.starts_at, kT + 60'000);
  EXPECT_FALSE(first.state.sold_out);
  const std::uint64_t generation = first.state.generation;
  EXPECT_NE(generation, 0U);
  EXPECT_EQ(Join(kPhone, 12, kT + 1).position, 2);
  EXPECT_EQ(Join(kPhone, 13, kT + 2).position, 3);
  const WaitingRoomStore::Joined again = Join(kPhone, 12, kT + 3);
  EXPECT_EQ(again.outcome, JoinOutcome::kAlreadyJoined);
  EXPECT_EQ(again.position, 2);
  EXPECT_EQ(again.state.joined, 3);
  EXPECT_EQ(again.state.generation, generation);
  EXPECT_EQ(Advance(kPhone, kT + 4).generation, generation);
  EXPECT_EQ(Join(kPhone, 14, kT + 5).state.generation, generation);
}

TEST_F(WaitingRoomTest, AnAddressHoldsAtMostMaxPlaces) {
  PutRoom(kPhone, 100, 2);
  EXPECT_EQ(Join(kPhone, 1, kT, "10.0.0.1", 2).outcome, JoinOutcome::kJoined);
  EXPECT_EQ(Join(kPhone, 2, kT, "10.0.0.1", 2).outcome, JoinOutcome::kJoined);
  const WaitingRoomStore::Joined full = Join(kPhone, 3, kT, "10.0.0.1", 2);
  EXPECT_EQ(full.outcome, JoinOutcome::kAddressFull);
  EXPECT_EQ(full.position, 0);
  EXPECT_EQ(full.state.joined, 2);  // no position taken
  // A user who holds a place gets it back from a full address.
  const WaitingRoomStore::Joined back = Join(kPhone, 2, kT, "10.0.0.1", 2);
  EXPECT_EQ(back.outcome, JoinOutcome::kAlreadyJoined);
  EXPECT_EQ(back.position, 2);
  EXPECT_EQ(Join(kPhone, 3, kT, "10.0.0.2", 2).position, 3);                    // another address
  EXPECT_EQ(Join(kPhone, 4, kT, "10.0.0.1", 0).outcome, JoinOutcome::kJoined);  // 0: no cap
}

TEST_F(WaitingRoomTest, ConcurrentJoinsGetUniqueGapFreePositionsAndRejoinsKeepThem) {
  PutRoom(kPhone, 100, 50);
  // A connection of its own with a generous timeout (TSan on a loaded machine), as
  // the pipelined race above; 16 threads block on it at once.
  RedisConnection::Options opts;
  opts.port = server_->port();
  opts.timeout = 20s;
  OwnConnection connection(opts);
  RedisWaitingRoom room(*connection);
  constexpr int kThreads = 16, kCalls = 125;
  std::vector<std::int64_t> position(kThreads * kCalls, 0);
  const auto join_all = [&](bool rejoin) {
    testutil::RunConcurrently(kThreads, kCalls, [&](int i) {
      // Addresses shared by 8 users each; the cap is not reached.
      Result<WaitingRoomStore::Joined> j =
          room.Join(kPhone, 1000 + i, "addr" + std::to_string(i % 250), 8, kT + i % 7);
      ASSERT_TRUE(j.has_value()) << j.error().ToString();
      if (rejoin) {
        EXPECT_EQ(j->outcome, JoinOutcome::kAlreadyJoined);
        EXPECT_EQ(j->position, position[i]) << "user " << 1000 + i;
      } else {
        EXPECT_EQ(j->outcome, JoinOutcome::kJoined);
        position[i] = j->position;
      }
    });
  };
  join_all(false);
  std::set<std::int64_t> seen(position.begin(), position.end());
  EXPECT_EQ(seen.size(), position.size()) << "a position was handed out twice";
  EXPECT_EQ(*seen.begin(), 1);
  EXPECT_EQ(*seen.rbegin(), kThreads * kCalls);  // unique and within 1..N: gap-free
  join_all(true);
  EXPECT_EQ(Advance(kPhone, kT + 7).joined, kThreads * kCalls);
}

TEST_F(WaitingRoomTest, NothingBeforeTheStartThenAtTheRateCappedAtJoined) {
  PutRoom(kPhone, 100, 2, kT);
  for (UserId u = 1; u <= 5; ++u) Join(kPhone, u, kT - 10'000);
  EXPECT_EQ(Advance(kPhone, kT - 1).admitted, 0);
  EXPECT_EQ(Advance(kPhone, kT).admitted, 0);
  QueueState s = Advance(kPhone, kT + 1000);
  EXPECT_EQ(s.AdmittedCount(), 2);
  EXPECT_EQ(s.newly_admitted, 2);
  s = Advance(kPhone, kT + 60'000);  // 118 more would be due: only 5 joined
  EXPECT_EQ(s.admitted, 5);
  EXPECT_EQ(s.newly_admitted, 3);
  // The quiet minute banked nothing: a newcomer waits his turn at the rate.
  EXPECT_EQ(Join(kPhone, 6, kT + 60'000).state.admitted, 5);
  EXPECT_EQ(Advance(kPhone, kT + 60'499).AdmittedCount(), 5);
  EXPECT_EQ(Advance(kPhone, kT + 60'500).AdmittedCount(), 6);
}

TEST_F(WaitingRoomTest, SoldOutStopsAdmissionWithoutBankingTheTime) {
  PutRoom(kPhone, 100, 10);
  for (UserId u = 1; u <= 100; ++u) Join(kPhone, u, kT);
  EXPECT_EQ(Advance(kPhone, kT + 1000).AdmittedCount(), 10);
  Command({"SET", keys::Stock(kPhone), "0"});
  QueueState s = Advance(kPhone, kT + 5000);
  EXPECT_TRUE(s.sold_out);
  EXPECT_EQ(s.AdmittedCount(), 10);
  Command({"SET", keys::Stock(kPhone), "7"});  // restocked
  s = Advance(kPhone, kT + 6000);
  EXPECT_FALSE(s.sold_out);
  EXPECT_EQ(s.AdmittedCount(), 20);              // one second's worth, not five
  Command({"SET", keys::SoldOut(kPhone), "1"});  // the L2 flag alone
  s = Advance(kPhone, kT + 7000);
  EXPECT_TRUE(s.sold_out);
  EXPECT_EQ(s.AdmittedCount(), 20);
}

// The scripts' frontier against AdvanceFrontier(): after every call, the state
// Redis returns equals the C++ rule applied to the state of the call before
// (doubles compared exactly: "%.17g" reads back as the same double).
TEST_F(WaitingRoomTest, ScriptsAdvanceExactlyAsAdvanceFrontier) {
  enum class Op { kJoin, kRejoin, kAdvance, kSellOut, kFlag, kRestock };
  struct Step {
    Op op;
    std::int64_t at = 0;  // ms after kT
  };
  struct Case {
    std::int64_t admit_per_s;
    std::optional<std::int64_t> starts_in;  // ms after kT
    std::vector<Step> steps;
  };
  // clang-format off
  std::vector<Case> cases = {
      {1, {}, {{Op::kJoin, 0}, {Op::kJoin, 0}, {Op::kAdvance, 500}, {Op::kAdvance, 999},
               {Op::kAdvance, 1000}, {Op::kAdvance, 1001}, {Op::kJoin, 1500},
               {Op::kAdvance, 2500}, {Op::kAdvance, 10'000}, {Op::kJoin, 10'001},
               {Op::kRejoin, 10'002},
               {Op::kAdvance, 9'000},  // a clock behind: nothing moves
               {Op::kAdvance, 11'003}}},
      {3, 5000, {{Op::kJoin, 0}, {Op::kJoin, 1}, {Op::kJoin, 2}, {Op::kAdvance, 1000},
                 {Op::kAdvance, 5000}, {Op::kAdvance, 5333}, {Op::kAdvance, 5334},
                 {Op::kJoin, 6000}, {Op::kAdvance, 6001}, {Op::kAdvance, 7000}}},
      {3, -5000, {{Op::kJoin, 0}, {Op::kJoin, 0}, {Op::kAdvance, 1}, {Op::kAdvance, 700}}},
      {10, {}, {{Op::kJoin, 0}, {Op::kJoin, 0}, {Op::kJoin, 0}, {Op::kAdvance, 150},
                {Op::kSellOut, 0}, {Op::kAdvance, 3000}, {Op::kJoin, 3100}, {Op::kRestock, 0},
                {Op::kAdvance, 3175}, {Op::kFlag, 0}, {Op::kAdvance, 3300}, {Op::kRestock, 0},
                {Op::kAdvance, 3301}, {Op::kAdvance, 9000}}},
  };
  // clang-format on
  // Generated cases: a crowd joins first, so that the frontier is mostly not
  // capped; odd rates and irregular gaps keep it a fraction whose sums are
  // not exact in binary (a reordered formula, or a frontier stored with fewer
  // digits, is caught here).
  std::mt19937_64 rng(20261208);
  for (std::int64_t rate : {3, 7, 13, 37, 101}) {
    Case c{rate, static_cast<std::int64_t>(rng() % 2000), {}};
    c.steps.assign(400, Step{Op::kJoin, 0});
    std::int64_t at = 0;
    for (int i = 0; i < 150; ++i) {
      at += static_cast<std::int64_t>(rng() % 400);
      const std::uint64_t pick = rng() % 10;
      c.steps.push_back({pick < 2 ? Op::kJoin : pick < 3 ? Op::kRejoin : Op::kAdvance, at});
    }
    cases.push_back(std::move(c));
  }

  ProductId id = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE("admit_per_s " + std::to_string(c.admit_per_s));
    ++id;
    std::optional<UnixMillis> starts_at;
    if (c.starts_in) starts_at = kT + *c.starts_in;
    PutRoom(id, 1000, c.admit_per_s, starts_at);
    QueueState before;  // as Redis held it after the previous call
    before.room = WaitingRoom{c.admit_per_s, 60};
    before.starts_at = starts_at;
    bool sold_out = false;
    UserId next_user = 1;
    for (std::size_t i = 0; i < c.steps.size(); ++i) {
      const Step& step = c.steps[i];
      SCOPED_TRACE("step " + std::to_string(i) + " at +" + std::to_string(step.at));
      switch (step.op) {
        case Op::kSellOut:
          Command({"SET", keys::Stock(id), "0"});
          sold_out = true;
          continue;
        case Op::kFlag:
          Command({"SET", keys::SoldOut(id), "1"});
          sold_out = true;
          continue;
        case Op::kRestock:
          Command({"SET", keys::Stock(id), "1000"});
          Command({"DEL", keys::SoldOut(id)});
          sold_out = false;
          continue;
        default:
          break;
      }
      QueueState expected = before;
      expected.sold_out = sold_out;
      AdvanceFrontier(expected, kT + step.at);
      QueueState got;
      if (step.op == Op::kAdvance) {
        got = Advance(id, kT + step.at);
      } else {
        const bool rejoin = step.op == Op::kRejoin && next_user > 1;
        const UserId user = rejoin ? next_user - 1 : next_user++;
        const WaitingRoomStore::Joined j = Join(id, user, kT + step.at);
        EXPECT_EQ(j.outcome, rejoin ? JoinOutcome::kAlreadyJoined : JoinOutcome::kJoined);
        EXPECT_EQ(j.position, rejoin ? expected.joined : expected.joined + 1);
        if (!rejoin) ++expected.joined;
        got = j.state;
      }
      ASSERT_EQ(got.admitted, expected.admitted);
      ASSERT_EQ(got.joined, expected.joined);
      ASSERT_EQ(got.as_of, expected.as_of);
      ASSERT_EQ(got.newly_admitted, expected.newly_admitted);
      ASSERT_EQ(got.sold_out, expected.sold_out);
      ASSERT_EQ(got.starts_at, expected.starts_at);
      ASSERT_EQ(got.room, expected.room);
      if (before.generation != 0) {
        ASSERT_EQ(got.generation, before.generation);
      }
      before = got;
    }
    EXPECT_GT(before.AdmittedCount(), 0);
  }
}

TEST_F(WaitingRoomTest, ScriptsSurviveAFlushAndAServerDownIsUnavailable) {
  PutRoom(kPhone, 100, 2);
  EXPECT_EQ(Join(kPhone, 1, kT).position, 1);
  server_->Cli("SCRIPT FLUSH");
  EXPECT_EQ(Join(kPhone, 2, kT).position, 2);  // NOSCRIPT: sent again as EVAL
  server_->Cli("SCRIPT FLUSH");
  EXPECT_EQ(Advance(kPhone, kT + 1000).AdmittedCount(), 2);
  server_->Stop();
  Result<WaitingRoomStore::Joined> down = room_->Join(kPhone, 3, "a", 0, kT);
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.error().code(), Status::Code::kUnavailable) << down.error().ToString();
  Result<std::optional<QueueState>> no_advance = room_->Advance(kPhone, kT);
  ASSERT_FALSE(no_advance.has_value());
  EXPECT_EQ(no_advance.error().code(), Status::Code::kUnavailable);
}

// Same fixture, on a server that keeps its data across Stop()/Start().
class RedisRestartTest : public RedisStockStoreTest {
 protected:
  [[nodiscard]] bool Persistent() const override { return true; }
};

// Issue 7 (2b): the owner's Finish is lost (Redis stopped at that moment, then
// back with its data). After the pending time a retry with the same key must
// not reserve again: it answers the first order. The real funnel over the real
// Redis stores; only the order queue is the recording fake (Kafka plays no part).
TEST_F(RedisRestartTest, LostFinishNeverReservesTwice) {
  PutProduct(10, 5);
  RedisIdempotencyStore::Options key_options;
  key_options.pending_ttl_ms = 300;
  key_options.poll_ms = 2;
  RedisIdempotencyStore keys(*connection_, io_, key_options);
  FunnelMetrics metrics;
  embedded::LocalStatusBroadcast broadcast;
  testutil::RecordingOrderQueue queue(testutil::RecordingOrderQueue::Mode::kDeferred);
  PurchaseFunnel funnel(*store_, queue, keys, broadcast, metrics, {});
  auto buy = [&] {
    PurchaseRequest req;
    req.user = 1;
    req.product = kPhone;
    req.amount = 1;
    req.idempotency_key = "lost-finish";
    auto p = std::make_shared<std::promise<PurchaseReply>>();
    funnel.Buy(req, [p](const PurchaseReply& r) { p->set_value(r); });
    return p->get_future();
  };

  queue.Hold();  // the hand-off waits: stop Redis before the owner finishes
  std::future<PurchaseReply> first = buy();
  for (int i = 0; i < 500 && queue.HandOffs() == 0; ++i) std::this_thread::sleep_for(2ms);
  ASSERT_EQ(queue.HandOffs(), 1U);
  server_->Stop();
  queue.Release();  // ACCEPTED; the Finish write meets a dead server
  const PurchaseReply accepted = first.get();
  ASSERT_TRUE(accepted.status.ok()) << accepted.status.ToString();
  ASSERT_EQ(accepted.outcome, PurchaseOutcome::kAccepted);
  server_->Start();  // same port, data reloaded from the append-only file
  ASSERT_FALSE(HasFatalFailure());
  std::this_thread::sleep_for(400ms);  // past the pending time of the lost owner

  PurchaseReply retry;
  retry.status = Status::Unavailable("not tried");
  for (int i = 0; i < 100 && !retry.status.ok(); ++i) {
    retry = buy().get();
    if (!retry.status.ok()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(retry.status.ok()) << retry.status.ToString();
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 9) << "the retry reserved a second unit";
  EXPECT_EQ(retry.outcome, PurchaseOutcome::kAccepted);
  EXPECT_EQ(retry.order_id.view(), accepted.order_id.view());
  // And from now on the key answers at once, with the same order.
  const PurchaseReply again = buy().get();
  EXPECT_EQ(again.order_id.view(), accepted.order_id.view());
  EXPECT_EQ((*store_->Get(kPhone))->remaining, 9);
  queue.Flush();
}

}  // namespace
}  // namespace flashsale::redis
