// PgDatabase against a real PostgreSQL: FLASHSALE_TEST_DATABASE_URL (set by
// the CTest server fixture, see tests/CMakeLists.txt). Without it the tests
// skip, unless CI=true: then they fail.
//
// Each test works in a schema of its own ("t_<pid>_<n>"), dropped at the end,
// so tests never see each other's rows and may share a server.
// Concurrency model: the concurrent tests call one PgDatabase from several
// threads (RunConcurrently / std::thread), as the API server and consumer do.

#include "backends/postgres/pg_database.hpp"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "consumer/order_consumer.hpp"
#include "core/mutex.hpp"
#include "memory_order_source.hpp"
#include "run_concurrently.hpp"

namespace flashsale::postgres {
namespace {

using namespace std::chrono_literals;

std::string TestUrl() {
  const char* url = std::getenv("FLASHSALE_TEST_DATABASE_URL");
  return url != nullptr ? url : "";
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

// Runs SQL on a connection of its own (schema set-up and clean-up, checks
// behind PgDatabase's back). Returns the first column of every row of the
// last statement's result (EXPLAIN output: one plan line per row).
std::vector<std::string> SqlRows(const std::string& sql) {
  PGconn* pg = PQconnectdb(TestUrl().c_str());
  PQsetNoticeProcessor(
      pg, [](void*, const char*) {}, nullptr);  // "drop cascades to ..."
  std::vector<std::string> out;
  PGresult* r = PQexec(pg, sql.c_str());
  const ExecStatusType st = PQresultStatus(r);
  EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
      << sql.substr(0, 200) << ": " << PQerrorMessage(pg);
  if (st == PGRES_TUPLES_OK) {
    for (int row = 0; row < PQntuples(r); ++row) out.emplace_back(PQgetvalue(r, row, 0));
  }
  PQclear(r);
  PQfinish(pg);
  return out;
}

// The first value of the result, if any.
std::string Sql(const std::string& sql) {
  std::vector<std::string> rows = SqlRows(sql);
  return rows.empty() ? std::string() : std::move(rows.front());
}

std::string UniqueSchema() {
  static std::atomic<int> n{0};
  return "t_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
}

OrderId Id(std::int64_t n) {
  char buf[OrderId::kLength + 1];
  std::snprintf(buf, sizeof buf, "%024llx", static_cast<unsigned long long>(n));
  return *OrderId::Parse(buf);
}

Order MakeOrder(std::int64_t n, ProductId product, UserId user, std::int64_t quantity,
                UnixMillis created_at = 1'764'000'000'000) {
  Order o;
  o.id = Id(n);
  o.user = user;
  o.product = product;
  o.quantity = quantity;
  o.price = 1999;
  o.created_at = created_at + n;
  return o;
}

Product MakeProduct(ProductId id, std::int64_t stock, Cents price = 1999) {
  Product p;
  p.id = id;
  p.price = price;
  p.stock = stock;
  p.limit_per_user = 5;
  return p;
}

class PgDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (TestUrl().empty()) {
      if (InCi()) FAIL() << "FLASHSALE_TEST_DATABASE_URL is not set (CI=true)";
      GTEST_SKIP() << "FLASHSALE_TEST_DATABASE_URL is not set";
    }
    schema_ = UniqueSchema();
    Result<std::unique_ptr<PgDatabase>> db = Open();
    ASSERT_TRUE(db.has_value()) << db.error().ToString();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    if (!schema_.empty()) Sql("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }
  Result<std::unique_ptr<PgDatabase>> Open(int pool_size = 4) {
    return PgDatabase::Open({.url = TestUrl(), .pool_size = pool_size, .schema = schema_});
  }
  PersistSummary Persist(const std::vector<Order>& orders) {
    Result<PersistSummary> r = db_->PersistBatch(orders);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.has_value() ? *r : PersistSummary{};
  }
  std::int64_t Sold(ProductId id) {
    return std::stoll(
        Sql("SELECT sold FROM " + schema_ + ".products WHERE product_id = " + std::to_string(id)));
  }

  std::string schema_;
  std::unique_ptr<PgDatabase> db_;
};

TEST_F(PgDatabaseTest, OpenTwiceIsIdempotent) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 10)).ok());
  Result<std::unique_ptr<PgDatabase>> again = Open();
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  Result<std::vector<Product>> products = (*again)->LoadProducts();
  ASSERT_TRUE(products.has_value());
  EXPECT_EQ(products->size(), 1u);
}

TEST_F(PgDatabaseTest, OpenFromTwoThreadsAtOnceCreatesTheSchemaOnce) {
  const std::string fresh = UniqueSchema();
  std::atomic<int> ok{0};
  testutil::RunConcurrently(4, 1, [&](int) {
    Result<std::unique_ptr<PgDatabase>> db =
        PgDatabase::Open({.url = TestUrl(), .pool_size = 1, .schema = fresh});
    EXPECT_TRUE(db.has_value()) << db.error().ToString();
    if (db.has_value()) ++ok;
  });
  EXPECT_EQ(ok.load(), 4);
  Sql("DROP SCHEMA IF EXISTS " + fresh + " CASCADE");
}

TEST_F(PgDatabaseTest, OpenAddsSoldToAnOlderSchemaAndCountsConfirmedOrders) {
  const std::string old = UniqueSchema();
  Sql("CREATE SCHEMA " + old + "; CREATE TABLE " + old +
      ".products (product_id BIGINT PRIMARY KEY, price NUMERIC(14,2), stock BIGINT, "
      "starts_at TIMESTAMPTZ, ends_at TIMESTAMPTZ, limit_per_user BIGINT); CREATE TABLE " +
      old +
      ".orders (order_id TEXT PRIMARY KEY, user_id BIGINT, product_id BIGINT, quantity BIGINT, "
      "price NUMERIC(14,2), status TEXT, created_at TIMESTAMPTZ); INSERT INTO " +
      old + ".products VALUES (1, 1.50, 10, NULL, NULL, 1); INSERT INTO " + old +
      ".orders VALUES ('a', 1, 1, 3, 1.50, 'CONFIRMED', now()), ('b', 2, 1, 4, 1.50, 'FAILED', "
      "now())");
  Result<std::unique_ptr<PgDatabase>> db =
      PgDatabase::Open({.url = TestUrl(), .pool_size = 1, .schema = old});
  ASSERT_TRUE(db.has_value()) << db.error().ToString();
  EXPECT_EQ(Sql("SELECT sold FROM " + old + ".products WHERE product_id = 1"), "3");
  EXPECT_EQ((*db)->LoadProducts()->front().version, 0);  // products.version added too
  // The guard now knows 7 of 10 units are left.
  PersistSummary s = *(*db)->PersistBatch(std::vector<Order>{MakeOrder(1, 1, 5, 8)});
  EXPECT_EQ(s.failed, 1);
  db->reset();
  Sql("DROP SCHEMA " + old + " CASCADE");
}

