#pragma once
// SqliteDatabase: the embedded database of record (SPEC §5) in one SQLite file
// in WAL mode: products, orders, and what start-up needs to rebuild the stores.
//
// Orders live in two files. The journal writes each accepted order into
// order_journal, an append-only table with no secondary index, in a file of
// its own (`<path>.journal`): the ack path pays for durability only, and never
// waits for SQLite's write lock of the main file. The consumer settles orders
// into orders (main file) with their decided status (CONFIRMED/FAILED), where
// the indexes the readers need are built, in large batches; only after that
// commit is on disk does it delete their journal rows. Invariant: an
// accepted order is in the journal, in orders, or (between the two commits)
// both; the view all_orders shows each once (orders' row wins, a journal row
// reads as PENDING), and every reader reads it. Readers take the journal's
// snapshot before the main file's (ReadSnapshot), so an order moving between
// the two is never missed.
//
// Thread safety: the main file's writer connection is behind `write_mu_` (the
// consumer and admin changes take turns, so SQLite never answers BUSY inside
// the process), the journal's behind `journal_mu_`, and one reader connection
// behind `read_mu_`. WAL lets readers run beside the writers. Other processes
// (`flashsale audit`) may read.
//
// Errors: a constraint, type or size refusal of the values (SQLITE_CONSTRAINT,
// MISMATCH, TOOBIG, RANGE) is Invalid; other SQLite errors are Unavailable; a
// stored row that does not parse is Internal, naming the table, the row's key
// and the column.

#include <sqlite3.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/embedded/memory_stock_store.hpp"
#include "core/mutex.hpp"
#include "core/order_lifecycle.hpp"
#include "core/order_repository.hpp"

