#include "backends/postgres/pg_database.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/numbers.hpp"

namespace flashsale::postgres {
namespace {

// DDL, run under an advisory lock (see Open()). Idempotent.
constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS products (
  product_id     BIGINT PRIMARY KEY,
  price          NUMERIC(14,2) NOT NULL,
  stock          BIGINT NOT NULL,
  starts_at      TIMESTAMPTZ NULL,
  ends_at        TIMESTAMPTZ NULL,
  limit_per_user BIGINT NOT NULL DEFAULT 1,
  sold           BIGINT NOT NULL DEFAULT 0,
  version        BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS orders (
  order_id        TEXT PRIMARY KEY,
  user_id         BIGINT NOT NULL,
  product_id      BIGINT NOT NULL,
  quantity        BIGINT NOT NULL,
  price           NUMERIC(14,2) NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED')),
  created_at      TIMESTAMPTZ NOT NULL,
  idempotency_key TEXT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, created_at DESC);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS idempotency_key TEXT NULL;
ALTER TABLE products ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS orders_by_idempotency_key ON orders (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
)sql";

// Tables created by an older schema (SPEC §5 without our `sold`): add the
// column and count what CONFIRMED orders already hold, once.
constexpr const char* kHasSold =
    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name = 'products' AND column_name = 'sold'";
constexpr const char* kAddSold = R"sql(
ALTER TABLE products ADD COLUMN sold BIGINT NOT NULL DEFAULT 0;
UPDATE products p SET sold = s.units
FROM (SELECT product_id, sum(quantity)::bigint AS units FROM orders
      WHERE status = 'CONFIRMED' GROUP BY product_id) s
WHERE p.product_id = s.product_id;
)sql";

// Any 64-bit constant will do: every flashsale process takes the same one.
constexpr const char* kDdlLock = "SELECT pg_advisory_lock(7318624151923437713)";
constexpr const char* kDdlUnlock = "SELECT pg_advisory_unlock(7318624151923437713)";

// Per-connection staging table of PersistBatch, filled by COPY.
constexpr const char* kCreateStaging = R"sql(
CREATE TEMP TABLE IF NOT EXISTS flashsale_batch (
  idx             INT NOT NULL,
  order_id        TEXT NOT NULL,
  user_id         BIGINT NOT NULL,
  product_id      BIGINT NOT NULL,
  quantity        BIGINT NOT NULL,
  price_cents     BIGINT NOT NULL,
  created_ms      BIGINT NOT NULL,
  idempotency_key TEXT NULL
) ON COMMIT DELETE ROWS
)sql";

constexpr const char* kCopyBatch =
    "COPY flashsale_batch (idx, order_id, user_id, product_id, quantity, price_cents, "
    "created_ms, idempotency_key) FROM STDIN";

// Locks in product_id order: two consumers never deadlock on products.
constexpr const char* kLockProducts =
    "SELECT product_id, stock, sold FROM products WHERE product_id = ANY($1::bigint[]) "
    "ORDER BY product_id FOR UPDATE";

// $1: one decision per batch index (0 skip, 1 CONFIRMED, 2 FAILED). Returns
// how many rows were inserted CONFIRMED and FAILED (a concurrent insert of the
// same id wins: ON CONFLICT skips the row and its units are not counted).
constexpr const char* kInsertDecided = R"sql(
WITH ins AS (
  INSERT INTO orders (order_id, user_id, product_id, quantity, price, status, created_at,
                      idempotency_key)
  SELECT b.order_id, b.user_id, b.product_id, b.quantity, b.price_cents::numeric / 100,
         CASE d.decision[b.idx + 1] WHEN 1 THEN 'CONFIRMED' ELSE 'FAILED' END,
         TIMESTAMPTZ 'epoch' + b.created_ms * INTERVAL '1 millisecond', b.idempotency_key
  FROM flashsale_batch b, (SELECT $1::int2[] AS decision) d
  WHERE d.decision[b.idx + 1] IN (1, 2)
  ON CONFLICT (order_id) DO NOTHING
  RETURNING product_id, quantity, status
), delta AS (
  SELECT product_id,
         coalesce(sum(quantity) FILTER (WHERE status = 'CONFIRMED'), 0) AS units,
         count(*) FILTER (WHERE status = 'CONFIRMED') AS confirmed,
         count(*) FILTER (WHERE status = 'FAILED') AS failed
  FROM ins GROUP BY product_id
), upd AS (
  UPDATE products p SET sold = p.sold + delta.units
  FROM delta WHERE p.product_id = delta.product_id AND delta.units <> 0
  RETURNING p.product_id
)
SELECT coalesce(sum(confirmed), 0)::bigint, coalesce(sum(failed), 0)::bigint,
       (SELECT count(*) FROM upd)
FROM delta
)sql";