TEST_F(PgDatabaseTest, ProductsRoundTripExactly) {
  Product windowed = MakeProduct(2, 7, 99'999'999'99);
  windowed.starts_at = 1'764'000'000'123;  // ms precision kept
  windowed.ends_at = 1'764'086'400'999;
  windowed.limit_per_user = 3;
  const Product cheap = MakeProduct(1, 100, 5);  // 0.05
  std::int64_t inserted = -1;
  ASSERT_TRUE(db_->InsertProducts({windowed, cheap}, /*overwrite=*/false, &inserted).ok());
  EXPECT_EQ(inserted, 2);
  EXPECT_EQ(Sql("SELECT price::text FROM " + schema_ + ".products WHERE product_id = 1"), "0.05");
  EXPECT_EQ(Sql("SELECT price::text FROM " + schema_ + ".products WHERE product_id = 2"),
            "99999999.99");

  Result<std::vector<Product>> loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  ASSERT_EQ(loaded->size(), 2u);
  const Product& a = (*loaded)[0];  // id order
  EXPECT_EQ(a.id, 1);
  EXPECT_EQ(a.price, 5);
  EXPECT_EQ(a.stock, 100);
  EXPECT_FALSE(a.starts_at.has_value());
  EXPECT_FALSE(a.ends_at.has_value());
  const Product& b = (*loaded)[1];
  EXPECT_EQ(b.price, 99'999'999'99);
  EXPECT_EQ(b.starts_at, windowed.starts_at);
  EXPECT_EQ(b.ends_at, windowed.ends_at);
  EXPECT_EQ(b.limit_per_user, 3);

  // SETNX: existing ids are left alone.
  Product changed = cheap;
  changed.price = 1;
  ASSERT_TRUE(db_->InsertProducts({changed, MakeProduct(3, 1)}, false, &inserted).ok());
  EXPECT_EQ(inserted, 1);
  loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value());
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0].price, 5);

  // Overwrite: replaced, but `sold` is kept.
  Persist({MakeOrder(1, 1, 10, 2)});
  ASSERT_TRUE(db_->InsertProducts({changed}, /*overwrite=*/true, &inserted).ok());
  EXPECT_EQ(inserted, 1);
  loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ((*loaded)[0].price, 1);
  EXPECT_EQ(Sold(1), 2);

  // UpsertProduct (admin PUT): updates metadata, clears the window, keeps sold.
  Product put = windowed;
  put.starts_at.reset();
  put.stock = 50;
  ASSERT_TRUE(db_->UpsertProduct(put).ok());
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 3, 10)).ok());
  loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ((*loaded)[1].stock, 50);
  EXPECT_FALSE((*loaded)[1].starts_at.has_value());
  EXPECT_EQ((*loaded)[1].ends_at, windowed.ends_at);
  EXPECT_EQ((*loaded)[0].price, 10);
  EXPECT_EQ(Sold(1), 2);
}

TEST_F(PgDatabaseTest, WaitingRoomRoundTrips) {
  const WaitingRoom room{.admit_per_s = 50, .pass_ttl_s = 120};
  const WaitingRoom most{.admit_per_s = kMaxAdmitPerS, .pass_ttl_s = kMaxPassTtlS};
  Product a = MakeProduct(1, 10);
  a.waiting_room = room;
  const Product b = MakeProduct(2, 10);
  std::int64_t inserted = 0;
  ASSERT_TRUE(db_->InsertProducts({a, b}, /*overwrite=*/false, &inserted).ok());
  Result<std::vector<Product>> loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)[0].waiting_room, room);
  EXPECT_EQ((*loaded)[1].waiting_room, std::nullopt);
  a.waiting_room = most;  // seed --overwrite replaces it
  ASSERT_TRUE(db_->InsertProducts({a}, /*overwrite=*/true, &inserted).ok());
  EXPECT_EQ(db_->LoadProducts()->front().waiting_room, most);
  // Admin PUT: set, then cleared (PUT replaces the product).
  a.version = 1;
  a.waiting_room = room;
  ASSERT_TRUE(db_->UpsertProduct(a).ok());
  EXPECT_EQ(db_->LoadProducts()->front().waiting_room, room);
  a.version = 2;
  a.waiting_room.reset();
  ASSERT_TRUE(db_->UpsertProduct(a).ok());
  EXPECT_EQ(db_->LoadProducts()->front().waiting_room, std::nullopt);
  EXPECT_EQ(Sql("SELECT coalesce(waiting_room_admit_per_s::text, 'null') FROM " + schema_ +
                ".products WHERE product_id = 1"),
            "null");
}

// A schema from before issue 10 (the waiting room's columns missing) gets them
// in place at Open(); its rows read with no waiting room.
TEST_F(PgDatabaseTest, OpenAddsTheWaitingRoomColumnsInPlace) {
  Product p = MakeProduct(1, 10);
  p.payment_window_s = 900;
  ASSERT_TRUE(db_->UpsertProduct(p).ok());
  db_.reset();
  Sql("ALTER TABLE " + schema_ + ".products DROP COLUMN waiting_room_admit_per_s, DROP COLUMN " +
      "waiting_room_pass_ttl_s");
  Result<std::unique_ptr<PgDatabase>> db = Open(1);
  ASSERT_TRUE(db.has_value()) << db.error().ToString();
  db_ = std::move(*db);
  Result<std::vector<Product>> loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ(loaded->front().waiting_room, std::nullopt);
  EXPECT_EQ(loaded->front().payment_window_s, 900);
  p.version = 1;
  p.waiting_room = WaitingRoom{.admit_per_s = 3, .pass_ttl_s = 4};
  ASSERT_TRUE(db_->UpsertProduct(p).ok());
  EXPECT_EQ(db_->LoadProducts()->front().waiting_room, p.waiting_room);
  ASSERT_TRUE(Open(1).has_value());  // opening again finds the columns there
}

TEST_F(PgDatabaseTest, UpsertProductKeepsTheNewestVersion) {
  // Admin changes persisted out of order (the stock store numbers them)
  // converge to the last one; equal versions replace; sold is kept.
  Product p = MakeProduct(1, 10);
  p.version = 3;
  ASSERT_TRUE(db_->UpsertProduct(p).ok());
  ASSERT_TRUE(db_->PersistBatch(std::vector<Order>{MakeOrder(1, 1, 2, 2)}).has_value());
  Product older = MakeProduct(1, 99, 5);
  older.version = 2;
  ASSERT_TRUE(db_->UpsertProduct(older).ok());  // a no-op, not an error
  Result<std::vector<Product>> loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ((*loaded)[0].stock, 10);
  EXPECT_EQ((*loaded)[0].price, 1999);
  EXPECT_EQ((*loaded)[0].version, 3);
  p.version = 4;
  p.stock = 15;
  ASSERT_TRUE(db_->UpsertProduct(p).ok());
  loaded = db_->LoadProducts();
  EXPECT_EQ((*loaded)[0].stock, 15);
  EXPECT_EQ((*loaded)[0].version, 4);
  EXPECT_EQ(Sold(1), 2);
}

TEST_F(PgDatabaseTest, NewOrdersAreConfirmedAndReplaysChangeNothing) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 100)).ok());
  std::vector<Order> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(MakeOrder(i, 1, 100 + i, 2));
  batch[3].price = 5;
  batch[4].price = 99'999'999'99;
  batch[5].idempotency_key = "key\twith\\odd\nbytes";
  PersistSummary first = Persist(batch);
  EXPECT_EQ(first.confirmed, 10);
  EXPECT_EQ(first.failed, 0);
  EXPECT_EQ(first.duplicates, 0);
  EXPECT_TRUE(first.unknown_product.empty());
  EXPECT_EQ(Sold(1), 20);

  PersistSummary replay = Persist(batch);
  EXPECT_EQ(replay.confirmed, 0);
  EXPECT_EQ(replay.failed, 0);
  EXPECT_EQ(replay.duplicates, 10);
  EXPECT_EQ(Sold(1), 20);

  for (const Order& o : batch) {
    Result<std::optional<Order>> found = db_->FindOrder(o.id);
    ASSERT_TRUE(found.has_value()) << found.error().ToString();
    ASSERT_TRUE(found->has_value());
    const Order& f = **found;
    EXPECT_EQ(f.id, o.id);
    EXPECT_EQ(f.user, o.user);
    EXPECT_EQ(f.product, o.product);
    EXPECT_EQ(f.quantity, o.quantity);
    EXPECT_EQ(f.price, o.price);
    EXPECT_EQ(f.created_at, o.created_at);
    EXPECT_EQ(f.idempotency_key, o.idempotency_key);
    EXPECT_EQ(f.status, OrderStatus::kConfirmed);
  }
  Result<std::optional<Order>> missing = db_->FindOrder(Id(999));
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->has_value());
  Result<OrderCounts> counts = db_->CountOrders();
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(counts->confirmed, 10);
  EXPECT_EQ(counts->failed, 0);
}

