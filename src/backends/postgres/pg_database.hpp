#pragma once
// PgDatabase: the database of record in distributed mode (SPEC §5), in
// PostgreSQL through libpq. Same semantics as embedded::SqliteDatabase:
// PersistBatch is idempotent by order id and refuses (stores FAILED) an order
// that would take its product past its stock.
//
// Schema (created by Open() if missing, under a session-level advisory
// lock so that two processes starting together do not race on DDL; tables of
// an older schema get the new columns, and a status CHECK without the
// lifecycle statuses is replaced, in place):
//   products(product_id BIGINT PK, price NUMERIC(14,2), stock BIGINT,
//            starts_at TIMESTAMPTZ NULL, ends_at TIMESTAMPTZ NULL,
//            limit_per_user BIGINT,
//            sold BIGINT NOT NULL DEFAULT 0,   -- ours: units of stored orders
//                                              -- holding units (CONFIRMED, PAID):
//                                              -- PersistBatch adds, closing subtracts
//            version BIGINT NOT NULL DEFAULT 0,
//            payment_window_s BIGINT NULL,     -- NULL: no payment step
//            waiting_room_admit_per_s BIGINT NULL,  -- both NULL: no waiting room
//            waiting_room_pass_ttl_s BIGINT NULL)
//   orders(order_id TEXT PK, user_id BIGINT, product_id BIGINT, quantity BIGINT,
//          price NUMERIC(14,2),
//          status TEXT CONSTRAINT orders_status_check CHECK IN (PENDING, CONFIRMED,
//                 FAILED, PAID, CANCELLED, EXPIRED),
//          created_at TIMESTAMPTZ,
//          idempotency_key TEXT NULL,          -- ours: Order carries it
//          pay_by TIMESTAMPTZ NULL,            -- NULL: no payment step
//          paid_at TIMESTAMPTZ NULL, closed_at TIMESTAMPTZ NULL,
//          payment_ref TEXT NULL,              -- PAID; FAILED ones keep an in-flight
//                                              -- payment's ref (the shop refunds it)
//          units_returned BOOLEAN NOT NULL DEFAULT TRUE)  -- FALSE: closed, units
//                                              -- not given back yet (the outbox)
//   order_payments(order_id TEXT PK, payment_ref TEXT, amount NUMERIC(14,2),
//                  received_at TIMESTAMPTZ)    -- in-time payments of orders still
//                                              -- in flight; applied and deleted by
//                                              -- the PersistBatch that lands them
//   index orders_by_user (user_id, created_at DESC)
//   index orders_by_idempotency_key (idempotency_key) WHERE NOT NULL
//   index orders_awaiting_payment (pay_by) WHERE CONFIRMED AND pay_by NOT NULL
//   index orders_units_to_return (closed_at) WHERE NOT units_returned
//
// Lifecycle locking (no deadlock between the writers): an order's row before
// its product's row (Pay, Cancel, ExpireDue; ExpireDue skips locked orders and
// locks products in id order), products before order_payments (PersistBatch,
// ExpireDue); Pay recording an in-flight payment holds order_payments (ROW
// EXCLUSIVE) and no product. PersistBatch takes order_payments in SHARE mode
// after inserting: a Pay recording a payment for one of its orders either
// commits first (the batch then sees and applies it) or waits for the batch
// and then finds the order stored (and decides on the stored row).
// Conversions are exact: cents <-> NUMERIC by `cents::numeric / 100` and
// `(price * 100)::bigint`; ms <-> TIMESTAMPTZ by `'epoch' + ms * 1 ms` and
// `(extract(epoch from t) * 1000)::bigint` (extract is NUMERIC since PG 14).
//
// Thread safety: safe for concurrent use. Each call borrows one connection
// from a mutex-guarded pool (at most Options::pool_size, opened lazily) for
// its duration; a connection found broken is closed and reopened on demand.
// A call that fails on an idle connection that went stale (server restart,
// terminated backend) is retried once on a fresh connection.
//
// Errors: connection trouble and transient server states (deadlock,
// serialization failure, shutdown) are Unavailable; a COMMIT whose outcome is
// unclear is Unknown; the server refusing the values themselves (SQLSTATE
// class 22 data exception, 23 integrity constraint, 54 program limit) is
// Invalid: the same rows fail again, so OrderConsumer isolates and parks
// them; other SQL errors are Internal. A stored row that does not parse is
// Internal, naming the table, the row's key and the column.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/mutex.hpp"
#include "core/order_lifecycle.hpp"
#include "core/order_repository.hpp"
#include "core/stock_store.hpp"

namespace flashsale::postgres {

// Stored orders per status (PENDING is never stored).
struct OrderCounts {
  std::int64_t confirmed = 0, failed = 0, paid = 0, cancelled = 0, expired = 0;
};

class PgDatabase final : public OrderRepository, public OrderLifecycle {
 public:
  struct Options {
    std::string url;    // postgresql://user:pass@host:port/db[?options=...] (libpq URI)
    int pool_size = 4;  // connections, opened lazily, reconnected when broken
    int connect_timeout_s = 3;
    std::string schema;  // "" = the default search_path; created if missing
  };

