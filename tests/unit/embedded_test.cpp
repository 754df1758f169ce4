// embedded_test: the embedded backends against a real SQLite file in a
// temporary directory: the database of record (journal rows, idempotent
// batches, the stock guard, start-up queries), the group-committed journal
// under concurrent hand-offs, the consumer draining it, and MemoryStockStore
// rebuilt from what the database says was sold.
//
// Most tests open the database with synchronous=NORMAL to keep fsyncs out of
// the unit-test budget; one journal test keeps the production default (FULL).

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <filesystem>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/embedded/memory_stock_store.hpp"
#include "backends/embedded/sqlite_database.hpp"
#include "backends/embedded/sqlite_order_journal.hpp"
#include "consumer/order_consumer.hpp"
#include "core/metrics.hpp"
#include "run_concurrently.hpp"
#include "temp_dir.hpp"

namespace flashsale::embedded {
namespace {

using testutil::RunConcurrently;
using testutil::TempDir;

constexpr ProductId kPhone = 10'000'001;
constexpr ProductId kLaptop = 10'000'002;

std::unique_ptr<SqliteDatabase> OpenDb(const TempDir& dir,
                                       JournalSync sync = JournalSync::kNormal) {
  Result<std::unique_ptr<SqliteDatabase>> db =
      SqliteDatabase::Open({dir.File("flashsale.db"), sync});
  EXPECT_TRUE(db) << db.error().ToString();
  return db ? std::move(*db) : nullptr;
}

Product MakeProduct(ProductId id, std::int64_t stock, std::int64_t limit = 1) {
  Product p;
  p.id = id;
  p.price = 1250;
  p.stock = stock;
  p.limit_per_user = limit;
  return p;
}

OrderIdGenerator& Ids() {
  static OrderIdGenerator gen;
  return gen;
}

Order MakeOrder(ProductId product, UserId user, std::int64_t quantity = 1,
                UnixMillis created_at = 1'795'600'800'000) {
  Order o;
  o.id = Ids().Next(created_at);
  o.user = user;
  o.product = product;
  o.quantity = quantity;
  o.price = 1250;
  o.created_at = created_at;
  return o;
}

OrderStatus StatusOf(SqliteDatabase& db, const Order& o) {
  Result<std::optional<Order>> found = db.FindOrder(o.id);
  EXPECT_TRUE(found) << found.error().ToString();
  EXPECT_TRUE(found && found->has_value()) << "no row for " << o.id.view();
  return found && found->has_value() ? (*found)->status : OrderStatus::kPending;
}

std::string JournalFile(const TempDir& dir) {
  return SqliteDatabase::JournalPath(dir.File("flashsale.db"));
}

// Runs `sql` on a connection of its own: a change behind SqliteDatabase's back,
// in the main file or (`file`) the journal's.
void ExecBehindTheBack(const TempDir& dir, const std::string& sql, std::string file = "") {
  if (file.empty()) file = dir.File("flashsale.db");
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &raw), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
      << (err != nullptr ? err : "");
  sqlite3_free(err);
  sqlite3_close(raw);
}

// ----------------------------------------------------------- SqliteDatabase ---

TEST(SqliteDatabase, OpenCreatesTheFileAndItsDirectory) {
  TempDir dir;
  const std::string path = (dir.path() / "nested" / "data" / "flashsale.db").string();
  Result<std::unique_ptr<SqliteDatabase>> db = SqliteDatabase::Open({path});
  ASSERT_TRUE(db) << db.error().ToString();
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ((*db)->path(), path);
  Result<std::vector<Product>> products = (*db)->LoadProducts();
  ASSERT_TRUE(products);
  EXPECT_TRUE(products->empty());
}

TEST(SqliteDatabase, ReadOnlyOpenOfAMissingFileIsNotFound) {
  TempDir dir;
  Result<std::unique_ptr<SqliteDatabase>> db =
      SqliteDatabase::Open({dir.File("missing.db"), JournalSync::kNormal, /*read_only=*/true});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code(), Status::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.File("missing.db")));
}

TEST(SqliteDatabase, ProductsRoundTrip) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  Product p = MakeProduct(kPhone, 100, 3);
  p.starts_at = 1'795'600'800'000;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kLaptop, 5)).ok());
  p.stock = 150;  // replace
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  Result<std::vector<Product>> products = db->LoadProducts();
  ASSERT_TRUE(products);
  ASSERT_EQ(products->size(), 2u);
  EXPECT_EQ((*products)[0].id, kPhone);
  EXPECT_EQ((*products)[0].stock, 150);
  EXPECT_EQ((*products)[0].price, 1250);
  EXPECT_EQ((*products)[0].limit_per_user, 3);
  EXPECT_EQ((*products)[0].starts_at, 1'795'600'800'000);
  EXPECT_FALSE((*products)[0].ends_at.has_value());
  EXPECT_EQ((*products)[1].id, kLaptop);
}

TEST(SqliteDatabase, UpsertProductKeepsTheNewestVersion) {
  // Admin changes persisted out of order (distributed mode: the stock store
  // numbers them) converge to the last one; equal versions replace.
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  Product p = MakeProduct(kPhone, 10);
  p.version = 3;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  Product older = MakeProduct(kPhone, 99);
  older.version = 2;
  ASSERT_TRUE(db->UpsertProduct(older).ok());  // a no-op, not an error
  EXPECT_EQ(db->LoadProducts()->front().stock, 10);
  EXPECT_EQ(db->LoadProducts()->front().version, 3);
  p.stock = 12;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  EXPECT_EQ(db->LoadProducts()->front().stock, 12);
  p.version = 4;
  p.stock = 15;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  EXPECT_EQ(db->LoadProducts()->front().stock, 15);
  EXPECT_EQ(db->LoadProducts()->front().version, 4);
}

TEST(SqliteDatabase, OpenAddsTheVersionColumnToAnOlderProductsTable) {
  TempDir dir;
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("flashsale.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TABLE products (product_id INTEGER PRIMARY KEY, price INTEGER "
                         "NOT NULL, stock INTEGER NOT NULL, starts_at INTEGER, ends_at INTEGER, "
                         "limit_per_user INTEGER NOT NULL DEFAULT 1); INSERT INTO products "
                         "VALUES (7, 100, 4, NULL, NULL, 1)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->LoadProducts()->front().version, 0);
  Product p = MakeProduct(7, 9);
  p.version = 1;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  EXPECT_EQ(db->LoadProducts()->front().stock, 9);
  db.reset();
  EXPECT_TRUE(OpenDb(dir));  // opening again finds the column there
}

TEST(SqliteDatabase, WaitingRoomRoundTrips) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  Product p = MakeProduct(kPhone, 10);
  p.waiting_room = WaitingRoom{.admit_per_s = 50, .pass_ttl_s = 120};
  p.version = 1;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  EXPECT_EQ(db->LoadProducts()->front().waiting_room, p.waiting_room);
  p.waiting_room.reset();  // a PUT without one clears it
  p.version = 2;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  EXPECT_EQ(db->LoadProducts()->front().waiting_room, std::nullopt);
  // InsertProducts (seed) both ways.
  Product laptop = MakeProduct(kLaptop, 3);
  laptop.waiting_room = WaitingRoom{.admit_per_s = kMaxAdmitPerS, .pass_ttl_s = kMaxPassTtlS};
  std::int64_t inserted = 0;
  ASSERT_TRUE(db->InsertProducts({laptop}, false, &inserted).ok());
  EXPECT_EQ(db->LoadProducts()->back().waiting_room, laptop.waiting_room);
  laptop.waiting_room = WaitingRoom{.admit_per_s = 1, .pass_ttl_s = 1};
  ASSERT_TRUE(db->InsertProducts({laptop}, true, &inserted).ok());
  EXPECT_EQ(db->LoadProducts()->back().waiting_room, laptop.waiting_room);
}