TEST_F(PgDatabaseTest, StockGuardFailsExactlyTheExcess) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 5)).ok());
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(2, 5)).ok());
  // Stock 5: 3 fits, the next 3 does not, a later 2 still does.
  PersistSummary s = Persist({MakeOrder(1, 1, 10, 3), MakeOrder(2, 1, 11, 3),
                              MakeOrder(3, 1, 12, 2), MakeOrder(4, 2, 10, 5)});
  EXPECT_EQ(s.confirmed, 3);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(Sold(1), 5);
  EXPECT_EQ(Sold(2), 5);
  Result<std::optional<Order>> second = db_->FindOrder(Id(2));
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->has_value());
  EXPECT_EQ((*second)->status, OrderStatus::kFailed);

  // Across batches too; and a FAILED order replayed stays FAILED.
  s = Persist({MakeOrder(5, 1, 13, 1), MakeOrder(2, 1, 11, 3)});
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.duplicates, 1);
  EXPECT_EQ(Sold(1), 5);

  Result<std::vector<Order>> failed = db_->LoadFailedOrders();
  ASSERT_TRUE(failed.has_value());
  ASSERT_EQ(failed->size(), 2u);
  EXPECT_EQ((*failed)[0].id, Id(2));
  EXPECT_EQ((*failed)[1].id, Id(5));
  Result<OrderCounts> counts = db_->CountOrders();
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(counts->confirmed, 3);
  EXPECT_EQ(counts->failed, 2);
}

TEST_F(PgDatabaseTest, UnknownProductsAreReportedAndNotStored) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 5)).ok());
  PersistSummary s = Persist({MakeOrder(1, 1, 10, 1), MakeOrder(2, 42, 10, 1),
                              MakeOrder(3, 1, 11, 1), MakeOrder(4, 43, 10, 1)});
  EXPECT_EQ(s.confirmed, 2);
  EXPECT_EQ(s.duplicates, 0);
  EXPECT_EQ(s.unknown_product, (std::vector<std::size_t>{1, 3}));
  Result<std::optional<Order>> found = db_->FindOrder(Id(2));
  ASSERT_TRUE(found.has_value());
  EXPECT_FALSE(found->has_value());
  Result<std::vector<Order>> all = db_->LoadAllOrders();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 2u);
}

TEST_F(PgDatabaseTest, DuplicateInsideOneBatchCountsOnce) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 10)).ok());
  PersistSummary s =
      Persist({MakeOrder(1, 1, 10, 2), MakeOrder(1, 1, 10, 2), MakeOrder(2, 1, 11, 1)});
  EXPECT_EQ(s.confirmed, 2);
  EXPECT_EQ(s.duplicates, 1);
  EXPECT_EQ(Sold(1), 3);
}

// A row PostgreSQL refuses for its data (price past NUMERIC(14,2): SQLSTATE
// 22003) is not a passing failure: PersistBatch says Invalid, and the
// consumer parks exactly that order in the dead-letter queue while the
// others of its batch are stored and the stream is committed.
TEST_F(PgDatabaseTest, AnOrderTheDatabaseRefusesIsDeadLetteredAndTheOthersLand) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 100)).ok());
  std::vector<Order> batch;
  for (std::int64_t n = 1; n <= 6; ++n) batch.push_back(MakeOrder(n, 1, 10 + n, 1));
  batch[3].price = 1'000'000'000'000'000;  // 10^13 units: out of NUMERIC(14,2)'s range
  Result<PersistSummary> refused = db_->PersistBatch(batch);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Status::Code::kInvalid) << refused.error().ToString();
  EXPECT_EQ(Sql("SELECT count(*) FROM " + schema_ + ".orders"), "0");  // one transaction

  testutil::MemoryOrderSource source;
  source.Push(batch);
  FunnelMetrics metrics;
  OrderConsumer::Options options;
  options.max_batch = batch.size();
  options.poll_wait_ms = 1;
  options.batch_interval_ms = 0;
  options.max_backoff_ms = 50;
  OrderConsumer consumer(source, *db_, metrics, options);
  consumer.Start();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (source.Committed() < batch.size() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  consumer.Stop(false);
  EXPECT_EQ(source.Committed(), batch.size()) << "the stream stalled on the refused order";
  std::vector<testutil::MemoryOrderSource::Letter> letters = source.DeadLetters();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].order.id, batch[3].id);
  EXPECT_NE(letters[0].reason.find("numeric field overflow"), std::string::npos)
      << letters[0].reason;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Result<std::optional<Order>> found = db_->FindOrder(batch[i].id);
    ASSERT_TRUE(found.has_value()) << found.error().ToString();
    EXPECT_EQ(found->has_value(), i != 3) << "order #" << i;
  }
  EXPECT_EQ(Sold(1), 5);
}

// Rows written behind our back that do not parse are errors naming the row
// (table, key, column), never an empty id or a PENDING order.
TEST_F(PgDatabaseTest, ACorruptOrderRowIsAnErrorNamingTheRow) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 100)).ok());
  Persist({MakeOrder(1, 1, 77, 1)});
  Sql("INSERT INTO " + schema_ +
      ".orders (order_id, user_id, product_id, quantity, price, status, created_at) "
      "VALUES ('not-an-order-id', 77, 1, 1, 19.99, 'CONFIRMED', now())");
  Result<std::vector<Order>> mine = db_->OrdersOfUser(77, 10);
  ASSERT_FALSE(mine.has_value()) << "a corrupt order id was read as " << (*mine)[0].id.view();
  EXPECT_NE(mine.error().message().find("orders"), std::string::npos) << mine.error().message();
  EXPECT_NE(mine.error().message().find("not-an-order-id"), std::string::npos);
  EXPECT_NE(mine.error().message().find("order_id"), std::string::npos);
  Result<std::vector<Order>> all = db_->LoadAllOrders();
  EXPECT_FALSE(all.has_value());
  Result<std::vector<SoldUnits>> sold = db_->LoadSoldUnits();  // max(order_id) of user 77
  ASSERT_FALSE(sold.has_value());
  EXPECT_NE(sold.error().message().find("not-an-order-id"), std::string::npos);

  // A status that is not one (a schema without the CHECK, e.g. an older one).
  Sql("DELETE FROM " + schema_ + ".orders WHERE order_id = 'not-an-order-id'; ALTER TABLE " +
      schema_ + ".orders DROP CONSTRAINT IF EXISTS orders_status_check; UPDATE " + schema_ +
      ".orders SET status = 'SHIPPED'");
  Result<std::optional<Order>> found = db_->FindOrder(Id(1));
  ASSERT_FALSE(found.has_value()) << "status SHIPPED was read as " << ToString((*found)->status);
  const std::string why = found.error().message();
  EXPECT_NE(why.find(std::string(Id(1).view())), std::string::npos) << why;
  EXPECT_NE(why.find("status"), std::string::npos) << why;
  EXPECT_NE(why.find("SHIPPED"), std::string::npos) << why;
}

TEST_F(PgDatabaseTest, OrdersOfUserNewestFirst) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 100)).ok());
  Persist({MakeOrder(1, 1, 7, 1, 1000), MakeOrder(2, 1, 7, 1, 5000), MakeOrder(3, 1, 8, 1, 9000),
           MakeOrder(4, 1, 7, 1, 3000)});
  Result<std::vector<Order>> mine = db_->OrdersOfUser(7, 10);
  ASSERT_TRUE(mine.has_value()) << mine.error().ToString();
  ASSERT_EQ(mine->size(), 3u);
  EXPECT_EQ((*mine)[0].id, Id(2));
  EXPECT_EQ((*mine)[1].id, Id(4));
  EXPECT_EQ((*mine)[2].id, Id(1));
  mine = db_->OrdersOfUser(7, 1);
  ASSERT_TRUE(mine.has_value());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].id, Id(2));
}