constexpr const char* kProductColumns =
    "product_id, (price * 100)::bigint, stock, (extract(epoch FROM starts_at) * 1000)::bigint, "
    "(extract(epoch FROM ends_at) * 1000)::bigint, limit_per_user, version";

constexpr const char* kOrderColumns =
    "order_id, user_id, product_id, quantity, (price * 100)::bigint, status, "
    "(extract(epoch FROM created_at) * 1000)::bigint, idempotency_key";

// $1..$7: id, cents, stock, starts_ms, ends_ms, limit, version. The row is
// kept only if not older (OrderRepository::UpsertProduct): racing admin
// changes persisted out of order converge to the last one.
constexpr const char* kUpsertProduct = R"sql(
INSERT INTO products (product_id, price, stock, starts_at, ends_at, limit_per_user, version)
VALUES ($1, $2::bigint::numeric / 100, $3,
        TIMESTAMPTZ 'epoch' + $4::bigint * INTERVAL '1 millisecond',
        TIMESTAMPTZ 'epoch' + $5::bigint * INTERVAL '1 millisecond', $6, $7)
ON CONFLICT (product_id) DO UPDATE SET
  price = excluded.price, stock = excluded.stock, starts_at = excluded.starts_at,
  ends_at = excluded.ends_at, limit_per_user = excluded.limit_per_user, version = excluded.version
WHERE products.version <= excluded.version
)sql";

constexpr const char* kInsertProductsSelect = R"sql(
INSERT INTO products (product_id, price, stock, starts_at, ends_at, limit_per_user)
SELECT id, cents::numeric / 100, stock,
       TIMESTAMPTZ 'epoch' + starts_ms * INTERVAL '1 millisecond',
       TIMESTAMPTZ 'epoch' + ends_ms * INTERVAL '1 millisecond', lim
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
     AS t(id, cents, stock, starts_ms, ends_ms, lim)
)sql";

constexpr const char* kOverwriteClause =
    " ON CONFLICT (product_id) DO UPDATE SET price = excluded.price, stock = excluded.stock, "
    "starts_at = excluded.starts_at, ends_at = excluded.ends_at, "
    "limit_per_user = excluded.limit_per_user";

constexpr int kPingTimeoutMs = 2000;

// Owns a PGresult.
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

std::string_view Text(const PGresult* r, int row, int col) {
  return {PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col))};
}

// A value the server computes from NOT NULL BIGINT columns (counts, stock):
// it always parses unless libpq or the SQL text is broken, a bug.
std::int64_t Int(const PGresult* r, int row, int col) {
  std::optional<std::int64_t> v =
      PQgetisnull(r, row, col) ? std::nullopt : ParseInt64(Text(r, row, col));
  FLASHSALE_CHECK(v.has_value(), "PostgreSQL answered a non-integer where the SQL yields one");
  return *v;
}

// The cells of one row of `table`, parsed strictly: a value that does not
// parse (written behind our back, or a schema that drifted from ours) makes
// error() an Internal naming the table, the row's key and the column, never
// a 0, an empty id or PENDING. `columns` names the result's columns in
// order; the first `key_columns` of them identify the row.
class RowReader {
 public:
  RowReader(const PGresult* r, int row, std::string_view table,
            std::span<const char* const> columns, int key_columns)
      : r_(r), row_(row), table_(table), columns_(columns), key_columns_(key_columns) {}

  std::int64_t Int(int col) {
    std::optional<std::int64_t> v = OptionalInt(col);
    if (!v && PQgetisnull(r_, row_, col)) Corrupt(col, "is NULL");
    return v.value_or(0);
  }
  std::optional<std::int64_t> OptionalInt(int col) {
    if (PQgetisnull(r_, row_, col)) return std::nullopt;
    std::optional<std::int64_t> v = ParseInt64(Text(r_, row_, col));
    if (!v) Corrupt(col, "is not an integer");
    return v;
  }
  OrderId Id(int col) {
    std::optional<OrderId> id = OrderId::Parse(Text(r_, row_, col));
    if (!id) Corrupt(col, "is not an order id");
    return id.value_or(OrderId());
  }
  OrderStatus StatusAt(int col) {
    std::optional<OrderStatus> s = ParseOrderStatus(Text(r_, row_, col));
    if (!s) Corrupt(col, "is not an order status");
    return s.value_or(OrderStatus::kPending);
  }
  // OK, or the first value that did not parse.
  [[nodiscard]] const Status& error() const { return error_; }