// A file from before issue 10 (the issue-9 schema: the waiting room's columns
// missing) is read with no waiting room by a read-only open (audit), and gets
// the columns in place at the next read-write open.
TEST(SqliteDatabase, OpenAddsTheWaitingRoomColumnsToAnOlderFile) {
  TempDir dir;
  {
    auto db = OpenDb(dir);
    ASSERT_TRUE(db);
    Product p = MakeProduct(kPhone, 4);
    p.payment_window_s = 900;
    ASSERT_TRUE(db->UpsertProduct(p).ok());
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("flashsale.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "ALTER TABLE products DROP COLUMN waiting_room_admit_per_s; "
                         "ALTER TABLE products DROP COLUMN waiting_room_pass_ttl_s",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);
  {
    Result<std::unique_ptr<SqliteDatabase>> ro =
        SqliteDatabase::Open({.path = dir.File("flashsale.db"), .read_only = true});
    ASSERT_TRUE(ro) << ro.error().ToString();
    Result<std::vector<Product>> products = (*ro)->LoadProducts();
    ASSERT_TRUE(products) << products.error().ToString();
    ASSERT_EQ(products->size(), 1u);
    EXPECT_EQ(products->front().payment_window_s, 900);
    EXPECT_EQ(products->front().waiting_room, std::nullopt);
  }
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->LoadProducts()->front().waiting_room, std::nullopt);
  Product p = MakeProduct(kPhone, 4);
  p.payment_window_s = 900;
  p.waiting_room = WaitingRoom{.admit_per_s = 7, .pass_ttl_s = 30};
  p.version = 1;
  ASSERT_TRUE(db->UpsertProduct(p).ok());
  EXPECT_EQ(db->LoadProducts()->front().waiting_room, p.waiting_room);
  EXPECT_EQ(db->LoadProducts()->front().payment_window_s, 900);
  db.reset();
  EXPECT_TRUE(OpenDb(dir));  // opening again finds the columns there
}

TEST(SqliteDatabase, InsertProductsNeverOverwritesUnlessAsked) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  std::int64_t inserted = 0;
  ASSERT_TRUE(db->InsertProducts({MakeProduct(kPhone, 10)}, false, &inserted).ok());
  EXPECT_EQ(inserted, 1);
  ASSERT_TRUE(
      db->InsertProducts({MakeProduct(kPhone, 99), MakeProduct(kLaptop, 1)}, false, &inserted)
          .ok());
  EXPECT_EQ(inserted, 1);  // only the laptop
  EXPECT_EQ(db->LoadProducts()->front().stock, 10);
  ASSERT_TRUE(db->InsertProducts({MakeProduct(kPhone, 99)}, true, &inserted).ok());
  EXPECT_EQ(db->LoadProducts()->front().stock, 99);
}

// Regression: the checkpointer connection had never read the database, so it
// did not know the file was in WAL mode and every checkpoint was a silent
// no-op; the WAL grew without bound (1.4 GB in 25 s of load).
TEST(SqliteDatabase, CheckpointCopiesTheWalIntoTheDatabaseFile) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 1000)).ok());
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<Order> orders;
    for (int i = 0; i < 50; ++i) orders.push_back(MakeOrder(kPhone, batch * 50 + i));
    ASSERT_TRUE(db->AppendPending(orders).ok());
  }
  Result<std::int64_t> copied = db->Checkpoint();
  ASSERT_TRUE(copied) << copied.error().ToString();
  EXPECT_GT(*copied, 0) << "checkpoint copied no WAL frames";
  EXPECT_GT(std::filesystem::file_size(dir.File("flashsale.db")), 4096u);
}

TEST(SqliteDatabase, AppendPendingThenPersistBatchConfirms) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 10)).ok());
  std::vector<Order> orders = {MakeOrder(kPhone, 1), MakeOrder(kPhone, 2, 2)};
  orders[1].idempotency_key = "retry-me";
  ASSERT_TRUE(db->AppendPending(orders).ok());

  EXPECT_EQ(StatusOf(*db, orders[0]), OrderStatus::kPending);
  Result<std::vector<Order>> pending = db->LoadPending();
  ASSERT_TRUE(pending);
  EXPECT_EQ(pending->size(), 2u);

  Result<PersistSummary> summary = db->PersistBatch(orders);
  ASSERT_TRUE(summary) << summary.error().ToString();
  EXPECT_EQ(summary->confirmed, 2);
  EXPECT_EQ(summary->failed, 0);
  EXPECT_EQ(summary->duplicates, 0);
  EXPECT_EQ(StatusOf(*db, orders[0]), OrderStatus::kConfirmed);
  EXPECT_EQ(StatusOf(*db, orders[1]), OrderStatus::kConfirmed);
  EXPECT_TRUE(db->LoadPending()->empty());

  // Every column survives the trip.
  Result<std::optional<Order>> found = db->FindOrder(orders[1].id);
  ASSERT_TRUE(found && found->has_value());
  const Order& o = **found;
  EXPECT_EQ(o.id, orders[1].id);
  EXPECT_EQ(o.user, 2);
  EXPECT_EQ(o.product, kPhone);
  EXPECT_EQ(o.quantity, 2);
  EXPECT_EQ(o.price, 1250);
  EXPECT_EQ(o.created_at, orders[1].created_at);
  EXPECT_EQ(o.idempotency_key, "retry-me");
  EXPECT_EQ((*db->FindOrder(orders[0].id))->idempotency_key, "");
}