TEST_F(PgDatabaseTest, LoadSoldUnitsExcludesFailed) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 4)).ok());
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(2, 10)).ok());
  Persist({MakeOrder(1, 1, 7, 1), MakeOrder(2, 1, 7, 2), MakeOrder(3, 1, 8, 3),  // 3: FAILED
           MakeOrder(4, 2, 8, 4)});
  Result<std::vector<SoldUnits>> sold = db_->LoadSoldUnits();
  ASSERT_TRUE(sold.has_value()) << sold.error().ToString();
  ASSERT_EQ(sold->size(), 2u);
  EXPECT_EQ((*sold)[0].product, 1);
  EXPECT_EQ((*sold)[0].user, 7);
  EXPECT_EQ((*sold)[0].units, 3);
  EXPECT_EQ((*sold)[0].latest_order, Id(2));
  EXPECT_EQ((*sold)[1].product, 2);
  EXPECT_EQ((*sold)[1].user, 8);
  EXPECT_EQ((*sold)[1].units, 4);
  EXPECT_EQ((*sold)[1].latest_order, Id(4));
}

TEST_F(PgDatabaseTest, ConcurrentBatchesStoreEveryOrderOnceAndNeverOversell) {
  constexpr int kProducts = 5, kStock = 300, kThreads = 4, kBatches = 10, kBatch = 100;
  for (int p = 1; p <= kProducts; ++p) ASSERT_TRUE(db_->UpsertProduct(MakeProduct(p, kStock)).ok());
  // Thread t's batch b holds orders [(t/2*kBatches + b) * kBatch, ...): threads
  // 0 and 1 send the same orders, as do 2 and 3; all touch every product.
  // 2000 distinct orders of 1 unit for 1500 units of stock.
  std::atomic<std::int64_t> confirmed{0}, failed{0}, duplicates{0};
  testutil::RunConcurrently(kThreads, kBatches, [&](int call) {
    const int t = call / kBatches, b = call % kBatches;
    std::vector<Order> batch;
    for (int i = 0; i < kBatch; ++i) {
      const std::int64_t n = (t / 2 * kBatches + b) * kBatch + i;
      batch.push_back(MakeOrder(n, 1 + n % kProducts, n % 97, 1));
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
      Result<PersistSummary> s = db_->PersistBatch(batch);
      if (!s.has_value()) {
        ADD_FAILURE() << s.error().ToString();  // deadlocks would show here
        continue;
      }
      confirmed += s->confirmed;
      failed += s->failed;
      duplicates += s->duplicates;
      break;
    }
  });
  const std::int64_t distinct = 2 * kBatches * kBatch;
  EXPECT_EQ(confirmed + failed, distinct);
  EXPECT_EQ(duplicates.load(), distinct);
  EXPECT_EQ(confirmed.load(), kProducts * kStock);
  Result<std::vector<Order>> all = db_->LoadAllOrders();
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(static_cast<std::int64_t>(all->size()), distinct);
  std::map<ProductId, std::int64_t> confirmed_units;
  for (const Order& o : *all) {
    if (o.status == OrderStatus::kConfirmed) confirmed_units[o.product] += o.quantity;
  }
  for (int p = 1; p <= kProducts; ++p) {
    EXPECT_EQ(Sold(p), confirmed_units[p]) << "product " << p;
    EXPECT_EQ(Sold(p), kStock) << "product " << p;
  }
}

TEST_F(PgDatabaseTest, ConcurrentReadersAndWriterShareThePool) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 1'000'000)).ok());
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 6; ++r) {  // more callers than connections
    readers.emplace_back([&, r] {
      while (!done) {
        Result<std::vector<Order>> mine = db_->OrdersOfUser(r, 5);
        EXPECT_TRUE(mine.has_value()) << mine.error().ToString();
        ++reads;
      }
    });
  }
  for (int b = 0; b < 20; ++b) {
    std::vector<Order> batch;
    for (int i = 0; i < 200; ++i) batch.push_back(MakeOrder(b * 200 + i, 1, i % 10, 1));
    EXPECT_EQ(Persist(batch).confirmed, 200);
  }
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(Sold(1), 4000);
}

TEST_F(PgDatabaseTest, BrokenConnectionsAreReplaced) {
  ASSERT_TRUE(db_->UpsertProduct(MakeProduct(1, 10)).ok());
  ASSERT_TRUE(db_->Ping().ok());
  // Kill every server process of our pool (application_name 'flashsale').
  Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
      "'flashsale' AND datname = current_database()");
  std::this_thread::sleep_for(200ms);
  Status ping = db_->Ping();
  EXPECT_TRUE(ping.ok()) << ping.ToString();
  PersistSummary s = Persist({MakeOrder(1, 1, 1, 1)});
  EXPECT_EQ(s.confirmed, 1);
}