 private:
  void Corrupt(int col, std::string_view why) {
    if (!error_.ok()) return;
    std::string msg = "corrupt row in " + std::string(table_) + " (";
    for (int key = 0; key < key_columns_; ++key) {
      if (key > 0) msg += ", ";
      msg += std::string(columns_[static_cast<std::size_t>(key)]) + " '" +
             std::string(Text(r_, row_, key)) + "'";
    }
    msg += "): " + std::string(columns_[static_cast<std::size_t>(col)]) + " '" +
           std::string(Text(r_, row_, col)) + "' " + std::string(why);
    error_ = Status::Internal(std::move(msg));
  }

  const PGresult* r_;
  int row_;
  std::string_view table_;
  std::span<const char* const> columns_;
  int key_columns_;
  Status error_;
};

// The columns of kOrderColumns and kProductColumns, for RowReader's messages.
constexpr const char* kOrderColumnNames[] = {"order_id",   "user_id",        "product_id",
                                             "quantity",   "price",          "status",
                                             "created_at", "idempotency_key"};
constexpr const char* kProductColumnNames[] = {
    "product_id", "price", "stock", "starts_at", "ends_at", "limit_per_user", "version"};

Result<Order> ReadOrder(const PGresult* r, int row) {
  RowReader cells(r, row, "orders", kOrderColumnNames, 1);
  Order o;
  o.id = cells.Id(0);
  o.user = cells.Int(1);
  o.product = cells.Int(2);
  o.quantity = cells.Int(3);
  o.price = cells.Int(4);
  o.status = cells.StatusAt(5);
  o.created_at = cells.Int(6);
  if (!PQgetisnull(r, row, 7)) o.idempotency_key = std::string(Text(r, row, 7));
  if (!cells.error().ok()) return cells.error();
  return o;
}

Result<Product> ReadProduct(const PGresult* r, int row) {
  RowReader cells(r, row, "products", kProductColumnNames, 1);
  Product p{cells.Int(0),         cells.Int(1), cells.Int(2), cells.OptionalInt(3),
            cells.OptionalInt(4), cells.Int(5), cells.Int(6)};
  if (!cells.error().ok()) return cells.error();
  return p;
}

// libpq messages end with a newline; keep them on one line.
std::string Trimmed(const char* msg) {
  std::string s = msg != nullptr ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& ch : s) {
    if (ch == '\n') ch = ' ';
  }
  return s;
}

// Appends `v` to a COPY text-format field (backslash escapes).
void AppendCopyText(std::string& out, std::string_view v) {
  for (char ch : v) {
    switch (ch) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += ch;
    }
  }
}

// "{1,2,NULL}": an array literal of integers (no quoting needed).
template <class It, class Fn>
std::string IntArray(It begin, It end, Fn value) {
  std::string out = "{";
  for (It it = begin; it != end; ++it) {
    if (out.size() > 1) out += ',';
    std::optional<std::int64_t> v = value(*it);
    if (v) {
      AppendInt(out, *v);
    } else {
      out += "NULL";
    }
  }
  out += '}';
  return out;
}

void DiscardNotice(void*, const char* message) { spdlog::debug("postgres: {}", Trimmed(message)); }

}  // namespace

struct PgDatabase::Connection {
  PGconn* pg = nullptr;
  // Came from the idle list, so it may have gone stale: a failure on it is
  // retried once on a fresh connection. Cleared after a timeout (a server that
  // does not answer would only make the retry wait too).
  bool reused = false;
  ~Connection() { PQfinish(pg); }

  [[nodiscard]] bool broken() const { return PQstatus(pg) != CONNECTION_OK; }

  // A failure as a Status: connection trouble and transient server states
  // are Unavailable (retry); the server refusing the data itself is Invalid
  // (the same rows fail again: the consumer isolates and parks them);
  // everything else Internal.
  Status Error(const PGresult* r, std::string_view what, const std::string& server) const {
    std::string msg = std::string(what) + ": ";
    msg += Trimmed(r != nullptr && PQresultErrorMessage(r)[0] != '\0' ? PQresultErrorMessage(r)
                                                                      : PQerrorMessage(pg));
    msg += " (PostgreSQL at " + server + ")";
    if (broken() || r == nullptr) return Status::Unavailable(std::move(msg));
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const std::string_view cls = state != nullptr ? std::string_view(state).substr(0, 2) : "";
    // 08 connection, 40 rollback (deadlock, serialization), 53 resources,
    // 57 operator intervention (shutdown, statement timeout), 58 system.
    if (cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58") {
      return Status::Unavailable(std::move(msg));
    }
    // 22 data exception (a value out of range, bad encoding), 23 integrity
    // constraint (check, not null, unique), 54 program limit (e.g. an index
    // row too big): caused by the values sent, not by the server's state.
    if (cls == "22" || cls == "23" || cls == "54") return Status::Invalid(std::move(msg));
    return Status::Internal(std::move(msg));
  }