// Counts the rows of `table` on a connection of its own (order_journal: in
// the journal's file).
std::int64_t RowsBehindTheBack(const TempDir& dir, const std::string& table) {
  sqlite3* raw = nullptr;
  const std::string file = table == "order_journal" ? JournalFile(dir) : dir.File("flashsale.db");
  EXPECT_EQ(sqlite3_open(file.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  const std::string sql = "SELECT count(*) FROM " + table;
  EXPECT_EQ(sqlite3_prepare_v2(raw, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
  std::int64_t n = -1;
  if (st != nullptr && sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(raw);
  return n;
}

// The ack path writes the journal only (no secondary index to maintain); the
// consumer's PersistBatch moves each order into orders in one transaction, so
// an order is in exactly one of the two tables, and readers see it throughout.
TEST(SqliteDatabase, JournalledOrdersMoveIntoOrdersAndAreReadableOnBothSides) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 10, 5)).ok());
  std::vector<Order> orders = {MakeOrder(kPhone, 7, 1, 1'000), MakeOrder(kPhone, 7, 2, 2'000),
                               MakeOrder(kPhone, 8, 1, 3'000)};
  orders[1].idempotency_key = "k-1";
  ASSERT_TRUE(db->AppendPending(orders).ok());
  EXPECT_EQ(RowsBehindTheBack(dir, "order_journal"), 3);
  EXPECT_EQ(RowsBehindTheBack(dir, "orders"), 0) << "the ack path wrote the indexed table";

  auto expect_readable = [&](OrderStatus want, const char* when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(StatusOf(*db, orders[0]), want);
    Result<std::vector<Order>> mine = db->OrdersOfUser(7, 10);
    ASSERT_TRUE(mine) << mine.error().ToString();
    ASSERT_EQ(mine->size(), 2u);
    EXPECT_EQ(mine->front().id, orders[1].id);  // newest first
    Result<std::optional<Order>> keyed = db->FindOrderByIdempotencyKey("k-1");
    ASSERT_TRUE(keyed && keyed->has_value());
    EXPECT_EQ((*keyed)->id, orders[1].id);
    Result<std::vector<Order>> since = db->LoadKeyedOrders(0);
    ASSERT_TRUE(since);
    EXPECT_EQ(since->size(), 1u);
    Result<std::vector<SoldUnits>> sold = db->LoadSoldUnits();
    ASSERT_TRUE(sold);
    ASSERT_EQ(sold->size(), 2u);
    std::int64_t units = 0;
    for (const SoldUnits& s : *sold) units += s.units;
    EXPECT_EQ(units, 4);
    EXPECT_EQ(db->LoadAllOrders()->size(), 3u);
  };
  expect_readable(OrderStatus::kPending, "in the journal");
  EXPECT_EQ(db->LoadPending()->size(), 3u);

  Result<PersistSummary> summary = db->PersistBatch(orders);
  ASSERT_TRUE(summary) << summary.error().ToString();
  EXPECT_EQ(summary->confirmed, 3);
  EXPECT_EQ(RowsBehindTheBack(dir, "order_journal"), 0);
  EXPECT_EQ(RowsBehindTheBack(dir, "orders"), 3);
  expect_readable(OrderStatus::kConfirmed, "moved into orders");
  EXPECT_TRUE(db->LoadPending()->empty());

  // A replay of the batch (a crash before the consumer's progress was kept)
  // changes nothing.
  summary = db->PersistBatch(orders);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->duplicates, 3);
  expect_readable(OrderStatus::kConfirmed, "after a replay");
}

// The start-up rebuild streams every held order once: journal rows and
// settled ones, FAILED left out, and an order in both files (a crash between
// the settle and its journal delete) counted once.
TEST(SqliteDatabase, ForEachHeldOrderStreamsEachHeldOrderOnce) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 3, 5)).ok());
  const std::vector<Order> settled = {MakeOrder(kPhone, 1, 2), MakeOrder(kPhone, 2, 1),
                                      MakeOrder(kPhone, 3, 1)};  // the last one is FAILED
  ASSERT_TRUE(db->AppendPending(settled).ok());
  ASSERT_EQ(db->PersistBatch(settled)->failed, 1);
  const Order pending = MakeOrder(kPhone, 1, 1);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{pending}).ok());
  // Settled, but its journal delete was lost.
  ExecBehindTheBack(dir,
                    "INSERT INTO order_journal(order_id, user_id, product_id, quantity, price, "
                    "created_at, idempotency_key) VALUES ('" +
                        settled[0].id.str() + "', 1, " + std::to_string(kPhone) +
                        ", 2, 1250, 5, NULL)",
                    JournalFile(dir));
  std::map<std::string, std::int64_t> units_by_order;
  Result<std::int64_t> rows = db->ForEachHeldOrder([&](const SoldUnits& s) {
    EXPECT_EQ(s.product, kPhone);
    units_by_order[s.latest_order.str()] += s.units;
  });
  ASSERT_TRUE(rows) << rows.error().ToString();
  EXPECT_EQ(*rows, 3);
  EXPECT_EQ(units_by_order,
            (std::map<std::string, std::int64_t>{
                {settled[0].id.str(), 2}, {settled[1].id.str(), 1}, {pending.id.str(), 1}}));
  // The consumer, given the leftover row again, only deletes it.
  EXPECT_EQ(db->PersistBatch(std::vector<Order>{settled[0]})->duplicates, 1);
  EXPECT_EQ(RowsBehindTheBack(dir, "order_journal"), 1);  // `pending` only
}

TEST(SqliteDatabase, AppendPendingOfAnIdAlreadySettledIsNotDelivered) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 10)).ok());
  const Order first = MakeOrder(kPhone, 1);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{first}).ok());
  ASSERT_TRUE(db->PersistBatch(std::vector<Order>{first}));
  const std::vector<Order> batch = {MakeOrder(kPhone, 2), first};
  const Status s = db->AppendPending(batch);
  EXPECT_TRUE(s.IsNotDelivered()) << s.ToString();
  EXPECT_EQ(RowsBehindTheBack(dir, "order_journal"), 0) << "the group was not rolled back";
}

// A database written before the journal existed keeps its PENDING orders in
// orders: Open() moves them into the journal once, so start-up finds them.
TEST(SqliteDatabase, OpenMovesPendingOrdersOfAnOlderDatabaseIntoTheJournal) {
  TempDir dir;
  const Order pending = MakeOrder(kPhone, 1);
  const Order confirmed = MakeOrder(kPhone, 2);
  ExecBehindTheBack(
      dir,
      "CREATE TABLE orders (order_id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, product_id "
      "INTEGER NOT NULL, quantity INTEGER NOT NULL, price INTEGER NOT NULL, status TEXT NOT NULL, "
      "created_at INTEGER NOT NULL, idempotency_key TEXT) WITHOUT ROWID; "
      "INSERT INTO orders VALUES ('" +
          pending.id.str() + "', 1, " + std::to_string(kPhone) +
          ", 1, 1250, 'PENDING', 5, 'key-p'), ('" + confirmed.id.str() + "', 2, " +
          std::to_string(kPhone) + ", 1, 1250, 'CONFIRMED', 6, NULL)");
  {
    // A read-only open (audit) of the old file reads it as it is.
    Result<std::unique_ptr<SqliteDatabase>> ro =
        SqliteDatabase::Open({dir.File("flashsale.db"), JournalSync::kNormal, true});
    ASSERT_TRUE(ro) << ro.error().ToString();
    Result<std::vector<Order>> all = (*ro)->LoadAllOrders();
    ASSERT_TRUE(all) << all.error().ToString();
    EXPECT_EQ(all->size(), 2u);
    EXPECT_EQ((*ro)->LoadPending()->size(), 1u);
  }
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(RowsBehindTheBack(dir, "order_journal"), 1);
  EXPECT_EQ(RowsBehindTheBack(dir, "orders"), 1);
  Result<std::vector<Order>> loaded = db->LoadPending();
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(loaded->front().id, pending.id);
  EXPECT_EQ(loaded->front().idempotency_key, "key-p");
  EXPECT_EQ(StatusOf(*db, confirmed), OrderStatus::kConfirmed);
  db.reset();
  // Once: a second open finds nothing to move (and does not scan orders).
  db = OpenDb(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->LoadPending()->size(), 1u);
  EXPECT_EQ(db->LoadAllOrders()->size(), 2u);
}