TEST_F(PgDatabaseTest, PingTimesOutOnAServerThatDoesNotAnswer) {
  Result<std::unique_ptr<PgDatabase>> one = Open(/*pool_size=*/1);
  ASSERT_TRUE(one.has_value()) << one.error().ToString();
  ASSERT_TRUE((*one)->Ping().ok());
  // Freeze the server process behind the only (idle) connection of the pool.
  const std::string pid = Sql(
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'flashsale' AND state = 'idle' "
      "AND datname = current_database() ORDER BY backend_start DESC LIMIT 1");
  ASSERT_FALSE(pid.empty());
  if (::kill(std::stoi(pid), SIGSTOP) != 0) GTEST_SKIP() << "cannot signal the server process";
  struct Resume {
    int pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{std::stoi(pid)};
  const auto t0 = std::chrono::steady_clock::now();
  Status ping = (*one)->Ping();
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(ping.ok());
  EXPECT_EQ(ping.code(), Status::Code::kUnavailable);
  EXPECT_NE(ping.message().find((*one)->server()), std::string::npos) << ping.message();
  EXPECT_NE(ping.message().find("did not answer"), std::string::npos) << ping.message();
  EXPECT_LT(took, 4s);
  ::kill(std::stoi(pid), SIGCONT);
  // The frozen connection was dropped: the next call opens a fresh one.
  Status again = (*one)->Ping();
  EXPECT_TRUE(again.ok()) << again.ToString();
}

TEST(PgDatabase, OpenAgainstAClosedPortNamesTheServer) {
  const auto t0 = std::chrono::steady_clock::now();
  Result<std::unique_ptr<PgDatabase>> db = PgDatabase::Open(
      {.url = "postgresql://flashsale:flashsale@127.0.0.1:1/flashsale", .connect_timeout_s = 2});
  ASSERT_FALSE(db.has_value());
  EXPECT_EQ(db.error().code(), Status::Code::kUnavailable);
  EXPECT_NE(db.error().message().find("127.0.0.1:1"), std::string::npos) << db.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(PgDatabase, BadUrlIsInvalid) {
  Result<std::unique_ptr<PgDatabase>> db = PgDatabase::Open({.url = "postgresql://[::1"});
  ASSERT_FALSE(db.has_value());
  EXPECT_EQ(db.error().code(), Status::Code::kInvalid);
}

// A growing orders table must not make each batch slower than the last: the
// stored-orders check probes the primary key once per id, where `order_id =
// ANY($1)` made the planner scan the whole table (20k rows here, and still at
// 1M).
TEST_F(PgDatabaseTest, StoredOrdersCheckProbesThePrimaryKeyNotTheWholeTable) {
  constexpr int kOrders = 20'000, kBatch = 5'000;
  std::int64_t inserted = 0;
  ASSERT_TRUE(db_->InsertProducts({MakeProduct(1, kOrders)}, false, &inserted).ok());
  std::vector<Order> orders;
  for (int n = 0; n < kOrders; ++n) orders.push_back(MakeOrder(n, 1, n, 1));
  for (int at = 0; at < kOrders; at += kBatch) {
    Persist({orders.begin() + at, orders.begin() + at + kBatch});
  }
  Sql("ANALYZE " + schema_ + ".orders");
  std::string ids = "{";
  for (int n = kOrders - kBatch; n < kOrders + kBatch; ++n) {
    ids += (ids.size() > 1 ? "," : "") + std::string(Id(n).view());
  }
  ids += "}";
  std::string plan;
  for (const std::string& line :
       SqlRows("SET search_path = " + schema_ + "; PREPARE q(text[]) AS " +
               PgDatabase::kStoredOrdersSql + "; EXPLAIN EXECUTE q('" + ids + "')")) {
    plan += line + "\n";
  }
  EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
  EXPECT_NE(plan.find("orders_pkey"), std::string::npos) << plan;
  // And it finds exactly the stored half of those ids.
  const std::string found =
      Sql("SET search_path = " + schema_ + "; PREPARE c(text[]) AS " + "SELECT count(*) FROM (" +
          PgDatabase::kStoredOrdersSql + ") s; EXECUTE c('" + ids + "')");
  EXPECT_EQ(found, std::to_string(kBatch));
}

TEST_F(PgDatabaseTest, Throughput200kOrdersInBatchesOf5000) {
  constexpr int kProducts = 100, kOrders = 200'000, kBatch = 5'000;
  std::vector<Product> products;
  for (int p = 1; p <= kProducts; ++p) products.push_back(MakeProduct(p, kOrders));
  std::int64_t inserted = 0;
  ASSERT_TRUE(db_->InsertProducts(products, false, &inserted).ok());
  std::vector<Order> orders;
  orders.reserve(kOrders);
  for (int n = 0; n < kOrders; ++n) orders.push_back(MakeOrder(n, 1 + n % kProducts, n, 1));
  const auto t0 = std::chrono::steady_clock::now();
  std::int64_t confirmed = 0;
  for (int at = 0; at < kOrders; at += kBatch) {
    Result<PersistSummary> s =
        db_->PersistBatch(std::span<const Order>(orders).subspan(at, kBatch));
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    confirmed += s->confirmed;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(confirmed, kOrders);
  std::printf("[ THROUGHPUT ] PersistBatch: %d orders in batches of %d in %.2f s = %.0f orders/s\n",
              kOrders, kBatch, secs, kOrders / secs);
  // Replaying everything (all duplicates) costs about as much: print it too.
  const auto t1 = std::chrono::steady_clock::now();
  for (int at = 0; at < kOrders; at += kBatch) {
    Result<PersistSummary> s =
        db_->PersistBatch(std::span<const Order>(orders).subspan(at, kBatch));
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    EXPECT_EQ(s->duplicates, kBatch);
  }
  const double replay =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  std::printf("[ THROUGHPUT ] PersistBatch replay (all duplicates): %.0f orders/s\n",
              kOrders / replay);
}

// ---- Order lifecycle (issue 9) ----

constexpr UnixMillis kT0 = 1'764'000'000'000;  // MakeOrder's created_at base

// An order of product 1 awaiting payment until `pay_by` (1 unit at 19.99).
Order Awaiting(std::int64_t n, UnixMillis pay_by, UserId user = 0) {
  Order o = MakeOrder(n, 1, user != 0 ? user : 100 + n, 1);
  o.pay_by = pay_by;
  return o;
}

Payment Pays(const Order& o, std::string ref, UnixMillis at) {
  return Payment{o.id, std::move(ref), *o.Total(), at};
}

Product Windowed(ProductId id, std::int64_t stock, std::int64_t window_s = 600) {
  Product p = MakeProduct(id, stock);
  p.payment_window_s = window_s;
  return p;
}

class PgLifecycleTest : public PgDatabaseTest {
 protected:
  Order Stored(const OrderId& id) {
    Result<std::optional<Order>> o = db_->FindOrder(id);
    EXPECT_TRUE(o.has_value()) << o.error().ToString();
    EXPECT_TRUE(o.has_value() && o->has_value()) << "order " << id.view() << " not stored";
    return o.has_value() && o->has_value() ? **o : Order{};
  }
  PaymentDecision PayOk(const Payment& p, const std::optional<Order>& in_flight = std::nullopt) {
    Result<PaymentDecision> d = db_->Pay(p, in_flight);
    EXPECT_TRUE(d.has_value()) << d.error().ToString();
    return d.has_value() ? *d : PaymentDecision{};
  }
  // sold == units of CONFIRMED + PAID orders, per product, from the rows.
  void ExpectSoldMatchesHeldOrders() {
    Result<std::vector<Order>> all = db_->LoadAllOrders();
    ASSERT_TRUE(all.has_value()) << all.error().ToString();
    std::map<ProductId, std::int64_t> held;
    for (const Order& o : *all) {
      if (o.status == OrderStatus::kConfirmed || o.status == OrderStatus::kPaid) {
        held[o.product] += o.quantity;
      }
    }
    Result<std::vector<Product>> products = db_->LoadProducts();
    ASSERT_TRUE(products.has_value());
    for (const Product& p : *products) EXPECT_EQ(Sold(p.id), held[p.id]) << "product " << p.id;
  }
};

// A database made by the schema before the lifecycle (its status CHECK
// refuses PAID) upgrades in place at Open and then stores a PAID order.
TEST_F(PgLifecycleTest, OpenMigratesTheOldSchemaInPlace) {
  const std::string old = UniqueSchema();
  Sql("CREATE SCHEMA " + old + "; CREATE TABLE " + old +
      ".products (product_id BIGINT PRIMARY KEY, price NUMERIC(14,2) NOT NULL, stock BIGINT NOT "
      "NULL, starts_at TIMESTAMPTZ NULL, ends_at TIMESTAMPTZ NULL, limit_per_user BIGINT NOT NULL "
      "DEFAULT 1, sold BIGINT NOT NULL DEFAULT 0, version BIGINT NOT NULL DEFAULT 0); "
      "CREATE TABLE " +
      old +
      ".orders (order_id TEXT PRIMARY KEY, user_id BIGINT NOT NULL, product_id BIGINT NOT NULL, "
      "quantity BIGINT NOT NULL, price NUMERIC(14,2) NOT NULL, status TEXT NOT NULL CHECK "
      "(status IN ('PENDING', 'CONFIRMED', 'FAILED')), created_at TIMESTAMPTZ NOT NULL, "
      "idempotency_key TEXT NULL); INSERT INTO " +
      old + ".products VALUES (1, 19.99, 10, NULL, NULL, 5, 2, 0); INSERT INTO " + old +
      ".orders VALUES ('" + std::string(Id(1).view()) +
      "', 7, 1, 2, 19.99, 'CONFIRMED', now(), NULL)");
  // The old CHECK is there, under the name PostgreSQL gave it.
  EXPECT_NE(Sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = "
                "'orders_status_check' AND connamespace = '" +
                old + "'::regnamespace")
                .find("FAILED"),
            std::string::npos);
  Result<std::unique_ptr<PgDatabase>> db =
      PgDatabase::Open({.url = TestUrl(), .pool_size = 2, .schema = old});
  ASSERT_TRUE(db.has_value()) << db.error().ToString();
  // Old rows read with the new columns empty; the old order is untouched.
  Result<std::optional<Order>> before = (*db)->FindOrder(Id(1));
  ASSERT_TRUE(before.has_value()) << before.error().ToString();
  ASSERT_TRUE(before->has_value());
  EXPECT_EQ((*before)->status, OrderStatus::kConfirmed);
  EXPECT_FALSE((*before)->pay_by.has_value());
  EXPECT_EQ(Sql("SELECT units_returned FROM " + old + ".orders"), "t");
  // payment_window_s is a column now.
  Product p = Windowed(1, 10, 900);
  p.version = 1;
  ASSERT_TRUE((*db)->UpsertProduct(p).ok());
  EXPECT_EQ((*db)->LoadProducts()->front().payment_window_s, 900);
  // And a PAID order is stored (the old CHECK refused the status).
  const Order o = Awaiting(2, kT0 + 900'000);
  ASSERT_EQ((*db)->PersistBatch(std::vector<Order>{o})->confirmed, 1);
  Result<PaymentDecision> paid = (*db)->Pay(Pays(o, "pay-1", kT0 + 1000), std::nullopt);
  ASSERT_TRUE(paid.has_value()) << paid.error().ToString();
  EXPECT_EQ(paid->outcome, PaymentOutcome::kPaid);
  EXPECT_EQ(Sql("SELECT status FROM " + old + ".orders WHERE order_id = '" +
                std::string(o.id.view()) + "'"),
            "PAID");
  EXPECT_EQ(Sql("SELECT sold FROM " + old + ".products"), "3");
  // Opening again changes nothing (the CHECK is not replaced twice).
  const std::string oid =
      Sql("SELECT oid FROM pg_constraint WHERE conname = "
          "'orders_status_check' AND connamespace = '" +
          old + "'::regnamespace");
  ASSERT_TRUE(PgDatabase::Open({.url = TestUrl(), .pool_size = 1, .schema = old}).has_value());
  EXPECT_EQ(Sql("SELECT oid FROM pg_constraint WHERE conname = 'orders_status_check' AND "
                "connamespace = '" +
                old + "'::regnamespace"),
            oid);
  db->reset();
  Sql("DROP SCHEMA " + old + " CASCADE");
}

TEST_F(PgLifecycleTest, ProductsAndOrdersCarryTheLifecycleColumns) {
  std::int64_t inserted = 0;
  ASSERT_TRUE(
      db_->InsertProducts({Windowed(1, 10, 120), MakeProduct(2, 10)}, false, &inserted).ok());
  Result<std::vector<Product>> loaded = db_->LoadProducts();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ((*loaded)[0].payment_window_s, 120);
  EXPECT_FALSE((*loaded)[1].payment_window_s.has_value());
  ASSERT_TRUE(db_->InsertProducts({Windowed(2, 10, 30)}, /*overwrite=*/true, &inserted).ok());
  EXPECT_EQ(db_->LoadProducts()->at(1).payment_window_s, 30);

  Order o = Awaiting(1, kT0 + 120'123);
  o.idempotency_key = "k1";
  Persist({o});
  const Order stored = Stored(o.id);
  EXPECT_EQ(stored.pay_by, kT0 + 120'123);
  EXPECT_FALSE(stored.paid_at.has_value());
  EXPECT_FALSE(stored.closed_at.has_value());
  EXPECT_TRUE(stored.payment_ref.empty());
  PayOk(Pays(o, "ref-1", kT0 + 5'007));
  Result<std::optional<Order>> by_key = db_->FindOrderByIdempotencyKey("k1");
  ASSERT_TRUE(by_key.has_value() && by_key->has_value());
  EXPECT_EQ((*by_key)->status, OrderStatus::kPaid);
  EXPECT_EQ((*by_key)->paid_at, kT0 + 5'007);
  EXPECT_EQ((*by_key)->payment_ref, "ref-1");
  EXPECT_EQ(db_->OrdersOfUser(o.user, 5)->front().payment_ref, "ref-1");
  EXPECT_EQ(db_->LoadAllOrders()->front().pay_by, kT0 + 120'123);
}

TEST_F(PgLifecycleTest, PayDecidesStoredOrders) {
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, 100)).ok());
  const UnixMillis due = kT0 + 60'000;
  std::vector<Order> orders;
  for (int n = 1; n <= 5; ++n) orders.push_back(Awaiting(n, due));
  Order no_step = MakeOrder(6, 1, 106, 1);  // no pay_by: no payment step
  orders.push_back(no_step);
  Persist(orders);
  EXPECT_EQ(Sold(1), 6);

  // In time: PAID, and the same ref again answers PAID without a change.
  PaymentDecision d = PayOk(Pays(orders[0], "r1", due - 1));
  EXPECT_EQ(d.outcome, PaymentOutcome::kPaid);
  EXPECT_EQ(d.order.status, OrderStatus::kPaid);
  EXPECT_EQ(d.order.paid_at, due - 1);
  d = PayOk(Pays(orders[0], "r1", due + 5));
  EXPECT_EQ(d.outcome, PaymentOutcome::kPaid);
  EXPECT_EQ(d.order.paid_at, due - 1);
  // Another ref on a paid order: refused, the order keeps the first.
  d = PayOk(Pays(orders[0], "r2", due - 1));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.status, OrderStatus::kPaid);
  EXPECT_EQ(Stored(orders[0].id).payment_ref, "r1");

  // Wrong amount: nothing changes.
  Payment wrong = Pays(orders[1], "r3", due - 1);
  wrong.amount += 1;
  d = PayOk(wrong);
  EXPECT_EQ(d.outcome, PaymentOutcome::kAmountMismatch);
  EXPECT_EQ(Stored(orders[1].id).status, OrderStatus::kConfirmed);

  // Late (received at pay_by): the order expires right here, units given back.
  d = PayOk(Pays(orders[2], "r4", due));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.status, OrderStatus::kExpired);
  EXPECT_EQ(d.order.closed_at, due);
  EXPECT_TRUE(d.order.payment_ref.empty());
  EXPECT_EQ(Sold(1), 5);
  EXPECT_EQ(Sql("SELECT units_returned FROM " + schema_ + ".orders WHERE order_id = '" +
                std::string(orders[2].id.view()) + "'"),
            "f");
  // ... and stays expired for an in-time looking retry.
  d = PayOk(Pays(orders[2], "r4", due - 10));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.status, OrderStatus::kExpired);

  // No payment step; unknown order.
  d = PayOk(Pays(no_step, "r5", kT0));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.status, OrderStatus::kConfirmed);
  d = PayOk(Pays(Awaiting(99, due), "r6", kT0));
  EXPECT_EQ(d.outcome, PaymentOutcome::kNotFound);

  // Cancelled and FAILED orders refuse payments.
  ASSERT_EQ(db_->Cancel(orders[3].id, kT0 + 10)->outcome, CancelOutcome::kCancelled);
  d = PayOk(Pays(orders[3], "r7", kT0 + 20));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.status, OrderStatus::kCancelled);
  ASSERT_TRUE(db_->UpsertProduct(Windowed(2, 0)).ok());
  Order failed = Awaiting(7, due);
  failed.product = 2;
  EXPECT_EQ(Persist({failed}).failed, 1);
  d = PayOk(Pays(failed, "r8", kT0));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.status, OrderStatus::kFailed);
  ExpectSoldMatchesHeldOrders();
}