  // Runs `sql` with text parameters (nullptr = NULL); OK when the result
  // status is `expect`.
  Result<PgResult> Exec(const std::string& server, std::string_view what, const char* sql,
                        std::initializer_list<const char*> params = {},
                        ExecStatusType expect = PGRES_TUPLES_OK) {
    PgResult r(params.size() == 0 ? PQexec(pg, sql)
                                  : PQexecParams(pg, sql, static_cast<int>(params.size()), nullptr,
                                                 params.begin(), nullptr, nullptr, 0));
    if (r == nullptr || PQresultStatus(r.get()) != expect) return Error(r.get(), what, server);
    return r;
  }

  Status Command(const std::string& server, std::string_view what, const char* sql,
                 std::initializer_list<const char*> params = {}) {
    Result<PgResult> r = Exec(server, what, sql, params, PGRES_COMMAND_OK);
    return r.has_value() ? Status::Ok() : r.error();
  }

  // Best effort, after a failure inside a transaction.
  void Rollback() {
    if (!broken()) PQclear(PQexec(pg, "ROLLBACK"));
  }
};

PgDatabase::PgDatabase() = default;

PgDatabase::~PgDatabase() {
  MutexLock lock(&mu_);
  idle_.clear();
}

Result<std::unique_ptr<PgDatabase>> PgDatabase::Open(const Options& o) {
  std::unique_ptr<PgDatabase> db(new PgDatabase());
  db->options_ = o;
  if (db->options_.pool_size < 1) db->options_.pool_size = 1;

  // "host:port/db" for every message, from the URL itself (so a server that
  // never answered is still named).
  char* err = nullptr;
  PQconninfoOption* info = PQconninfoParse(o.url.c_str(), &err);
  if (info == nullptr) {
    std::string msg = Trimmed(err);
    PQfreemem(err);
    return Status::Invalid("bad PostgreSQL URL: " + msg);
  }
  std::string host = "localhost", port = "5432", dbname;
  for (PQconninfoOption* opt = info; opt->keyword != nullptr; ++opt) {
    if (opt->val == nullptr || opt->val[0] == '\0') continue;
    const std::string_view key = opt->keyword;
    if (key == "host" || (key == "hostaddr" && host == "localhost")) host = opt->val;
    if (key == "port") port = opt->val;
    if (key == "dbname") dbname = opt->val;
  }
  PQconninfoFree(info);
  db->server_ = host + ":" + port + (dbname.empty() ? "" : "/" + dbname);

  Result<ConnPtr> c = db->Borrow();
  if (!c.has_value()) return c.error();
  Status s = db->EnsureSchema(**c);
  db->Return(std::move(*c));
  if (!s.ok()) return s;
  spdlog::info("postgres: connected to {} (schema {}, pool {})", db->server_,
               o.schema.empty() ? "default" : o.schema, db->options_.pool_size);
  return db;
}

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
    return c.Command(server_, "COMMIT", "COMMIT");
  }();
  if (!s.ok()) c.Rollback();
  if (Result<PgResult> r = c.Exec(server_, "unlocking after DDL", kDdlUnlock);
      !r.has_value() && s.ok()) {
    return r.error();
  }
  return s;
}