  // Connects once (Unavailable naming host:port if it cannot) and creates the
  // schema and tables if missing.
  static Result<std::unique_ptr<PgDatabase>> Open(const Options& o);
  ~PgDatabase() override;
  PgDatabase(const PgDatabase&) = delete;
  PgDatabase& operator=(const PgDatabase&) = delete;

  // Admin PUT/restock: inserts the product or updates its metadata; never
  // touches `sold`.
  Status UpsertProduct(const Product& p) override;
  // One transaction per batch. Orders already stored (or repeated inside the
  // batch) count as duplicates and are left alone; orders naming an unknown
  // product are not stored and reported by index; the others are stored
  // CONFIRMED, or FAILED when they would take sold past stock (decided in
  // batch order), with their pay_by. Payments recorded while they were in
  // flight (order_payments) are applied in the same transaction: a CONFIRMED
  // order paid in time with its total becomes PAID; a FAILED one keeps the
  // payment_ref. Safe to retry after any error (idempotent).
  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override;
  Result<std::optional<Order>> FindOrder(const OrderId& id) override;
  // The first order stored with this Idempotency-Key (index orders_by_idempotency_key).
  Result<std::optional<Order>> FindOrderByIdempotencyKey(std::string_view key);
  // Newest first (created_at, then order id).
  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override;

  // Seed: inserts products that do not exist yet (all of them when
  // `overwrite`, keeping `sold`); `*inserted` = rows inserted or overwritten.
  Status InsertProducts(const std::vector<Product>& products, bool overwrite,
                        std::int64_t* inserted);
  Result<std::vector<Product>> LoadProducts();  // id order
  // Orders holding units (kHeldStatusesSql), per product and user, with the
  // user's latest such order id.
  Result<std::vector<SoldUnits>> LoadSoldUnits();
  Result<std::vector<Order>> LoadFailedOrders();  // oldest first
  Result<OrderCounts> CountOrders();
  Result<std::vector<Order>> LoadAllOrders();  // audit; one result in memory
  // Audit: closed orders whose units are not given back yet, oldest closed first.
  Result<std::vector<Order>> LoadUnreturnedClosed();
  // A secret generated on first use and kept in `settings`, the same for
  // every process (the cancel tokens'): the first writer wins.
  Result<std::string> SharedSecret(std::string_view name);
  // SELECT 1 within a short timeout, for /readyz; the message names the server.
  Status Ping();

  // PersistBatch's "which of these ids are stored" ($1: text[] of order ids),
  // public for the test that checks its plan. A separate statement after the
  // product locks: under READ COMMITTED it sees every batch committed by a
  // consumer we waited for. One primary-key probe per id, by construction:
  // with `order_id = ANY($1)` the planner weighs thousands of ids against
  // random_page_cost and scans the whole orders table until it holds millions
  // of rows, so each batch of a growing sale was slower than the one before
  // (1M orders drained at 22k/s instead of 36k/s). LIMIT 1 keeps the subquery
  // from being flattened into a hash join; order_id is the key, so it drops
  // no row.
  static constexpr const char* kStoredOrdersSql =
      "SELECT o.order_id FROM unnest($1::text[]) AS k(id) "
      "CROSS JOIN LATERAL (SELECT order_id FROM orders WHERE order_id = k.id LIMIT 1) o";

  // OrderLifecycle (core/order_lifecycle.hpp). Each decision is one
  // transaction; see "Lifecycle locking" above.
  Result<PaymentDecision> Pay(const Payment& payment,
                              const std::optional<Order>& in_flight) override;
  Result<CancelDecision> Cancel(const OrderId& id, UnixMillis now) override;
  Result<std::int64_t> ExpireDue(UnixMillis now, std::int64_t max) override;
  Result<std::optional<UnixMillis>> NextPayBy() override;
  Result<std::int64_t> ReturnClosedUnits(std::int64_t max, const GiveBack& give_back) override;

  // "host:port/db", for messages.
  [[nodiscard]] const std::string& server() const { return server_; }

 private:
  struct Connection;
  using ConnPtr = std::unique_ptr<Connection, void (*)(Connection*)>;

  PgDatabase();
  Result<ConnPtr> Connect();
  Result<ConnPtr> Borrow();
  void Return(ConnPtr c);
  // Runs `body` on a borrowed connection; retries once on a fresh connection
  // when a reused one turns out to be broken (Unavailable).
  template <class T>
  Result<T> Run(const std::function<Result<T>(Connection&)>& body);
  Status EnsureSchema(Connection& c);

  // Constant after Open().
  Options options_;
  std::string server_;

  Mutex mu_;
  CondVar idle_cv_;
  std::vector<ConnPtr> idle_ GUARDED_BY(mu_);
  int open_ GUARDED_BY(mu_) = 0;  // idle + borrowed + connecting
};

}  // namespace flashsale::postgres