// A payment received while the order is in flight is decided from the
// in-flight record and applied by the PersistBatch that lands the order.
TEST_F(PgLifecycleTest, PaymentsInFlightAreAppliedWhenTheOrderLands) {
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, 3)).ok());
  const UnixMillis due = kT0 + 60'000;
  std::vector<Order> batch;
  for (int n = 1; n <= 6; ++n) batch.push_back(Awaiting(n, due));
  auto pending = [](Order o) {
    o.status = OrderStatus::kPending;
    return o;
  };
  // In time: recorded; the same ref again too; another ref is refused.
  PaymentDecision d = PayOk(Pays(batch[0], "a", due - 1), pending(batch[0]));
  EXPECT_EQ(d.outcome, PaymentOutcome::kRecorded);
  EXPECT_EQ(d.order.status, OrderStatus::kPending);
  EXPECT_EQ(PayOk(Pays(batch[0], "a", due - 1), pending(batch[0])).outcome,
            PaymentOutcome::kRecorded);
  d = PayOk(Pays(batch[0], "other", due - 1), pending(batch[0]));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.payment_ref, "a");
  // Late, wrong amount, no payment step, nothing in flight: nothing recorded.
  d = PayOk(Pays(batch[1], "b", due), pending(batch[1]));
  EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(d.order.status, OrderStatus::kPending);
  Payment wrong = Pays(batch[2], "c", due - 1);
  wrong.amount = 1;
  EXPECT_EQ(PayOk(wrong, pending(batch[2])).outcome, PaymentOutcome::kAmountMismatch);
  Order no_step = pending(batch[3]);
  no_step.pay_by.reset();
  EXPECT_EQ(PayOk(Pays(batch[3], "d", kT0), no_step).outcome, PaymentOutcome::kWrongStatus);
  EXPECT_EQ(PayOk(Pays(batch[3], "d", kT0)).outcome, PaymentOutcome::kNotFound);
  // batch[5] will be FAILED by the stock guard (3 units): it keeps its ref.
  EXPECT_EQ(PayOk(Pays(batch[5], "f", due - 1), pending(batch[5])).outcome,
            PaymentOutcome::kRecorded);
  EXPECT_EQ(Sql("SELECT count(*) FROM " + schema_ + ".order_payments"), "2");

  PersistSummary s = Persist(batch);
  EXPECT_EQ(s.confirmed, 3);
  EXPECT_EQ(s.failed, 3);
  Order landed = Stored(batch[0].id);
  EXPECT_EQ(landed.status, OrderStatus::kPaid);
  EXPECT_EQ(landed.paid_at, due - 1);
  EXPECT_EQ(landed.payment_ref, "a");
  EXPECT_EQ(Stored(batch[1].id).status, OrderStatus::kConfirmed);
  EXPECT_EQ(Stored(batch[5].id).status, OrderStatus::kFailed);
  EXPECT_EQ(Stored(batch[5].id).payment_ref, "f");
  EXPECT_EQ(Sql("SELECT count(*) FROM " + schema_ + ".order_payments"), "0");
  EXPECT_EQ(Sold(1), 3);
  // Stored now: the same payment answers PAID, as for any stored order.
  EXPECT_EQ(PayOk(Pays(batch[0], "a", due - 1), pending(batch[0])).outcome, PaymentOutcome::kPaid);
  // The late one expires when due; the paid one does not.
  Result<std::int64_t> expired = db_->ExpireDue(due, 100);
  ASSERT_TRUE(expired.has_value()) << expired.error().ToString();
  EXPECT_EQ(*expired, 2);
  EXPECT_EQ(Stored(batch[0].id).status, OrderStatus::kPaid);
  EXPECT_EQ(Stored(batch[1].id).status, OrderStatus::kExpired);
  ExpectSoldMatchesHeldOrders();
}