namespace flashsale::embedded {

// RAII prepared statement; reset after each use.
class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, const char* sql);
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  SqliteStatement& Bind(int index, std::int64_t v);
  SqliteStatement& Bind(int index, std::string_view v);
  SqliteStatement& BindNull(int index);
  SqliteStatement& Bind(int index, const std::optional<std::int64_t>& v);
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step();
  void Reset();
  [[nodiscard]] std::int64_t Int(int col) const;
  [[nodiscard]] std::optional<std::int64_t> OptionalInt(int col) const;
  [[nodiscard]] std::string_view Text(int col) const;
  [[nodiscard]] bool IsNull(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

enum class JournalSync { kFull, kNormal };

class SqliteDatabase final : public OrderRepository, public OrderLifecycle {
 public:
  struct Options {
    std::string path;
    JournalSync sync = JournalSync::kFull;
    bool read_only = false;
  };
  static Result<std::unique_ptr<SqliteDatabase>> Open(const Options& options);
  ~SqliteDatabase() override;

  // OrderRepository
  Status UpsertProduct(const Product& p) override;
  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override;
  Result<std::optional<Order>> FindOrder(const OrderId& id) override;
  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override;

  // OrderLifecycle. Every decision is one write transaction of the main file
  // (SQLite has one writer at a time, in every process): Pay and the closer's
  // ExpireDue are serialized, and a payment for an order still in the
  // journal is recorded in order_payments and applied by the settle that
  // lands it (Settle and Pay take turns on the same lock).
  Result<PaymentDecision> Pay(const Payment& payment,
                              const std::optional<Order>& in_flight) override;
  Result<CancelDecision> Cancel(const OrderId& id, UnixMillis now) override;
  Result<std::int64_t> ExpireDue(UnixMillis now, std::int64_t max) override;
  Result<std::optional<UnixMillis>> NextPayBy() override;
  Result<std::int64_t> ReturnClosedUnits(std::int64_t max, const GiveBack& give_back) override;
  // Embedded start-up only, after the stock was rebuilt from the held orders:
  // the rebuild gave the units of every closed order back already, so the
  // outbox is emptied (marked returned) instead of returning them twice.
  Result<std::int64_t> ForgetUnreturnedUnits();
  // A secret generated on first use and kept in the database (settings), the
  // same for every process and restart: the cancel tokens' (OrderTokens).
  Result<std::string> SharedSecret(std::string_view name);
  // Closed orders whose units were not given back yet, oldest closed first (audit).
  Result<std::vector<Order>> LoadUnreturnedClosed();

  // OK when the database answers a query (for /readyz).
  Status Ping();

  // Journal: inserts PENDING rows in one transaction (group commit) into the
  // journal file. NotDelivered when the transaction was rolled back, Unknown
  // when COMMIT failed in a way that may have persisted it.
  Status AppendPending(std::span<const Order> orders);

  // Start-up and audit queries.
  Result<std::vector<Product>> LoadProducts();
  Result<std::vector<SoldUnits>> LoadSoldUnits();  // orders not FAILED, per product and user
  // Start-up: calls `each` with every order not FAILED (units = its quantity,
  // latest_order = its id), one row at a time and ungrouped, so ten million
  // buyers are rebuilt without holding them all in a vector first. Returns
  // how many rows it read.
  Result<std::int64_t> ForEachHeldOrder(const std::function<void(const SoldUnits&)>& each);
  // The journal's rows (PENDING), oldest first; after a crash between a
  // settle and its journal delete, also orders already settled (the consumer
  // finds them stored and only deletes their journal rows).
  Result<std::vector<Order>> LoadPending();
  // Orders with an Idempotency-Key created after `since_ms`.
  Result<std::vector<Order>> LoadKeyedOrders(UnixMillis since_ms);
  // The first order stored with this Idempotency-Key (index
  // orders_by_idempotency_key): answers a key the in-memory store let go.
  Result<std::optional<Order>> FindOrderByIdempotencyKey(std::string_view key);
  Result<std::vector<Order>> LoadAllOrders();
  Status InsertProducts(const std::vector<Product>& products, bool overwrite,
                        std::int64_t* inserted);

  // Copies the WALs of both files back into them (PASSIVE: never waits for
  // readers or blocks the writer), on a connection of its own. A checkpointer
  // thread calls it periodically so the copying happens off the journal's
  // commit path; the writer keeps SQLite's automatic checkpoint, which then
  // finds little left to copy and lets the WAL restart from its beginning (a
  // PASSIVE checkpoint racing a busy writer never can: the WAL would grow
  // without bound). Returns how many WAL frames are in the database files.
  Result<std::int64_t> Checkpoint();

  [[nodiscard]] const std::string& path() const { return path_; }
  // The journal's file: `<path>.journal` (plus its -wal and -shm). A copy
  // of the database is both files.
  static std::string JournalPath(const std::string& path) { return path + ".journal"; }
  // The SQL that creates the temporary view all_orders on a connection to the
  // main file with the journal attached as `j` (for tools and tests).
  static std::string OrdersViewSql();

 private:
  SqliteDatabase() = default;
  Status Exec(sqlite3* db, const char* sql);
  Status Error(sqlite3* db, std::string_view what);
  Status LoadGuardStateLocked() REQUIRES(write_mu_);
  // PRAGMA user_version of the main file: which schema upgrades it has had.
  Result<std::int64_t> UserVersion() REQUIRES(write_mu_);
  // Runs `body` (returning Result<T>) inside BEGIN IMMEDIATE ... COMMIT on
  // the writer, rolled back when it fails or the COMMIT does.
  template <class T, class Body>
  Result<T> InWriteTransaction(Body&& body) REQUIRES(write_mu_);
  // Runs `sql` in one write transaction of the main file (rolled back on error).
  Status ExecInWriteTransaction(const char* sql) REQUIRES(write_mu_);
  // Inserts the orders into orders with their decided status (takes write_mu_).
  Result<PersistSummary> Settle(std::span<const Order> orders) EXCLUDES(write_mu_);
  // Deletes the journal rows of settled orders (after their settle commit).
  void Unjournal(std::span<const Order> orders) EXCLUDES(journal_mu_);
  // Starts a read transaction on reader_ whose journal snapshot is taken
  // before the main file's (see the class comment); Finish ends it.
  Status BeginReadSnapshot() REQUIRES(read_mu_);
  void EndReadSnapshot() REQUIRES(read_mu_);
  // Runs `read` inside a read snapshot.
  template <typename T, typename Fn>
  Result<T> InReadSnapshot(Fn&& read) REQUIRES(read_mu_);
  // Schema upgrade at Open(): products.version (Product::version).
  Status AddProductVersionColumn() REQUIRES(write_mu_);
  // Schema upgrade at Open(): PENDING rows of a database that predates the
  // journal move into the journal (once: PRAGMA user_version records it).
  Status MovePendingOrdersToJournal() REQUIRES(write_mu_, journal_mu_);
  // Schema upgrade at Open(): fills product_sales from orders (once:
  // PRAGMA user_version 2 records it).
  Status SumProductSales() REQUIRES(write_mu_);
  // Schema upgrade at Open(): the lifecycle columns and indexes (once: PRAGMA
  // user_version 3), and the journal's pay_by column.
  Status UpgradeToLifecycle() REQUIRES(write_mu_, journal_mu_);
  // Schema upgrade at Open(): products.waiting_room_admit_per_s and
  // waiting_room_pass_ttl_s (Product::waiting_room; NULL = none).
  Status AddWaitingRoomColumns() REQUIRES(write_mu_);
  // Inside a write transaction: recorded payments of orders that landed
  // become PAID (a FAILED one keeps the payment_ref, for the refund), and
  // their rows go. A probe of the (usually empty) table first: payments may
  // be recorded by another process (distributed mode on SQLite).
  Status ApplyRecordedPaymentsLocked() REQUIRES(write_mu_);
  // Inside a write transaction: the order's row in orders, if stored.
  Result<std::optional<Order>> StoredOrderLocked(const OrderId& id) REQUIRES(write_mu_);
  // Inside a write transaction: closes `id` (CONFIRMED only) as `status` at
  // `now`, its units queued for return and taken off product_sales; `deltas`
  // collects the stock guard's change, applied to the mirror after COMMIT.
  Result<bool> CloseLocked(const OrderId& id, OrderStatus status, UnixMillis now,
                           std::unordered_map<ProductId, std::int64_t>& deltas) REQUIRES(write_mu_);
  Status SubtractSalesLocked(const std::unordered_map<ProductId, std::int64_t>& deltas)
      REQUIRES(write_mu_);

  std::string path_;
  // Set by Open(), constant after: whether reader_ has the journal attached
  // (a read-only open of a database that never had a journal has not).
  bool reader_has_journal_ = false;
  // "PRAGMA main.synchronous=FULL" (or NORMAL): the journal's own setting.
  std::string journal_sync_pragma_;
  Mutex write_mu_;
  sqlite3* writer_ GUARDED_BY(write_mu_) = nullptr;
  // Lock order: write_mu_ before journal_mu_ (Open only).
  Mutex journal_mu_ ACQUIRED_AFTER(write_mu_);
  sqlite3* journal_ GUARDED_BY(journal_mu_) = nullptr;
  Mutex read_mu_;
  sqlite3* reader_ GUARDED_BY(read_mu_) = nullptr;
  // Statements of the reads that run once per request (an order lookup, an
  // Idempotency-Key the memory let go, the snapshot's journal read), prepared
  // once: preparing the view's compound query per call cost more than running
  // it. Reset after every use (an unfinished statement would keep the read
  // transaction, and its snapshot, open).
  enum ReaderQuery { kBegin, kCommit, kTouchJournal, kFindOrder, kFindOrderByKey, kReaderQueries };
  std::unique_ptr<SqliteStatement> reader_statements_[kReaderQueries] GUARDED_BY(read_mu_);
  SqliteStatement& ReaderStatement(ReaderQuery query, const char* sql) REQUIRES(read_mu_);
  Mutex checkpoint_mu_;
  sqlite3* checkpointer_ GUARDED_BY(checkpoint_mu_) = nullptr;
  sqlite3* journal_checkpointer_ GUARDED_BY(checkpoint_mu_) = nullptr;
  // Stock guard of PersistBatch: stock and CONFIRMED units per product,
  // mirrored from the database (products, product_sales).
  std::unordered_map<ProductId, std::int64_t> guard_stock_ GUARDED_BY(write_mu_);
  std::unordered_map<ProductId, std::int64_t> guard_confirmed_ GUARDED_BY(write_mu_);
  // PRAGMA data_version when the guard was loaded: it changes when another
  // process commits, and the guard is then reloaded.
  std::int64_t guard_data_version_ GUARDED_BY(write_mu_) = -1;
};

}  // namespace flashsale::embedded