// What BeginReadSnapshot relies on: in a read transaction, a statement that
// reads only the attached journal fixes the journal's snapshot and not the
// main file's, which is taken by the first statement that reads it. So a
// settle + journal delete racing a reader can never hide an order from it.
TEST(SqliteDatabase, AReadSnapshotTakesTheJournalBeforeTheMainFile) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 10)).ok());
  const Order order = MakeOrder(kPhone, 1);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{order}).ok());
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("flashsale.db").c_str(), &reader), SQLITE_OK);
  const std::string attach = "ATTACH '" + JournalFile(dir) + "' AS j";
  ASSERT_EQ(sqlite3_exec(reader, attach.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(reader, SqliteDatabase::OrdersViewSql().c_str(), nullptr, nullptr, nullptr),
      SQLITE_OK);
  auto count = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(reader, sql, -1, &st, nullptr), SQLITE_OK) << sql;
    std::int64_t n = -1;
    if (st != nullptr && sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
  };
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(count("SELECT count(*) FROM j.order_journal"), 1);  // journal snapshot
  // The consumer settles the order and deletes its journal row meanwhile.
  ASSERT_TRUE(db->PersistBatch(std::vector<Order>{order}));
  EXPECT_EQ(RowsBehindTheBack(dir, "order_journal"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM main.orders"), 1) << "main snapshot taken too early";
  EXPECT_EQ(count("SELECT count(*) FROM j.order_journal"), 1) << "journal snapshot moved";
  EXPECT_EQ(count("SELECT count(*) FROM all_orders"), 1) << "shown twice or not at all";
  ASSERT_EQ(sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(reader);
}

// Readers of the view must use the indexes of orders, not scan it: a scan is
// invisible in a test database and costs seconds at ten million orders.
TEST(SqliteDatabase, ReadsOfTheOrdersViewUseTheIndexes) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("flashsale.db").c_str(), &raw), SQLITE_OK);
  const std::string attach = "ATTACH '" + JournalFile(dir) + "' AS j";
  ASSERT_EQ(sqlite3_exec(raw, attach.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, SqliteDatabase::OrdersViewSql().c_str(), nullptr, nullptr, nullptr),
            SQLITE_OK);
  auto plan = [&](const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    const std::string explain = "EXPLAIN QUERY PLAN " + sql;
    EXPECT_EQ(sqlite3_prepare_v2(raw, explain.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    std::string out;
    while (st != nullptr && sqlite3_step(st) == SQLITE_ROW) {
      out += reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
      out += "\n";
    }
    sqlite3_finalize(st);
    return out;
  };
  for (const std::string where :
       {"order_id = 'x'", "user_id = 7 ORDER BY created_at DESC, order_id DESC LIMIT 10",
        "idempotency_key = 'k' ORDER BY created_at, order_id LIMIT 1"}) {
    const std::string p = plan("SELECT * FROM all_orders WHERE " + where);
    EXPECT_EQ(p.find("SCAN main.orders"), std::string::npos) << where << "\n" << p;
    EXPECT_EQ(p.find("SCAN settled"), std::string::npos) << where << "\n" << p;
  }
  sqlite3_close(raw);
}

TEST(SqliteDatabase, PersistBatchWithoutAJournalRowInsertsIt) {
  // Distributed mode: orders come from Kafka, never journalled here.
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 10)).ok());
  const std::vector<Order> orders = {MakeOrder(kPhone, 1)};
  Result<PersistSummary> summary = db->PersistBatch(orders);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->confirmed, 1);
  EXPECT_EQ(StatusOf(*db, orders[0]), OrderStatus::kConfirmed);
}

TEST(SqliteDatabase, PersistBatchIsIdempotent) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 3)).ok());
  std::vector<Order> orders = {MakeOrder(kPhone, 1), MakeOrder(kPhone, 2), MakeOrder(kPhone, 3)};
  ASSERT_TRUE(db->AppendPending(orders).ok());
  ASSERT_EQ(db->PersistBatch(orders)->confirmed, 3);

  // A redelivered batch (consumer crashed before committing its offset) and a
  // batch with a duplicate inside change nothing, and do not eat stock.
  Result<PersistSummary> again = db->PersistBatch(orders);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->confirmed, 0);
  EXPECT_EQ(again->failed, 0);
  EXPECT_EQ(again->duplicates, 3);
  const std::vector<Order> twice = {orders[0], orders[0]};
  Result<PersistSummary> dup = db->PersistBatch(twice);
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->duplicates, 2);
  for (const Order& o : orders) EXPECT_EQ(StatusOf(*db, o), OrderStatus::kConfirmed);
  Result<std::vector<Order>> all = db->LoadAllOrders();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 3u);
}

TEST(SqliteDatabase, StockGuardStoresFailedWhenAnOrderWouldExceedStock) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 3, 5)).ok());
  // 2 + 1 fit; the next 1 does not; a later, smaller order still cannot fit.
  std::vector<Order> orders = {MakeOrder(kPhone, 1, 2), MakeOrder(kPhone, 2, 1),
                               MakeOrder(kPhone, 3, 1), MakeOrder(kLaptop, 4, 1)};
  ASSERT_TRUE(db->AppendPending(orders).ok());
  Result<PersistSummary> summary = db->PersistBatch(orders);
  ASSERT_TRUE(summary) << summary.error().ToString();
  EXPECT_EQ(summary->confirmed, 2);
  EXPECT_EQ(summary->failed, 1);  // over stock
  // A product the database does not know: reported for the dead-letter queue, not decided.
  EXPECT_EQ(summary->unknown_product, std::vector<std::size_t>{3});
  EXPECT_EQ(StatusOf(*db, orders[0]), OrderStatus::kConfirmed);
  EXPECT_EQ(StatusOf(*db, orders[1]), OrderStatus::kConfirmed);
  EXPECT_EQ(StatusOf(*db, orders[2]), OrderStatus::kFailed);
  EXPECT_EQ(StatusOf(*db, orders[3]), OrderStatus::kPending);

  // The guard counts across batches too, and a FAILED order stays FAILED.
  const std::vector<Order> later = {MakeOrder(kPhone, 5, 1)};
  EXPECT_EQ(db->PersistBatch(later)->failed, 1);
  EXPECT_EQ(db->PersistBatch(orders)->duplicates, 3);
  // A restock makes room for new orders.
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 4, 5)).ok());
  const std::vector<Order> after_restock = {MakeOrder(kPhone, 6, 1)};
  EXPECT_EQ(db->PersistBatch(after_restock)->confirmed, 1);
}

// The guard's CONFIRMED units come from product_sales, kept by each settle; a
// database from before that table (user_version 1) has it filled from its
// orders at Open, or the guard would start from zero and confirm over stock.
TEST(SqliteDatabase, StockGuardOfAnOlderDatabaseCountsItsConfirmedOrders) {
  TempDir dir;
  const Order a = MakeOrder(kPhone, 1);
  const Order b = MakeOrder(kPhone, 2);
  {
    auto db = OpenDb(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 3, 5)).ok());
  }
  ExecBehindTheBack(dir,
                    "INSERT INTO orders(order_id, user_id, product_id, quantity, price, "
                    "status, created_at, idempotency_key) VALUES ('" +
                        a.id.str() + "', 1, " + std::to_string(kPhone) +
                        ", 1, 1250, 'CONFIRMED', 5, NULL), ('" + b.id.str() + "', 2, " +
                        std::to_string(kPhone) +
                        ", 1, 1250, 'CONFIRMED', 6, NULL); DELETE FROM product_sales; "
                        "PRAGMA user_version = 1");
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  const std::vector<Order> more = {MakeOrder(kPhone, 3), MakeOrder(kPhone, 4)};
  Result<PersistSummary> summary = db->PersistBatch(more);
  ASSERT_TRUE(summary) << summary.error().ToString();
  EXPECT_EQ(summary->confirmed, 1);
  EXPECT_EQ(summary->failed, 1) << "the guard did not count the older orders";
  db.reset();
  // Kept by the settle: a reopen (no upgrade now) still counts 3.
  db = OpenDb(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->PersistBatch(std::vector<Order>{MakeOrder(kPhone, 5)})->failed, 1);
}