// Payments racing the PersistBatch that lands their orders: each either is
// recorded before the batch (and applied by it) or finds the order stored.
TEST_F(PgLifecycleTest, PaymentsRacingTheLandingBatchAreNeverLost) {
  constexpr int kOrders = 400;
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, kOrders)).ok());
  const UnixMillis due = kT0 + 60'000;
  std::vector<Order> orders;
  for (int n = 0; n < kOrders; ++n) orders.push_back(Awaiting(n, due));
  std::atomic<int> paid{0}, recorded{0};
  std::thread lander([&] {
    for (int at = 0; at < kOrders; at += 50) {
      std::this_thread::sleep_for(2ms);
      Persist({orders.begin() + at, orders.begin() + at + 50});
    }
  });
  testutil::RunConcurrently(2, kOrders / 2, [&](int i) {
    Order in_flight = orders[static_cast<std::size_t>(i)];
    in_flight.status = OrderStatus::kPending;
    PaymentDecision d = PayOk(Pays(in_flight, "p" + std::to_string(i), due - 1), in_flight);
    if (d.outcome == PaymentOutcome::kPaid) ++paid;
    if (d.outcome == PaymentOutcome::kRecorded) ++recorded;
  });
  lander.join();
  EXPECT_EQ(paid + recorded, kOrders);
  Result<std::vector<Order>> all = db_->LoadAllOrders();
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(all->size(), static_cast<std::size_t>(kOrders));
  for (const Order& o : *all) {
    EXPECT_EQ(o.status, OrderStatus::kPaid) << o.id.view();
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM " + schema_ + ".order_payments"), "0");
  EXPECT_EQ(Sold(1), kOrders);
  std::printf("[ RACE ] %d paid on the stored row, %d recorded in flight\n", paid.load(),
              recorded.load());
}

TEST_F(PgLifecycleTest, CancelClosesOnlyConfirmedOrders) {
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, 2)).ok());
  const Order a = Awaiting(1, kT0 + 60'000), b = Awaiting(2, kT0 + 60'000),
              failed = Awaiting(3, kT0 + 60'000);
  Persist({a, b, failed});
  EXPECT_EQ(Sold(1), 2);
  Result<CancelDecision> d = db_->Cancel(a.id, kT0 + 500);
  ASSERT_TRUE(d.has_value()) << d.error().ToString();
  EXPECT_EQ(d->outcome, CancelOutcome::kCancelled);
  EXPECT_EQ(d->order.status, OrderStatus::kCancelled);
  EXPECT_EQ(d->order.closed_at, kT0 + 500);
  EXPECT_EQ(Sold(1), 1);
  d = db_->Cancel(a.id, kT0 + 600);  // again: no second return of its units
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->outcome, CancelOutcome::kWrongStatus);
  EXPECT_EQ(d->order.closed_at, kT0 + 500);
  EXPECT_EQ(Sold(1), 1);
  EXPECT_EQ(db_->Cancel(failed.id, kT0)->outcome, CancelOutcome::kWrongStatus);
  EXPECT_EQ(db_->Cancel(Id(77), kT0)->outcome, CancelOutcome::kNotFound);
  PayOk(Pays(b, "r", kT0 + 1));
  d = db_->Cancel(b.id, kT0 + 2);
  EXPECT_EQ(d->outcome, CancelOutcome::kWrongStatus);
  EXPECT_EQ(d->order.status, OrderStatus::kPaid);
  // The outbox hands the cancelled order out until give_back says it is done.
  Result<std::vector<Order>> unreturned = db_->LoadUnreturnedClosed();
  ASSERT_TRUE(unreturned.has_value());
  ASSERT_EQ(unreturned->size(), 1u);
  EXPECT_EQ(unreturned->front().id, a.id);
  int calls = 0;
  auto refuse = [&](std::span<const Order> os) {
    ++calls;
    EXPECT_EQ(os.size(), 1u);
    return std::vector<bool>(os.size(), false);
  };
  EXPECT_EQ(*db_->ReturnClosedUnits(10, refuse), 0);
  auto accept = [&](std::span<const Order> os) {
    ++calls;
    return std::vector<bool>(os.size(), true);
  };
  EXPECT_EQ(*db_->ReturnClosedUnits(10, accept), 1);
  EXPECT_EQ(*db_->ReturnClosedUnits(10, accept), 0);  // nothing left: not called
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(db_->LoadUnreturnedClosed()->empty());
  ExpectSoldMatchesHeldOrders();
}

TEST_F(PgLifecycleTest, NextPayByIsTheEarliestConfirmedDeadline) {
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, 100)).ok());
  Result<std::optional<UnixMillis>> next = db_->NextPayBy();
  ASSERT_TRUE(next.has_value()) << next.error().ToString();
  EXPECT_FALSE(next->has_value());
  Persist({Awaiting(1, kT0 + 3000), Awaiting(2, kT0 + 1000), Awaiting(3, kT0 + 2000),
           MakeOrder(4, 1, 9, 1)});
  EXPECT_EQ(*db_->NextPayBy(), kT0 + 1000);
  PayOk(Pays(Awaiting(2, kT0 + 1000), "r", kT0));
  EXPECT_EQ(*db_->NextPayBy(), kT0 + 2000);
  ASSERT_EQ(*db_->ExpireDue(kT0 + 2000, 10), 1);
  EXPECT_EQ(*db_->NextPayBy(), kT0 + 3000);
  ASSERT_EQ(db_->Cancel(Id(1), kT0)->outcome, CancelOutcome::kCancelled);
  EXPECT_FALSE(db_->NextPayBy()->has_value());
  // The closer's scans use the partial index.
  std::string plan;
  for (const std::string& line :
       SqlRows("SET search_path = " + schema_ +
               "; SET enable_seqscan = off; EXPLAIN SELECT min(pay_by) FROM orders WHERE status "
               "= 'CONFIRMED' AND pay_by IS NOT NULL")) {
    plan += line + "\n";
  }
  EXPECT_NE(plan.find("orders_awaiting_payment"), std::string::npos) << plan;
}

