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
#include <thread>
#include <vector>

#include "consumer/order_consumer.hpp"
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

}  // namespace
}  // namespace flashsale::postgres