TEST(SqliteDatabase, StockGuardSurvivesAReopen) {
  TempDir dir;
  std::vector<Order> orders = {MakeOrder(kPhone, 1), MakeOrder(kPhone, 2)};
  {
    auto db = OpenDb(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 2)).ok());
    ASSERT_EQ(db->PersistBatch(orders)->confirmed, 2);
  }
  auto db = OpenDb(dir);  // the guard is rebuilt from the rows
  ASSERT_TRUE(db);
  const std::vector<Order> one_more = {MakeOrder(kPhone, 3)};
  EXPECT_EQ(db->PersistBatch(one_more)->failed, 1);
}

TEST(SqliteDatabase, LoadSoldUnitsExcludesFailed) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 3, 5)).ok());
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kLaptop, 10, 5)).ok());
  const Order a1 = MakeOrder(kPhone, 1, 2, 1'000);
  const Order a2 = MakeOrder(kPhone, 1, 1, 2'000);        // user 1's latest
  const Order failed = MakeOrder(kPhone, 2, 1, 3'000);    // over stock: FAILED
  const Order pending = MakeOrder(kLaptop, 2, 1, 4'000);  // journalled, not yet persisted
  const std::vector<Order> batch = {a1, a2, failed};
  ASSERT_TRUE(db->AppendPending(batch).ok());
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{pending}).ok());
  Result<PersistSummary> summary = db->PersistBatch(batch);
  ASSERT_TRUE(summary);
  ASSERT_EQ(summary->failed, 1);

  Result<std::vector<SoldUnits>> sold = db->LoadSoldUnits();
  ASSERT_TRUE(sold) << sold.error().ToString();
  std::map<std::pair<ProductId, UserId>, SoldUnits> by_key;
  for (const SoldUnits& s : *sold) by_key[{s.product, s.user}] = s;
  ASSERT_EQ(by_key.size(), 2u);  // user 2's FAILED phone order is not a sale
  const SoldUnits& phone_1 = by_key[std::make_pair(kPhone, UserId{1})];
  EXPECT_EQ(phone_1.units, 3);
  EXPECT_EQ(phone_1.latest_order, a2.id);
  EXPECT_EQ(by_key[std::make_pair(kLaptop, UserId{2})].units, 1);  // PENDING counts as sold
  EXPECT_EQ(by_key.count(std::make_pair(kPhone, UserId{2})), 0u);
}

TEST(SqliteDatabase, OrdersOfUserNewestFirst) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  std::vector<Order> orders = {MakeOrder(kPhone, 7, 1, 1'000), MakeOrder(kLaptop, 7, 1, 3'000),
                               MakeOrder(kPhone, 8, 1, 2'000), MakeOrder(kPhone, 7, 1, 2'000)};
  ASSERT_TRUE(db->AppendPending(orders).ok());
  Result<std::vector<Order>> mine = db->OrdersOfUser(7, 100);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 3u);
  EXPECT_EQ((*mine)[0].id, orders[1].id);
  EXPECT_EQ((*mine)[1].id, orders[3].id);
  EXPECT_EQ((*mine)[2].id, orders[0].id);
  EXPECT_EQ(db->OrdersOfUser(7, 1)->size(), 1u);
  EXPECT_TRUE(db->OrdersOfUser(9, 100)->empty());
  Result<std::optional<Order>> none = db->FindOrder(Ids().Next(1));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST(SqliteDatabase, AppendPendingOfADuplicateIdIsNotDeliveredAndWritesNothing) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  const Order first = MakeOrder(kPhone, 1);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{first}).ok());
  const std::vector<Order> batch = {MakeOrder(kPhone, 2), first};
  const Status s = db->AppendPending(batch);
  EXPECT_TRUE(s.IsNotDelivered()) << s.ToString();
  // The whole group was rolled back: the new order is not there.
  Result<std::optional<Order>> found = db->FindOrder(batch[0].id);
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
}

TEST(SqliteDatabase, LoadKeyedOrdersSince) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  Order old_keyed = MakeOrder(kPhone, 1, 1, 1'000);
  old_keyed.idempotency_key = "old";
  Order new_keyed = MakeOrder(kPhone, 2, 1, 5'000);
  new_keyed.idempotency_key = "new";
  const Order unkeyed = MakeOrder(kPhone, 3, 1, 5'000);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{old_keyed, new_keyed, unkeyed}).ok());
  Result<std::vector<Order>> keyed = db->LoadKeyedOrders(2'000);
  ASSERT_TRUE(keyed);
  ASSERT_EQ(keyed->size(), 1u);
  EXPECT_EQ(keyed->front().idempotency_key, "new");
}

// Rows written behind our back that do not parse are errors naming the row
// (table, key, column), never an empty id, a 0 or a PENDING order.
TEST(SqliteDatabase, ACorruptOrderRowIsAnErrorNamingTheRow) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 10)).ok());
  const Order good = MakeOrder(kPhone, 1);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{good}).ok());
  ASSERT_TRUE(db->PersistBatch(std::vector<Order>{good}));  // moved into orders
  ExecBehindTheBack(
      dir, "UPDATE orders SET status = 'SHIPPED' WHERE order_id = '" + good.id.str() + "'");
  Result<std::optional<Order>> found = db->FindOrder(good.id);
  ASSERT_FALSE(found) << "status SHIPPED was read as " << ToString((*found)->status);
  const std::string why = found.error().message();
  EXPECT_NE(why.find("orders"), std::string::npos) << why;
  EXPECT_NE(why.find(good.id.str()), std::string::npos) << why;
  EXPECT_NE(why.find("status"), std::string::npos) << why;
  EXPECT_NE(why.find("SHIPPED"), std::string::npos) << why;

  // PENDING orders are read from the journal.
  const Order journalled = MakeOrder(kPhone, 1);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{journalled}).ok());
  ExecBehindTheBack(dir, "UPDATE orders SET status = 'PENDING'");
  ExecBehindTheBack(dir, "UPDATE order_journal SET quantity = 'lots'", JournalFile(dir));
  Result<std::vector<Order>> pending = db->LoadPending();  // start-up reads these
  ASSERT_FALSE(pending) << "quantity 'lots' was read as " << pending->front().quantity;
  EXPECT_NE(pending.error().message().find("quantity"), std::string::npos)
      << pending.error().message();

  ExecBehindTheBack(dir, "UPDATE order_journal SET quantity = 1", JournalFile(dir));
  ExecBehindTheBack(dir, "UPDATE orders SET quantity = 1, order_id = 'not-an-order-id'");
  Result<std::vector<Order>> mine = db->OrdersOfUser(1, 10);
  ASSERT_FALSE(mine) << "a corrupt order id was read as '" << mine->front().id.view() << "'";
  EXPECT_NE(mine.error().message().find("not-an-order-id"), std::string::npos)
      << mine.error().message();
  Result<std::vector<SoldUnits>> sold = db->LoadSoldUnits();  // max(order_id)
  EXPECT_FALSE(sold);
}

// -------------------------------------------------------- SqliteOrderJournal ---