TEST_F(PgLifecycleTest, LoadSoldUnitsCountsHeldOrdersOnly) {
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, 5)).ok());
  Persist({Awaiting(1, kT0 + 1000, 7), Awaiting(2, kT0 + 1000, 7), Awaiting(3, kT0 + 1000, 8),
           Awaiting(4, kT0 + 1000, 9), Awaiting(5, kT0 + 1000, 9)});
  PayOk(Pays(Awaiting(1, kT0 + 1000), "r", kT0));                          // user 7: PAID
  ASSERT_EQ(db_->Cancel(Id(2), kT0)->outcome, CancelOutcome::kCancelled);  // user 7: closed
  ASSERT_EQ(db_->Cancel(Id(3), kT0)->outcome, CancelOutcome::kCancelled);  // user 8: none held
  Result<std::vector<SoldUnits>> sold = db_->LoadSoldUnits();
  ASSERT_TRUE(sold.has_value()) << sold.error().ToString();
  ASSERT_EQ(sold->size(), 2u);
  EXPECT_EQ((*sold)[0].user, 7);
  EXPECT_EQ((*sold)[0].units, 1);
  EXPECT_EQ((*sold)[0].latest_order, Id(1));  // the held one, not the cancelled one
  EXPECT_EQ((*sold)[1].user, 9);
  EXPECT_EQ((*sold)[1].units, 2);
  EXPECT_EQ(Sold(1), 3);
  ASSERT_EQ(*db_->ExpireDue(kT0 + 1000, 1), 1);  // one of user 9's two
  sold = db_->LoadSoldUnits();
  ASSERT_TRUE(sold.has_value());
  EXPECT_EQ(sold->back().units, 1);
  EXPECT_EQ(Sold(1), 2);
  Result<OrderCounts> counts = db_->CountOrders();
  ASSERT_TRUE(counts.has_value()) << counts.error().ToString();
  EXPECT_EQ(counts->confirmed, 1);
  EXPECT_EQ(counts->paid, 1);
  EXPECT_EQ(counts->cancelled, 2);
  EXPECT_EQ(counts->expired, 1);
  EXPECT_EQ(counts->failed, 0);
}

// Payments around the deadline while a closer expires due orders: exactly one
// of PAID and EXPIRED wins for each order, and sold follows the winners.
TEST_F(PgLifecycleTest, PayAndExpireRaceAtTheDeadline) {
  constexpr int kOrders = 300;
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, kOrders)).ok());
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const UnixMillis due = now_ms() + 1500;
  std::vector<Order> orders;
  for (int n = 0; n < kOrders; ++n) orders.push_back(Awaiting(n, due));
  Persist(orders);
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> expired{0};
  std::thread closer([&] {
    while (!stop) {
      Result<std::int64_t> n = db_->ExpireDue(now_ms(), 7);
      ASSERT_TRUE(n.has_value()) << n.error().ToString();
      expired += *n;
      if (*n == 0) std::this_thread::sleep_for(1ms);
    }
  });
  // Each order is paid once, within +-300 ms of its deadline (a third of
  // them within +-100 ms): the c-th call of each of the 3 payers at
  // due - 300 ms + c * 6 ms, a pace a loaded 2-core machine keeps.
  constexpr int kPerPayer = kOrders / 3;
  std::vector<PaymentDecision> decisions(kOrders);
  std::vector<UnixMillis> received(kOrders);
  testutil::RunConcurrently(3, kPerPayer, [&](int i) {
    const auto idx = static_cast<std::size_t>(i);
    const UnixMillis at = due - 300 + (i % kPerPayer) * 600 / kPerPayer;
    while (now_ms() < at) std::this_thread::sleep_for(200us);
    received[idx] = now_ms();
    decisions[idx] = PayOk(Pays(orders[idx], "p" + std::to_string(i), received[idx]));
  });
  while (now_ms() < due + 100) std::this_thread::sleep_for(10ms);  // the closer's turn
  stop = true;
  closer.join();
  ASSERT_EQ(*db_->ExpireDue(now_ms(), kOrders), 0);  // the closer left nothing due

  int paid = 0, late = 0;
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const Order o = Stored(orders[i].id);
    const PaymentDecision& d = decisions[i];
    ASSERT_TRUE(o.status == OrderStatus::kPaid || o.status == OrderStatus::kExpired)
        << ToString(o.status);
    if (o.status == OrderStatus::kPaid) {
      ++paid;
      EXPECT_EQ(d.outcome, PaymentOutcome::kPaid);
      EXPECT_LT(received[i], due) << "a late payment won";
      EXPECT_EQ(o.payment_ref, "p" + std::to_string(i));
      EXPECT_FALSE(o.closed_at.has_value());
    } else {
      ++late;
      EXPECT_EQ(d.outcome, PaymentOutcome::kWrongStatus);
      EXPECT_EQ(d.order.status, OrderStatus::kExpired);
      EXPECT_TRUE(o.payment_ref.empty());
      EXPECT_FALSE(o.paid_at.has_value());
    }
  }
  EXPECT_GT(paid, 0);
  EXPECT_GT(late, 0);
  ExpectSoldMatchesHeldOrders();
  EXPECT_EQ(Sold(1), paid);
  EXPECT_EQ(static_cast<int>(db_->LoadUnreturnedClosed()->size()), late);
  std::printf("[ RACE ] %d paid, %d expired (%lld by the closer)\n", paid, late,
              static_cast<long long>(expired.load()));
}

// Two closers at once (two `flashsale consume`): every closed order is
// expired once and handed to give_back exactly once.
TEST_F(PgLifecycleTest, TwoClosersHandOutEachClosedOrderOnce) {
  constexpr int kOrders = 600;
  ASSERT_TRUE(db_->UpsertProduct(Windowed(1, kOrders)).ok());
  ASSERT_TRUE(db_->UpsertProduct(Windowed(2, kOrders)).ok());
  std::vector<Order> orders;
  for (int n = 0; n < kOrders; ++n) {
    Order o = Awaiting(n, kT0 + 1000 + n % 50);
    o.product = 1 + n % 2;
    orders.push_back(o);
  }
  Persist(orders);
  for (int n = 0; n < kOrders; n += 10) {  // some are cancelled meanwhile instead
    ASSERT_EQ(db_->Cancel(Id(n), kT0 + 5)->outcome, CancelOutcome::kCancelled);
  }
  Mutex mu;
  std::map<std::string, int> given;  // order id -> times handed to give_back
  std::atomic<std::int64_t> expired{0}, marked{0};
  testutil::RunConcurrently(2, 1, [&](int) {
    for (int idle = 0; idle < 3;) {
      Result<std::int64_t> e = db_->ExpireDue(kT0 + 2000, 25);
      ASSERT_TRUE(e.has_value()) << e.error().ToString();
      Result<std::int64_t> m = db_->ReturnClosedUnits(20, [&](std::span<const Order> os) {
        {
          MutexLock lock(&mu);
          for (const Order& o : os) {
            EXPECT_TRUE(IsClosed(o.status)) << ToString(o.status);
            ++given[o.id.str()];
          }
        }
        std::this_thread::sleep_for(2ms);  // the stock store's release
        return std::vector<bool>(os.size(), true);
      });
      ASSERT_TRUE(m.has_value()) << m.error().ToString();
      expired += *e;
      marked += *m;
      idle = *e == 0 && *m == 0 ? idle + 1 : 0;
    }
  });
  EXPECT_EQ(expired.load(), kOrders - kOrders / 10);
  EXPECT_EQ(marked.load(), kOrders);
  EXPECT_EQ(given.size(), static_cast<std::size_t>(kOrders));
  for (const auto& [id, times] : given) EXPECT_EQ(times, 1) << id;
  EXPECT_EQ(Sold(1), 0);
  EXPECT_EQ(Sold(2), 0);
  EXPECT_TRUE(db_->LoadUnreturnedClosed()->empty());
}

}  // namespace
}  // namespace flashsale::postgres
