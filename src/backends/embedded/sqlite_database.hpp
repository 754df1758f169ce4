#pragma once
// SqliteDatabase: the embedded database of record (SPEC §5) in one SQLite file
// in WAL mode: products, orders, and what start-up needs to rebuild the stores.
//
// Orders live in two tables (schema in the .cpp): the journal writes each
// accepted order into order_journal, an append-only table with no secondary
// index (the ack path pays only for durability), and the consumer moves it into
// orders with its decided status (CONFIRMED/FAILED) in one transaction, where
// the indexes the readers need are built. Invariant: at every commit an order
// is in exactly one of the two; the view all_orders is the union, and every
// reader reads it (a journal row reads as PENDING).
//
// Thread safety: one writer connection behind `write_mu_` (the journal, the
// consumer and admin changes take turns, so SQLite never answers BUSY inside
// the process) and one reader connection behind `read_mu_`. WAL lets readers
// run beside the writer. Other processes (`flashsale audit`) may read.
//
// Errors: a constraint, type or size refusal of the values (SQLITE_CONSTRAINT,
// MISMATCH, TOOBIG, RANGE) is Invalid; other SQLite errors are Unavailable; a
// stored row that does not parse is Internal, naming the table, the row's key
// and the column.

#include <sqlite3.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/embedded/memory_stock_store.hpp"
#include "core/mutex.hpp"
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

class SqliteDatabase final : public OrderRepository {
 public:
  struct Options {
    std::string path;
    JournalSync sync = JournalSync::kFull;
    bool read_only = false;
    // PersistBatch commits without waiting for the disk (synchronous=NORMAL
    // for that transaction). Safe only when every order it settles is in
    // order_journal (embedded mode): a settle lost to a power cut leaves the
    // orders in the journal, and the next journal commit's fsync makes every
    // earlier WAL frame durable too. Never for orders from a queue whose
    // offsets are committed after PersistBatch.
    bool settle_without_fsync = false;
  };
  static Result<std::unique_ptr<SqliteDatabase>> Open(const Options& options);
  ~SqliteDatabase() override;

  // OrderRepository
  Status UpsertProduct(const Product& p) override;
  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override;
  Result<std::optional<Order>> FindOrder(const OrderId& id) override;
  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override;

  // OK when the database answers a query (for /readyz).
  Status Ping();

  // Journal: inserts PENDING rows in one transaction (group commit).
  // NotDelivered when the transaction was rolled back, Unknown when COMMIT
  // failed in a way that may have persisted it.
  Status AppendPending(std::span<const Order> orders);

  // Start-up and audit queries.
  Result<std::vector<Product>> LoadProducts();
  Result<std::vector<SoldUnits>> LoadSoldUnits();  // orders not FAILED, per product and user
  Result<std::vector<Order>> LoadPending();
  // Orders with an Idempotency-Key created after `since_ms`.
  Result<std::vector<Order>> LoadKeyedOrders(UnixMillis since_ms);
  // The first order stored with this Idempotency-Key (index
  // orders_by_idempotency_key): answers a key the in-memory store let go.
  Result<std::optional<Order>> FindOrderByIdempotencyKey(std::string_view key);
  Result<std::vector<Order>> LoadAllOrders();
  Status InsertProducts(const std::vector<Product>& products, bool overwrite,
                        std::int64_t* inserted);

  // Copies the WAL back into the database file (PASSIVE: never waits for
  // readers or blocks the writer), on a connection of its own. A checkpointer
  // thread calls it periodically so the copying happens off the journal's
  // commit path; the writer keeps SQLite's automatic checkpoint, which then
  // finds little left to copy and lets the WAL restart from its beginning (a
  // PASSIVE checkpoint racing a busy writer never can: the WAL would grow
  // without bound). Returns how many WAL frames are in the database file.
  Result<std::int64_t> Checkpoint();

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  SqliteDatabase() = default;
  Status Exec(sqlite3* db, const char* sql);
  Status Error(sqlite3* db, std::string_view what);
  Status LoadGuardStateLocked() REQUIRES(write_mu_);
  Result<PersistSummary> PersistBatchLocked(std::span<const Order> orders) REQUIRES(write_mu_);
  // Schema upgrade at Open(): products.version (Product::version).
  Status AddProductVersionColumn() REQUIRES(write_mu_);
  // Schema upgrade at Open(): PENDING rows of a database that predates the
  // journal move into order_journal (once: PRAGMA user_version records it).
  Status MovePendingOrdersToJournal() REQUIRES(write_mu_);

  std::string path_;
  // Set by Open(), constant after: what readers select from. "all_orders", or
  // "orders" for a read-only open of a file that predates the journal.
  std::string orders_view_ = "all_orders";
  bool settle_without_fsync_ = false;
  Mutex write_mu_;
  sqlite3* writer_ GUARDED_BY(write_mu_) = nullptr;
  Mutex read_mu_;
  sqlite3* reader_ GUARDED_BY(read_mu_) = nullptr;
  Mutex checkpoint_mu_;
  sqlite3* checkpointer_ GUARDED_BY(checkpoint_mu_) = nullptr;
  // Stock guard of PersistBatch: stock and CONFIRMED units per product,
  // mirrored from the database.
  std::unordered_map<ProductId, std::int64_t> guard_stock_ GUARDED_BY(write_mu_);
  std::unordered_map<ProductId, std::int64_t> guard_confirmed_ GUARDED_BY(write_mu_);
  // PRAGMA data_version when the guard was loaded: it changes when another
  // process commits, and the guard is then reloaded.
  std::int64_t guard_data_version_ GUARDED_BY(write_mu_) = -1;
};

}  // namespace flashsale::embedded