void ExpectJournalGroupCommits(JournalSync sync, int threads, int per_thread) {
  TempDir dir;
  auto db = OpenDb(dir, sync);
  ASSERT_TRUE(db);
  JournalOrderSource source;
  std::atomic<int> ok{0};
  std::atomic<int> not_ok{0};
  std::vector<std::vector<Order>> sent(static_cast<std::size_t>(threads));
  {
    SqliteOrderJournal journal(*db, source);
    RunConcurrently(threads, per_thread, [&](int i) {
      Order o = MakeOrder(kPhone, i);
      sent[static_cast<std::size_t>(i / per_thread)].push_back(o);
      journal.HandOff(std::move(o), [&](const Status& s) {
        if (s.ok()) {
          ++ok;
        } else {
          ++not_ok;
          ADD_FAILURE() << s.ToString();
        }
      });
    });
    journal.Flush();
    // Answered means committed: every callback ran by the time Flush returns.
    EXPECT_EQ(ok.load(), threads * per_thread);
    EXPECT_EQ(not_ok.load(), 0);
  }  // the journal stops here

  std::set<std::string> expected;
  for (const auto& v : sent) {
    for (const Order& o : v) expected.insert(o.id.str());
  }
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(threads * per_thread));

  // Every row is in the database, PENDING.
  Result<std::vector<Order>> rows = db->LoadAllOrders();
  ASSERT_TRUE(rows);
  std::set<std::string> stored;
  for (const Order& o : *rows) {
    stored.insert(o.id.str());
    EXPECT_EQ(o.status, OrderStatus::kPending);
  }
  EXPECT_EQ(stored, expected);

  // And the consumer's view yields each exactly once.
  EXPECT_EQ(source.Lag(), static_cast<std::int64_t>(expected.size()));
  std::multiset<std::string> polled;
  for (;;) {
    Result<std::vector<Order>> batch = source.Poll(100, 0);
    ASSERT_TRUE(batch);
    if (batch->empty()) break;
    EXPECT_LE(batch->size(), 100u);
    for (const Order& o : *batch) polled.insert(o.id.str());
  }
  EXPECT_EQ(polled.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(polled.begin(), polled.end()), expected);
}

TEST(SqliteOrderJournal, GroupCommitsOrdersFrom8Threads) {
  ExpectJournalGroupCommits(JournalSync::kNormal, 8, 250);
}

TEST(SqliteOrderJournal, GroupCommitsWithFullSync) {
  // The production default: one fsync per group, so still quick.
  ExpectJournalGroupCommits(JournalSync::kFull, 8, 50);
}

TEST(SqliteOrderJournal, AnswersOnlyAfterTheCommit) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  JournalOrderSource source;
  SqliteOrderJournal journal(*db, source);
  const Order o = MakeOrder(kPhone, 1);
  std::atomic<bool> row_was_there{false};
  SqliteDatabase* raw = db.get();
  journal.HandOff(o, [&, raw](const Status& s) {
    ASSERT_TRUE(s.ok()) << s.ToString();
    Result<std::optional<Order>> found = raw->FindOrder(o.id);
    row_was_there = found && found->has_value();
  });
  journal.Flush();
  EXPECT_TRUE(row_was_there.load());
}

TEST(SqliteOrderJournal, ACallbackThatThrowsIsCountedAndTheJournalKeepsAnswering) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  JournalOrderSource source;
  SqliteOrderJournal journal(*db, source);
  const std::int64_t errors_before = InternalErrors().Value();
  bool later_answered = false;
  // Both in one group: the second is answered although the first threw.
  journal.HandOff(MakeOrder(kPhone, 1),
                  [](const Status&) { throw std::runtime_error("bug in a callback"); });
  journal.HandOff(MakeOrder(kPhone, 2), [&](const Status& s) { later_answered = s.ok(); });
  journal.Flush();
  EXPECT_TRUE(later_answered);
  EXPECT_EQ(InternalErrors().Value(), errors_before + 1);
  // And the journal thread is still there for the next group.
  Status next = Status::Unknown("not answered");
  journal.HandOff(MakeOrder(kPhone, 3), [&](const Status& s) { next = s; });
  journal.Flush();
  EXPECT_TRUE(next.ok()) << next.ToString();
  EXPECT_EQ(source.Lag(), 3);  // every committed order still goes to the consumer
}

TEST(SqliteOrderJournal, HandOffAfterStopIsNotDelivered) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  JournalOrderSource source;
  SqliteOrderJournal journal(*db, source);
  journal.Stop();
  Status answer = Status::Ok();
  bool called = false;
  journal.HandOff(MakeOrder(kPhone, 1), [&](const Status& s) {
    answer = s;
    called = true;
  });
  EXPECT_TRUE(called);  // answered inline
  EXPECT_TRUE(answer.IsNotDelivered()) << answer.ToString();
  EXPECT_TRUE(db->LoadAllOrders()->empty());
  journal.Stop();  // idempotent
}

TEST(SqliteOrderJournal, ARefusedGroupIsNotDeliveredAndNotQueuedForTheConsumer) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  const Order taken = MakeOrder(kPhone, 1);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{taken}).ok());
  JournalOrderSource source;
  SqliteOrderJournal journal(*db, source);
  Status answer;
  journal.HandOff(taken, [&](const Status& s) { answer = s; });  // primary key clash
  journal.Flush();
  EXPECT_TRUE(answer.IsNotDelivered()) << answer.ToString();
  EXPECT_EQ(source.Lag(), 0);
}

// --------------------------------------------------------- JournalOrderSource ---

TEST(JournalOrderSource, PollWaitsAndWakeReturnsEarly) {
  JournalOrderSource source;
  const auto started = std::chrono::steady_clock::now();
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    source.Wake();
  });
  Result<std::vector<Order>> polled = source.Poll(10, /*wait_ms=*/10'000);
  waker.join();
  ASSERT_TRUE(polled);
  EXPECT_TRUE(polled->empty());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));

  std::vector<Order> primed = {MakeOrder(kPhone, 1), MakeOrder(kPhone, 2), MakeOrder(kPhone, 3)};
  const OrderId first = primed[0].id;
  source.Prime(primed);
  Result<std::vector<Order>> two = source.Poll(2, 0);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ(two->front().id, first);  // in order
  EXPECT_EQ(source.Lag(), 1);
}

// ------------------------------------------------------------- OrderConsumer ---

TEST(OrderConsumer, DrainsASourceIntoTheDatabase) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 1000)).ok());
  std::vector<Order> orders;
  for (UserId u = 0; u < 250; ++u) orders.push_back(MakeOrder(kPhone, u));
  ASSERT_TRUE(db->AppendPending(orders).ok());
  JournalOrderSource source;
  source.Prime(orders);
  FunnelMetrics metrics;
  metrics.queue_depth.Set(250);
  OrderConsumer::Options options;
  options.max_batch = 100;
  options.poll_wait_ms = 0;
  OrderConsumer consumer(source, *db, metrics, options);
  std::vector<std::size_t> batches;
  while (std::size_t n = consumer.RunOnce()) batches.push_back(n);
  EXPECT_EQ(batches, (std::vector<std::size_t>{100, 100, 50}));
  EXPECT_EQ(metrics.consumer_lag.Value(), 0);
  EXPECT_EQ(metrics.orders_persisted_confirmed.Value(), 250);
  EXPECT_EQ(metrics.orders_persisted_failed.Value(), 0);
  EXPECT_EQ(metrics.queue_depth.Value(), 0);
  EXPECT_TRUE(db->LoadPending()->empty());
  for (const Order& o : orders) ASSERT_EQ(StatusOf(*db, o), OrderStatus::kConfirmed);
}