Result<PgDatabase::ConnPtr> PgDatabase::Connect() {
  const std::string timeout = std::to_string(std::max(1, options_.connect_timeout_s));
  // Later keywords override the URL's: our timeout and keepalives (a dead
  // peer is noticed in ~25 s instead of hanging a call forever).
  const char* keys[] = {"dbname",          "connect_timeout",     "application_name", "keepalives",
                        "keepalives_idle", "keepalives_interval", "keepalives_count", nullptr};
  const char* values[] = {
      options_.url.c_str(), timeout.c_str(), "flashsale", "1", "10", "5", "3", nullptr};
  ConnPtr c(new Connection(), [](Connection* p) { delete p; });
  c->pg = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (c->pg == nullptr) return Status::Unavailable("out of memory connecting to PostgreSQL");
  if (PQstatus(c->pg) != CONNECTION_OK) {
    return Status::Unavailable("cannot connect to PostgreSQL at " + server_ + ": " +
                               Trimmed(PQerrorMessage(c->pg)));
  }
  PQsetNoticeProcessor(c->pg, DiscardNotice, nullptr);
  std::string setup = "SET client_min_messages = warning";
  if (!options_.schema.empty()) {
    char* ident = PQescapeIdentifier(c->pg, options_.schema.data(), options_.schema.size());
    if (ident == nullptr) return Status::Invalid("bad schema name: " + options_.schema);
    setup += std::string("; SET search_path TO ") + ident;
    PQfreemem(ident);
  }
  if (Status s = c->Command(server_, "setting up the session", setup.c_str()); !s.ok()) return s;
  if (Status s = c->Command(server_, "creating the staging table", kCreateStaging); !s.ok()) {
    return s;
  }
  return c;
}

Result<PgDatabase::ConnPtr> PgDatabase::Borrow() {
  MutexLock lock(&mu_);
  while (idle_.empty() && open_ >= options_.pool_size) idle_cv_.Wait(&mu_);
  if (!idle_.empty()) {
    ConnPtr c = std::move(idle_.back());
    idle_.pop_back();
    c->reused = true;
    return c;
  }
  ++open_;
  lock.Unlock();
  Result<ConnPtr> c = Connect();  // outside the lock: may take connect_timeout_s
  if (!c.has_value()) {
    lock.Lock();
    --open_;
    idle_cv_.Signal();
  }
  return c;
}

void PgDatabase::Return(ConnPtr c) {
  const bool broken = c->broken() || PQtransactionStatus(c->pg) != PQTRANS_IDLE;
  MutexLock lock(&mu_);
  if (broken) {
    c.reset();
    --open_;
  } else {
    idle_.push_back(std::move(c));
  }
  idle_cv_.Signal();
}

template <class T>
Result<T> PgDatabase::Run(const std::function<Result<T>(Connection&)>& body) {
  for (int attempt = 0;; ++attempt) {
    Result<ConnPtr> c = Borrow();
    if (!c.has_value()) return c.error();
    Result<T> r = body(**c);
    const bool stale = !r.has_value() && (*c)->broken() && (*c)->reused &&
                       r.error().code() == Status::Code::kUnavailable;
    Return(std::move(*c));
    if (stale && attempt == 0) {
      spdlog::info("postgres: idle connection to {} was broken; retrying on a new one", server_);
      continue;
    }
    return r;
  }
}

Status PgDatabase::UpsertProduct(const Product& p) {
  const std::string id = std::to_string(p.id), price = std::to_string(p.price),
                    stock = std::to_string(p.stock), limit = std::to_string(p.limit_per_user),
                    version = std::to_string(p.version);
  const std::optional<std::string> starts =
      p.starts_at ? std::optional(std::to_string(*p.starts_at)) : std::nullopt;
  const std::optional<std::string> ends =
      p.ends_at ? std::optional(std::to_string(*p.ends_at)) : std::nullopt;
  Result<bool> r = Run<bool>([&](Connection& c) -> Result<bool> {
    Status s =
        c.Command(server_, "saving product", kUpsertProduct,
                  {id.c_str(), price.c_str(), stock.c_str(), starts ? starts->c_str() : nullptr,
                   ends ? ends->c_str() : nullptr, limit.c_str(), version.c_str()});
    if (!s.ok()) return s;
    return true;
  });
  return r.has_value() ? Status::Ok() : r.error();
}

