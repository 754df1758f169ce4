// PgDatabase's schema: the DDL (see pg_database.hpp for the tables) and
// EnsureSchema, which runs it under a session-level advisory lock at Open().

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <string>

#include "backends/postgres/pg_database.hpp"
#include "backends/postgres/pg_internal.hpp"

namespace flashsale::postgres {
namespace {

// DDL, run under an advisory lock (see EnsureSchema). Idempotent: tables
// created by an older schema get the new columns here (ADD COLUMN with a
// constant default rewrites nothing); the status CHECK is replaced by
// kReplaceStatusCheck when it predates the lifecycle statuses.
constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS products (
  product_id       BIGINT PRIMARY KEY,
  price            NUMERIC(14,2) NOT NULL,
  stock            BIGINT NOT NULL,
  starts_at        TIMESTAMPTZ NULL,
  ends_at          TIMESTAMPTZ NULL,
  limit_per_user   BIGINT NOT NULL DEFAULT 1,
  sold             BIGINT NOT NULL DEFAULT 0,
  version          BIGINT NOT NULL DEFAULT 0,
  payment_window_s BIGINT NULL,
  waiting_room_admit_per_s BIGINT NULL,
  waiting_room_pass_ttl_s  BIGINT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  order_id        TEXT PRIMARY KEY,
  user_id         BIGINT NOT NULL,
  product_id      BIGINT NOT NULL,
  quantity        BIGINT NOT NULL,
  price           NUMERIC(14,2) NOT NULL,
  status          TEXT NOT NULL CONSTRAINT orders_status_check CHECK (status IN
                    ('PENDING', 'CONFIRMED', 'FAILED', 'PAID', 'CANCELLED', 'EXPIRED')),
  created_at      TIMESTAMPTZ NOT NULL,
  idempotency_key TEXT NULL,
  pay_by          TIMESTAMPTZ NULL,
  paid_at         TIMESTAMPTZ NULL,
  closed_at       TIMESTAMPTZ NULL,
  payment_ref     TEXT NULL,
  units_returned  BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE IF NOT EXISTS settings (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_payments (
  order_id    TEXT PRIMARY KEY,
  payment_ref TEXT NOT NULL,
  amount      NUMERIC(14,2) NOT NULL,
  received_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, created_at DESC);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS idempotency_key TEXT NULL;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS pay_by TIMESTAMPTZ NULL;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS paid_at TIMESTAMPTZ NULL;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS closed_at TIMESTAMPTZ NULL;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS payment_ref TEXT NULL;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS units_returned BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE products ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN IF NOT EXISTS payment_window_s BIGINT NULL;
ALTER TABLE products ADD COLUMN IF NOT EXISTS waiting_room_admit_per_s BIGINT NULL;
ALTER TABLE products ADD COLUMN IF NOT EXISTS waiting_room_pass_ttl_s BIGINT NULL;
CREATE INDEX IF NOT EXISTS orders_by_idempotency_key ON orders (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_awaiting_payment ON orders (pay_by)
  WHERE status = 'CONFIRMED' AND pay_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_units_to_return ON orders (closed_at)
  WHERE NOT units_returned;
)sql";

// The status CHECK as it is now (PostgreSQL names a column's CHECK
// <table>_<column>_check: so did every schema before ours named it), or no
// row when there is none (an older schema without it).
constexpr const char* kStatusCheck =
    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = 'orders'::regclass AND conname = 'orders_status_check'";
// The CHECK of a schema from before the lifecycle refuses PAID, CANCELLED and
// EXPIRED: replaced (by name) once, checking the stored rows once.
constexpr const char* kReplaceStatusCheck = R"sql(
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN
  ('PENDING', 'CONFIRMED', 'FAILED', 'PAID', 'CANCELLED', 'EXPIRED'));
)sql";

// Tables created by an older schema (SPEC §5 without our `sold`): add the
// column and count what stored orders already hold, once.
constexpr const char* kHasSold =
    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name = 'products' AND column_name = 'sold'";
constexpr const char* kAddSold = R"sql(
ALTER TABLE products ADD COLUMN sold BIGINT NOT NULL DEFAULT 0;
UPDATE products p SET sold = s.units
FROM (SELECT product_id, sum(quantity)::bigint AS units FROM orders
      WHERE status IN ('CONFIRMED', 'PAID') GROUP BY product_id) s
WHERE p.product_id = s.product_id;
)sql";

// Any 64-bit constant will do: every flashsale process takes the same one.
constexpr const char* kDdlLock = "SELECT pg_advisory_lock(7318624151923437713)";
constexpr const char* kDdlUnlock = "SELECT pg_advisory_unlock(7318624151923437713)";

}  // namespace

Status PgDatabase::EnsureSchema(Connection& c) {
  // A session-level lock taken before BEGIN, not pg_advisory_xact_lock inside
  // the transaction: a transaction that started before the lock was granted
  // may still see the catalog (e.g. "no such schema") as it was before the
  // other process's DDL, and CREATE SCHEMA IF NOT EXISTS then fails on a
  // duplicate key. Our BEGIN, after the grant, sees the other DDL. The lock
  // goes with the session if the connection dies.
  if (Result<PgResult> r = c.Exec(server_, "locking for DDL", kDdlLock); !r.has_value()) {
    return r.error();
  }
  Status s = [&] {
    if (Status s = c.Command(server_, "BEGIN", "BEGIN"); !s.ok()) return s;
    if (!options_.schema.empty()) {
      char* ident = PQescapeIdentifier(c.pg, options_.schema.data(), options_.schema.size());
      if (ident == nullptr) return Status::Invalid("bad schema name: " + options_.schema);
      const std::string sql = std::string("CREATE SCHEMA IF NOT EXISTS ") + ident;
      PQfreemem(ident);
      if (Status s = c.Command(server_, "creating schema", sql.c_str()); !s.ok()) return s;
    }
    Result<PgResult> has_sold = c.Exec(server_, "inspecting products", kHasSold);
    if (!has_sold.has_value()) return has_sold.error();
    if (PQntuples(has_sold->get()) == 0) {
      // Before kSchemaSql: CREATE TABLE IF NOT EXISTS would keep the old table.
      Result<PgResult> old =
          c.Exec(server_, "inspecting products", "SELECT to_regclass('products') IS NOT NULL");
      if (!old.has_value()) return old.error();
      if (Text(old->get(), 0, 0) == "t") {
        spdlog::warn("postgres: adding products.sold to an older schema at {}", server_);
        if (Status s = c.Command(server_, "adding products.sold", kAddSold); !s.ok()) return s;
      }
    }
    if (Status s = c.Command(server_, "creating tables", kSchemaSql); !s.ok()) return s;
    Result<PgResult> check = c.Exec(server_, "inspecting orders", kStatusCheck);
    if (!check.has_value()) return check.error();
    if (PQntuples(check->get()) == 0 ||
        Text(check->get(), 0, 0).find("EXPIRED") == std::string_view::npos) {
      spdlog::warn("postgres: orders at {} accept the lifecycle statuses from now on", server_);
      if (Status s = c.Command(server_, "replacing the status CHECK", kReplaceStatusCheck);
          !s.ok()) {
        return s;
      }
    }
    return c.Command(server_, "COMMIT", "COMMIT");
  }();
  if (!s.ok()) c.Rollback();
  if (Result<PgResult> r = c.Exec(server_, "unlocking after DDL", kDdlUnlock);
      !r.has_value() && s.ok()) {
    return r.error();
  }
  return s;
}

}  // namespace flashsale::postgres