TEST(OrderConsumer, RunsOnItsThreadBehindTheJournalAndDrainsOnStop) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 100'000)).ok());
  JournalOrderSource source;
  FunnelMetrics metrics;
  std::vector<Order> sent;
  std::mutex sent_mu;
  {
    SqliteOrderJournal journal(*db, source);
    OrderConsumer::Options options;
    options.max_batch = 64;
    options.poll_wait_ms = 5;
    options.batch_interval_ms = 1;
    OrderConsumer consumer(source, *db, metrics, options);
    consumer.Start();
    RunConcurrently(8, 100, [&](int i) {
      Order o = MakeOrder(kPhone, i);
      {
        std::lock_guard lock(sent_mu);
        sent.push_back(o);
      }
      journal.HandOff(std::move(o), [](const Status& s) { EXPECT_TRUE(s.ok()) << s.ToString(); });
    });
    journal.Stop();       // everything journalled
    consumer.Stop(true);  // and persisted
  }
  EXPECT_EQ(metrics.orders_persisted_confirmed.Value(), 800);
  EXPECT_TRUE(db->LoadPending()->empty());
  for (const Order& o : sent) ASSERT_EQ(StatusOf(*db, o), OrderStatus::kConfirmed);
}

TEST(OrderConsumer, CountsGuardRefusalsAsFailed) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 1)).ok());
  JournalOrderSource source;
  source.Prime({MakeOrder(kPhone, 1), MakeOrder(kPhone, 2)});
  FunnelMetrics metrics;
  OrderConsumer::Options options;
  options.poll_wait_ms = 0;
  OrderConsumer consumer(source, *db, metrics, options);
  EXPECT_EQ(consumer.RunOnce(), 2u);
  EXPECT_EQ(consumer.RunOnce(), 0u);
  EXPECT_EQ(metrics.orders_persisted_confirmed.Value(), 1);
  EXPECT_EQ(metrics.orders_persisted_failed.Value(), 1);
}

// An order SQLite refuses for its data (here a trigger stands in for a
// constraint: SQLITE_CONSTRAINT) must not stall the consumer: the others of
// its batch are decided, the refused one is handed to the source's dead-letter
// path (the journal leaves it PENDING), and later orders keep flowing.
TEST(OrderConsumer, AnOrderTheDatabaseRefusesDoesNotStallTheOthers) {
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 100)).ok());
  ExecBehindTheBack(dir,
                    "CREATE TRIGGER refuse_user_666 BEFORE INSERT ON orders "
                    "WHEN NEW.user_id = 666 BEGIN SELECT RAISE(ABORT, 'user 666 refused'); END");
  std::vector<Order> batch;
  for (UserId u = 1; u <= 7; ++u) batch.push_back(MakeOrder(kPhone, u == 4 ? 666 : u));
  ASSERT_TRUE(db->AppendPending(batch).ok());
  JournalOrderSource source;
  source.Prime(batch);
  FunnelMetrics metrics;
  OrderConsumer::Options options;
  options.poll_wait_ms = 1;
  options.batch_interval_ms = 0;
  options.max_backoff_ms = 20;
  OrderConsumer consumer(source, *db, metrics, options);
  consumer.Start();
  const Order later = MakeOrder(kPhone, 8);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{later}).ok());
  std::vector<Order> pushed = {later};
  source.Push(pushed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (metrics.orders_persisted_confirmed.Value() < 7 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  consumer.Stop(false);
  EXPECT_EQ(metrics.orders_persisted_confirmed.Value(), 7) << "the consumer stalled";
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(StatusOf(*db, batch[i]), i == 3 ? OrderStatus::kPending : OrderStatus::kConfirmed)
        << "order #" << i;
  }
  EXPECT_EQ(StatusOf(*db, later), OrderStatus::kConfirmed);
}

// ---------------------------------------------------------- MemoryStockStore ---

ReserveResult ReserveNow(MemoryStockStore& store, ProductId product, UserId user,
                         std::int64_t quantity = 1) {
  ReserveResult out;
  bool called = false;
  store.Reserve({product, user, quantity, Ids().Next(NowMillis()), NowMillis()},
                [&](Result<ReserveResult> r) {
                  called = true;
                  EXPECT_TRUE(r) << r.error().ToString();
                  if (r) out = *r;
                });
  EXPECT_TRUE(called) << "MemoryStockStore answers inline";
  return out;
}

TEST(MemoryStockStore, LoadFromSoldUnitsRestoresRemainingAndPerUserRecords) {
  MemoryStockStore store;
  const OrderId latest = Ids().Next(NowMillis());
  store.Load({MakeProduct(kPhone, 10, /*limit=*/2), MakeProduct(kLaptop, 5)},
             {{kPhone, 1, 2, latest},
              {kPhone, 2, 1, Ids().Next(NowMillis())},
              {kLaptop, 3, 1, Ids().Next(NowMillis())},
              {999, 4, 1, Ids().Next(NowMillis())}});  // a product no longer in the catalog
  Result<std::optional<StockSnapshot>> phone = store.Get(kPhone);
  ASSERT_TRUE(phone && phone->has_value());
  EXPECT_EQ((*phone)->remaining, 7);
  EXPECT_FALSE((*phone)->sold_out);
  EXPECT_EQ(store.Get(kLaptop)->value().remaining, 4);
  EXPECT_EQ(store.UnitsOf(kPhone, 1), 2);
  EXPECT_EQ(store.UnitsOf(kPhone, 2), 1);
  EXPECT_EQ(store.UnitsOf(kPhone, 3), 0);
  EXPECT_EQ(*store.ProductCount(), 2);

  // User 1 is at the limit and is told which order holds it.
  const ReserveResult limited = ReserveNow(store, kPhone, 1);
  EXPECT_EQ(limited.outcome, ReserveOutcome::kLimitExceeded);
  EXPECT_EQ(limited.latest_order, latest);
  // User 2 may take one more; a new user two.
  EXPECT_EQ(ReserveNow(store, kPhone, 2).outcome, ReserveOutcome::kReserved);
  EXPECT_EQ(ReserveNow(store, kPhone, 5, 2).outcome, ReserveOutcome::kReserved);
  EXPECT_EQ(store.Get(kPhone)->value().remaining, 4);
}

TEST(MemoryStockStore, StreamedLoadSumsRowsAndKeepsTheGreatestOrderId) {
  // Raw order rows, ungrouped and in no particular order: a user's units add
  // up and the latest (greatest) order id is the one a limit answer names.
  MemoryStockStore store;
  const OrderId first = *OrderId::Parse("00000000001000000a000001");
  const OrderId second = *OrderId::Parse("00000000002000000a000002");
  const OrderId third = *OrderId::Parse("00000000003000000a000003");
  store.LoadProducts({MakeProduct(kPhone, 10, /*limit=*/4), MakeProduct(kLaptop, 1)});
  store.AddSoldUnits({kPhone, 1, 1, second});
  store.AddSoldUnits({kPhone, 1, 2, third});
  store.AddSoldUnits({kPhone, 2, 1, OrderId()});  // a row without an id: the others win
  store.AddSoldUnits({kPhone, 1, 1, first});
  store.AddSoldUnits({kPhone, 2, 1, first});
  store.AddSoldUnits({kLaptop, 1, 1, first});
  store.AddSoldUnits({kLaptop, 2, 1, second});  // sold more than stock: lost writes
  store.AddSoldUnits({999, 1, 1, first});       // a product no longer in the catalog
  store.FinishLoad();

  EXPECT_EQ(store.UnitsOf(kPhone, 1), 4);
  EXPECT_EQ(store.UnitsOf(kPhone, 2), 2);
  EXPECT_EQ(store.Get(kPhone)->value().remaining, 4);
  EXPECT_EQ(store.Get(kLaptop)->value().remaining, 0) << "FinishLoad clamps at 0";
  EXPECT_EQ(*store.ProductCount(), 2);
  const ReserveResult limited = ReserveNow(store, kPhone, 1);
  EXPECT_EQ(limited.outcome, ReserveOutcome::kLimitExceeded);
  EXPECT_EQ(limited.latest_order, third);
  EXPECT_EQ(ReserveNow(store, kPhone, 2, 3).outcome, ReserveOutcome::kLimitExceeded);
  EXPECT_EQ(ReserveNow(store, kPhone, 2, 3).latest_order, first);
}