Status PgDatabase::InsertProducts(const std::vector<Product>& products, bool overwrite,
                                  std::int64_t* inserted) {
  *inserted = 0;
  // One row per id (ON CONFLICT DO UPDATE refuses to touch a row twice): the
  // first wins without overwrite, the last with it, as in SqliteDatabase.
  std::vector<Product> rows;
  std::unordered_map<ProductId, std::size_t> at;
  for (const Product& p : products) {
    auto [it, fresh] = at.emplace(p.id, rows.size());
    if (fresh) {
      rows.push_back(p);
    } else if (overwrite) {
      rows[it->second] = p;
    }
  }
  if (rows.empty()) return Status::Ok();
  using P = const Product&;
  const std::string ids = IntArray(rows.begin(), rows.end(), [](P p) { return p.id; });
  const std::string cents = IntArray(rows.begin(), rows.end(), [](P p) { return p.price; });
  const std::string stock = IntArray(rows.begin(), rows.end(), [](P p) { return p.stock; });
  const std::string starts = IntArray(rows.begin(), rows.end(), [](P p) { return p.starts_at; });
  const std::string ends = IntArray(rows.begin(), rows.end(), [](P p) { return p.ends_at; });
  const std::string lim = IntArray(rows.begin(), rows.end(), [](P p) { return p.limit_per_user; });
  const std::string sql = std::string(kInsertProductsSelect) +
                          (overwrite ? kOverwriteClause : " ON CONFLICT (product_id) DO NOTHING");
  Result<std::int64_t> r = Run<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
    Result<PgResult> res = c.Exec(
        server_, "inserting products", sql.c_str(),
        {ids.c_str(), cents.c_str(), stock.c_str(), starts.c_str(), ends.c_str(), lim.c_str()},
        PGRES_COMMAND_OK);
    if (!res.has_value()) return res.error();
    // PQcmdTuples gives the count's digits, or "" for a command without one.
    return ParseInt64(PQcmdTuples(res->get())).value_or(0);
  });
  if (!r.has_value()) return r.error();
  *inserted = *r;
  return Status::Ok();
}

Result<PersistSummary> PgDatabase::PersistBatch(std::span<const Order> orders) {
  PersistSummary summary;
  if (orders.empty()) return summary;

  // Everything that does not need the database, before borrowing a connection.
  std::string copy;
  copy.reserve(orders.size() * 96);
  std::vector<ProductId> products;
  products.reserve(orders.size());
  std::string ids = "{";
  ids.reserve(orders.size() * (OrderId::kLength + 1) + 2);
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const Order& o = orders[i];
    AppendInt(copy, static_cast<std::int64_t>(i));
    copy += '\t';
    AppendCopyText(copy, o.id.view());  // hex digits: nothing to escape in practice
    for (std::int64_t v : {o.user, o.product, o.quantity, o.price, o.created_at}) {
      copy += '\t';
      AppendInt(copy, v);
    }
    copy += '\t';
    if (o.idempotency_key.empty()) {
      copy += "\\N";
    } else {
      AppendCopyText(copy, o.idempotency_key);
    }
    copy += '\n';
    products.push_back(o.product);
    if (i > 0) ids += ',';
    // Array elements are quoted so any id text is taken literally.
    ids += '"';
    for (char ch : o.id.view()) {
      if (ch == '"' || ch == '\\') ids += '\\';
      ids += ch;
    }
    ids += '"';
  }
  ids += '}';
  std::sort(products.begin(), products.end());
  products.erase(std::unique(products.begin(), products.end()), products.end());
  const std::string product_array =
      IntArray(products.begin(), products.end(), [](ProductId p) { return p; });

  auto body = [&](Connection& c) -> Result<PersistSummary> {
    PersistSummary out;
    if (Status s = c.Command(server_, "BEGIN", "BEGIN"); !s.ok()) return s;
    auto fail = [&](Status s) -> Result<PersistSummary> {
      c.Rollback();
      return s;
    };
    // 1. Stage the batch.
    {
      Result<PgResult> r = c.Exec(server_, "starting COPY", kCopyBatch, {}, PGRES_COPY_IN);
      if (!r.has_value()) return fail(r.error());
      if (PQputCopyData(c.pg, copy.data(), static_cast<int>(copy.size())) != 1 ||
          PQputCopyEnd(c.pg, nullptr) != 1) {
        return fail(c.Error(nullptr, "sending COPY data", server_));
      }
      PgResult end(PQgetResult(c.pg));
      // Drain: after COPY there is one result, then nullptr.
      while (PGresult* extra = PQgetResult(c.pg)) PQclear(extra);
      if (end == nullptr || PQresultStatus(end.get()) != PGRES_COMMAND_OK) {
        return fail(c.Error(end.get(), "COPY of the batch", server_));
      }
    }
    // 2. Lock the products, in id order; learn stock and sold.
    std::unordered_map<ProductId, std::int64_t> left;  // stock - sold
    {
      Result<PgResult> r =
          c.Exec(server_, "locking products", kLockProducts, {product_array.c_str()});
      if (!r.has_value()) return fail(r.error());
      for (int row = 0; row < PQntuples(r->get()); ++row) {
        left[Int(r->get(), row, 0)] = Int(r->get(), row, 1) - Int(r->get(), row, 2);
      }
    }
    // 3. Which orders were decided before.
    Result<PgResult> stored =
        c.Exec(server_, "finding stored orders", kStoredOrdersSql, {ids.c_str()});
    if (!stored.has_value()) return fail(stored.error());
    std::unordered_set<std::string_view> existing;  // views into `stored`
    for (int row = 0; row < PQntuples(stored->get()); ++row) {
      existing.insert(Text(stored->get(), row, 0));
    }
    // 4. Decide, in batch order: the stock guard.
    std::string decisions = "{";
    decisions.reserve(orders.size() * 2 + 2);
    std::unordered_set<std::string_view> seen;
    seen.reserve(orders.size());
    for (std::size_t i = 0; i < orders.size(); ++i) {
      const Order& o = orders[i];
      char d = '0';
      auto product = left.find(o.product);
      if (product == left.end()) {
        out.unknown_product.push_back(i);
      } else if (!seen.insert(o.id.view()).second || existing.count(o.id.view()) > 0) {
        // Duplicate: counted below.
      } else if (o.quantity <= product->second) {
        product->second -= o.quantity;
        d = '1';
      } else {
        d = '2';
      }
      if (i > 0) decisions += ',';
      decisions += d;
    }
    decisions += '}';
    // 5. Insert the decided orders and move `sold`.
    {
      Result<PgResult> r = c.Exec(server_, "inserting orders", kInsertDecided, {decisions.c_str()});
      if (!r.has_value()) return fail(r.error());
      out.confirmed = Int(r->get(), 0, 0);
      out.failed = Int(r->get(), 0, 1);
    }
    out.duplicates = static_cast<std::int64_t>(orders.size() - out.unknown_product.size()) -
                     out.confirmed - out.failed;
    // 6. COMMIT. No answer, or a broken connection: the outcome is unknown.
    PgResult r(PQexec(c.pg, "COMMIT"));
    if (r != nullptr && PQresultStatus(r.get()) == PGRES_COMMAND_OK &&
        std::string_view(PQcmdStatus(r.get())) == "COMMIT") {
      return out;
    }
    Status s = c.Error(r.get(), "COMMIT", server_);
    if (c.broken() || r == nullptr) return Status::Unknown(s.message());
    c.Rollback();
    return s;  // the server answered with an error: rolled back
  };
  return Run<PersistSummary>(body);
}