TEST(MemoryStockStore, ReleaseErasesTheRecordAtZeroUnits) {
  MemoryStockStore store;
  store.Load({MakeProduct(kPhone, 10, /*limit=*/3)}, {});
  Reservation r{kPhone, 5, 2, Ids().Next(NowMillis()), NowMillis()};
  store.Reserve(r, [](Result<ReserveResult> res) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->outcome, ReserveOutcome::kReserved);
  });
  EXPECT_EQ(store.UnitsOf(kPhone, 5), 2);
  store.Release(r, [](Result<std::int64_t> epoch) { EXPECT_TRUE(epoch); });
  EXPECT_EQ(store.UnitsOf(kPhone, 5), 0);
  // The whole limit is available again, and nothing names the released order.
  const ReserveResult again = ReserveNow(store, kPhone, 5, 3);
  EXPECT_EQ(again.outcome, ReserveOutcome::kReserved);
  // Releasing what is not held is a bug.
  EXPECT_THROW(store.Release({kPhone, 6, 1, Ids().Next(NowMillis()), NowMillis()},
                             [](Result<std::int64_t>) {}),
               std::logic_error);
}

TEST(MemoryStockStore, AdminChangesPersistNumberedProducts) {
  // Numbered from the loaded row's version, like the Redis store's changes.
  MemoryStockStore store;
  Product loaded = MakeProduct(kPhone, 5, 2);
  loaded.version = 7;
  store.Load({loaded}, {});
  std::vector<Product> persisted;
  auto record = [&](const Product& p) {
    persisted.push_back(p);
    return Status::Ok();
  };
  ASSERT_TRUE(store.Put(MakeProduct(kPhone, 6, 2), record));
  ASSERT_TRUE(store.Restock(kPhone, 4, record));
  ASSERT_TRUE(store.Put(MakeProduct(kLaptop, 1), record));
  ASSERT_EQ(persisted.size(), 3u);
  EXPECT_EQ(persisted[0].version, 8);
  EXPECT_EQ(persisted[1].version, 9);
  EXPECT_EQ(persisted[1].stock, 10);
  EXPECT_EQ(persisted[2].version, 1);
  EXPECT_EQ(store.Get(kPhone)->value().product.version, 9);
  // A refused persist changes nothing, the version included.
  EXPECT_FALSE(store.Restock(kPhone, 1, [](const Product&) { return Status::Unavailable("x"); }));
  EXPECT_EQ(store.Get(kPhone)->value().product.version, 9);
}

TEST(MemoryStockStore, LoadNeverLeavesRemainingBelowZero) {
  // The database sold more than the stock (lost writes): the store must still
  // be a valid store, sold out.
  MemoryStockStore store;
  store.Load({MakeProduct(kPhone, 2, 5)}, {{kPhone, 1, 3, Ids().Next(NowMillis())}});
  EXPECT_EQ(store.Get(kPhone)->value().remaining, 0);
  EXPECT_TRUE(store.Get(kPhone)->value().sold_out);
  EXPECT_EQ(ReserveNow(store, kPhone, 2).outcome, ReserveOutcome::kSoldOut);
}

TEST(MemoryStockStore, RebuiltFromTheDatabaseAfterARestart) {
  // The start-up path of EmbeddedStack: products + sold units from SQLite.
  TempDir dir;
  auto db = OpenDb(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->UpsertProduct(MakeProduct(kPhone, 5, 2)).ok());
  const Order a = MakeOrder(kPhone, 1, 2, 1'000);
  const Order b = MakeOrder(kPhone, 2, 1, 2'000);
  ASSERT_TRUE(db->AppendPending(std::vector<Order>{a, b}).ok());
  ASSERT_TRUE(db->PersistBatch(std::vector<Order>{a}));  // b stays PENDING

  MemoryStockStore store;
  store.Load(*db->LoadProducts(), *db->LoadSoldUnits());
  EXPECT_EQ(store.Get(kPhone)->value().remaining, 2);
  EXPECT_EQ(store.UnitsOf(kPhone, 1), 2);
  EXPECT_EQ(store.UnitsOf(kPhone, 2), 1);
  const ReserveResult limited = ReserveNow(store, kPhone, 1);
  EXPECT_EQ(limited.outcome, ReserveOutcome::kLimitExceeded);
  EXPECT_EQ(limited.latest_order, a.id);
}

TEST(MemoryStockStore, ReleaseGivesBackUnitsRecordAndClearsL2) {
  MemoryStockStore store;
  store.Load({MakeProduct(kPhone, 1)}, {});
  const Reservation r{kPhone, 7, 1, Ids().Next(NowMillis()), NowMillis()};
  ReserveResult taken;
  store.Reserve(r, [&](Result<ReserveResult> res) { taken = *res; });
  ASSERT_EQ(taken.outcome, ReserveOutcome::kReserved);
  EXPECT_TRUE(taken.took_last_unit);
  EXPECT_TRUE(store.Get(kPhone)->value().sold_out);
  const std::int64_t epoch_before = store.Get(kPhone)->value().restock_epoch;

  Result<std::int64_t> epoch = Status::Internal("not answered");
  store.Release(r, [&](Result<std::int64_t> e) { epoch = std::move(e); });  // inline
  ASSERT_TRUE(epoch) << epoch.error().ToString();
  EXPECT_EQ(*epoch, epoch_before + 1);
  EXPECT_EQ(store.Get(kPhone)->value().remaining, 1);
  EXPECT_FALSE(store.Get(kPhone)->value().sold_out);
  EXPECT_EQ(store.UnitsOf(kPhone, 7), 0);
  EXPECT_EQ(ReserveNow(store, kPhone, 7).outcome, ReserveOutcome::kReserved);
}

TEST(MemoryStockStore, ListPagesInIdOrder) {
  MemoryStockStore store;
  std::vector<Product> products;
  for (ProductId id = 200; id > 100; --id) products.push_back(MakeProduct(id, 1));
  store.Load(products, {});
  Result<std::vector<StockSnapshot>> page = store.List(10, 5);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 5u);
  for (std::size_t i = 0; i < page->size(); ++i) {
    EXPECT_EQ((*page)[i].product.id, static_cast<ProductId>(111 + i));
  }
  EXPECT_EQ(store.List(95, 100)->size(), 5u);
  EXPECT_TRUE(store.List(100, 100)->empty());
}

}  // namespace
}  // namespace flashsale::embedded