Result<std::optional<Order>> PgDatabase::FindOrder(const OrderId& id) {
  const std::string key(id.view());
  const std::string sql =
      std::string("SELECT ") + kOrderColumns + " FROM orders WHERE order_id = $1";
  return Run<std::optional<Order>>([&](Connection& c) -> Result<std::optional<Order>> {
    Result<PgResult> r = c.Exec(server_, "reading order", sql.c_str(), {key.c_str()});
    if (!r.has_value()) return r.error();
    if (PQntuples(r->get()) == 0) return std::optional<Order>();
    Result<Order> order = ReadOrder(r->get(), 0);
    if (!order.has_value()) return order.error();
    return std::optional<Order>(std::move(*order));
  });
}

Result<std::optional<Order>> PgDatabase::FindOrderByIdempotencyKey(std::string_view key) {
  const std::string k(key);
  const std::string sql = std::string("SELECT ") + kOrderColumns +
                          " FROM orders WHERE idempotency_key = $1 "
                          "ORDER BY created_at, order_id LIMIT 1";
  return Run<std::optional<Order>>([&](Connection& c) -> Result<std::optional<Order>> {
    Result<PgResult> r =
        c.Exec(server_, "reading order by Idempotency-Key", sql.c_str(), {k.c_str()});
    if (!r.has_value()) return r.error();
    if (PQntuples(r->get()) == 0) return std::optional<Order>();
    Result<Order> order = ReadOrder(r->get(), 0);
    if (!order.has_value()) return order.error();
    return std::optional<Order>(std::move(*order));
  });
}

namespace {
Result<std::vector<Order>> ReadOrders(Result<PgResult> r) {
  if (!r.has_value()) return r.error();
  std::vector<Order> out;
  out.reserve(static_cast<std::size_t>(PQntuples(r->get())));
  for (int row = 0; row < PQntuples(r->get()); ++row) {
    Result<Order> order = ReadOrder(r->get(), row);
    if (!order.has_value()) return order.error();
    out.push_back(std::move(*order));
  }
  return out;
}
}  // namespace

Result<std::vector<Order>> PgDatabase::OrdersOfUser(UserId user, std::int64_t limit) {
  const std::string u = std::to_string(user), l = std::to_string(limit);
  const std::string sql = std::string("SELECT ") + kOrderColumns +
                          " FROM orders WHERE user_id = $1 ORDER BY created_at DESC, order_id "
                          "DESC LIMIT $2";
  return Run<std::vector<Order>>([&](Connection& c) {
    return ReadOrders(c.Exec(server_, "reading orders", sql.c_str(), {u.c_str(), l.c_str()}));
  });
}

Result<std::vector<Product>> PgDatabase::LoadProducts() {
  const std::string sql =
      std::string("SELECT ") + kProductColumns + " FROM products ORDER BY product_id";
  return Run<std::vector<Product>>([&](Connection& c) -> Result<std::vector<Product>> {
    Result<PgResult> r = c.Exec(server_, "reading products", sql.c_str());
    if (!r.has_value()) return r.error();
    std::vector<Product> out;
    for (int row = 0; row < PQntuples(r->get()); ++row) {
      Result<Product> product = ReadProduct(r->get(), row);
      if (!product.has_value()) return product.error();
      out.push_back(*product);
    }
    return out;
  });
}

Result<std::vector<SoldUnits>> PgDatabase::LoadSoldUnits() {
  // Order ids begin with the creation time: the greatest is the latest.
  constexpr const char* kSql =
      "SELECT product_id, user_id, sum(quantity)::bigint, max(order_id) FROM orders "
      "WHERE status <> 'FAILED' GROUP BY product_id, user_id ORDER BY product_id, user_id";
  return Run<std::vector<SoldUnits>>([&](Connection& c) -> Result<std::vector<SoldUnits>> {
    Result<PgResult> r = c.Exec(server_, "reading sold units", kSql);
    if (!r.has_value()) return r.error();
    std::vector<SoldUnits> out;
    constexpr const char* kColumns[] = {"product_id", "user_id", "sum(quantity)", "max(order_id)"};
    for (int row = 0; row < PQntuples(r->get()); ++row) {
      RowReader cells(r->get(), row, "orders", kColumns, 2);
      out.push_back({cells.Int(0), cells.Int(1), cells.Int(2), cells.Id(3)});
      if (!cells.error().ok()) return cells.error();
    }
    return out;
  });
}

Result<std::vector<Order>> PgDatabase::LoadFailedOrders() {
  const std::string sql = std::string("SELECT ") + kOrderColumns +
                          " FROM orders WHERE status = 'FAILED' ORDER BY created_at, order_id";
  return Run<std::vector<Order>>([&](Connection& c) {
    return ReadOrders(c.Exec(server_, "reading failed orders", sql.c_str()));
  });
}

Result<OrderCounts> PgDatabase::CountOrders() {
  constexpr const char* kSql =
      "SELECT count(*) FILTER (WHERE status = 'CONFIRMED'), "
      "count(*) FILTER (WHERE status = 'FAILED') FROM orders";
  return Run<OrderCounts>([&](Connection& c) -> Result<OrderCounts> {
    Result<PgResult> r = c.Exec(server_, "counting orders", kSql);
    if (!r.has_value()) return r.error();
    return OrderCounts{Int(r->get(), 0, 0), Int(r->get(), 0, 1)};
  });
}

Result<std::vector<Order>> PgDatabase::LoadAllOrders() {
  const std::string sql =
      std::string("SELECT ") + kOrderColumns + " FROM orders ORDER BY created_at, order_id";
  return Run<std::vector<Order>>([&](Connection& c) {
    return ReadOrders(c.Exec(server_, "reading all orders", sql.c_str()));
  });
}

Status PgDatabase::Ping() {
  // Asynchronous, so a server that accepts but never answers cannot hold
  // /readyz: after kPingTimeoutMs the connection is dropped.
  Result<bool> r = Run<bool>([&](Connection& c) -> Result<bool> {
    if (PQsendQuery(c.pg, "SELECT 1") != 1) return c.Error(nullptr, "ping", server_);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kPingTimeoutMs);
    while (PQisBusy(c.pg)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      pollfd pfd{PQsocket(c.pg), POLLIN, 0};
      if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
        // Not answered in time: this connection is useless now.
        PQfinish(c.pg);
        c.pg = nullptr;
        c.reused = false;
        return Status::Unavailable("PostgreSQL at " + server_ + " did not answer a ping within " +
                                   std::to_string(kPingTimeoutMs) + " ms");
      }
      if (PQconsumeInput(c.pg) != 1) return c.Error(nullptr, "ping", server_);
    }
    PgResult res(PQgetResult(c.pg));
    while (PGresult* extra = PQgetResult(c.pg)) PQclear(extra);
    if (res == nullptr || PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
      return c.Error(res.get(), "ping", server_);
    }
    return true;
  });
  return r.has_value() ? Status::Ok() : r.error();
}

}  // namespace flashsale::postgres
