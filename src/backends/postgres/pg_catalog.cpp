// PgDatabase's catalog and audit queries: product upsert, seeding and loads,
// sold units (for rebuilding stock at startup and for seed), and the order
// counts and listings that `audit` and the tests read.

#include <libpq-fe.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "backends/postgres/pg_database.hpp"
#include "backends/postgres/pg_internal.hpp"
#include "core/numbers.hpp"
#include "core/signatures.hpp"
#include "core/stored_waiting_room.hpp"

namespace flashsale::postgres {
namespace {

// What ReadProduct parses, in its order.
constexpr const char* kProductColumns =
    "product_id, (price * 100)::bigint, stock, (extract(epoch FROM starts_at) * 1000)::bigint, "
    "(extract(epoch FROM ends_at) * 1000)::bigint, limit_per_user, payment_window_s, version, "
    "waiting_room_admit_per_s, waiting_room_pass_ttl_s";

// $1..$10: id, cents, stock, starts_ms, ends_ms, limit, version, window_s,
// wr_admit_per_s, wr_pass_ttl_s. The row is
// kept only if not older (OrderRepository::UpsertProduct): racing admin
// changes persisted out of order converge to the last one.
constexpr const char* kUpsertProduct = R"sql(
INSERT INTO products (product_id, price, stock, starts_at, ends_at, limit_per_user, version,
                      payment_window_s, waiting_room_admit_per_s, waiting_room_pass_ttl_s)
VALUES ($1, $2::bigint::numeric / 100, $3,
        TIMESTAMPTZ 'epoch' + $4::bigint * INTERVAL '1 millisecond',
        TIMESTAMPTZ 'epoch' + $5::bigint * INTERVAL '1 millisecond', $6, $7, $8::bigint,
        $9::bigint, $10::bigint)
ON CONFLICT (product_id) DO UPDATE SET
  price = excluded.price, stock = excluded.stock, starts_at = excluded.starts_at,
  ends_at = excluded.ends_at, limit_per_user = excluded.limit_per_user, version = excluded.version,
  payment_window_s = excluded.payment_window_s,
  waiting_room_admit_per_s = excluded.waiting_room_admit_per_s,
  waiting_room_pass_ttl_s = excluded.waiting_room_pass_ttl_s
WHERE products.version <= excluded.version
)sql";

constexpr const char* kInsertProductsSelect = R"sql(
INSERT INTO products (product_id, price, stock, starts_at, ends_at, limit_per_user,
                      payment_window_s, waiting_room_admit_per_s, waiting_room_pass_ttl_s)
SELECT id, cents::numeric / 100, stock,
       TIMESTAMPTZ 'epoch' + starts_ms * INTERVAL '1 millisecond',
       TIMESTAMPTZ 'epoch' + ends_ms * INTERVAL '1 millisecond', lim, window_s, wr_admit, wr_ttl
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::bigint[])
     AS t(id, cents, stock, starts_ms, ends_ms, lim, window_s, wr_admit, wr_ttl)
)sql";

constexpr const char* kOverwriteClause =
    " ON CONFLICT (product_id) DO UPDATE SET price = excluded.price, stock = excluded.stock, "
    "starts_at = excluded.starts_at, ends_at = excluded.ends_at, "
    "limit_per_user = excluded.limit_per_user, payment_window_s = excluded.payment_window_s, "
    "waiting_room_admit_per_s = excluded.waiting_room_admit_per_s, "
    "waiting_room_pass_ttl_s = excluded.waiting_room_pass_ttl_s";

// The columns of kProductColumns, for RowReader's messages.
constexpr const char* kProductColumnNames[] = {"product_id",
                                               "price",
                                               "stock",
                                               "starts_at",
                                               "ends_at",
                                               "limit_per_user",
                                               "payment_window_s",
                                               "version",
                                               "waiting_room_admit_per_s",
                                               "waiting_room_pass_ttl_s"};

Result<Product> ReadProduct(const PGresult* r, int row) {
  RowReader cells(r, row, "products", kProductColumnNames, 1);
  Product p;
  p.id = cells.Int(0);
  p.price = cells.Int(1);
  p.stock = cells.Int(2);
  p.starts_at = cells.OptionalInt(3);
  p.ends_at = cells.OptionalInt(4);
  p.limit_per_user = cells.Int(5);
  p.payment_window_s = cells.OptionalInt(6);
  p.version = cells.Int(7);
  p.waiting_room = WaitingRoomOf(cells.OptionalInt(8), cells.OptionalInt(9));
  if (!cells.error().ok()) return cells.error();
  return p;
}

}  // namespace

Status PgDatabase::UpsertProduct(const Product& p) {
  const std::string id = std::to_string(p.id), price = std::to_string(p.price),
                    stock = std::to_string(p.stock), limit = std::to_string(p.limit_per_user),
                    version = std::to_string(p.version);
  const std::optional<std::string> window =
      p.payment_window_s ? std::optional(std::to_string(*p.payment_window_s)) : std::nullopt;
  const std::optional<std::string> starts =
      p.starts_at ? std::optional(std::to_string(*p.starts_at)) : std::nullopt;
  const std::optional<std::string> wr_admit =
      p.waiting_room ? std::optional(std::to_string(p.waiting_room->admit_per_s)) : std::nullopt;
  const std::optional<std::string> wr_ttl =
      p.waiting_room ? std::optional(std::to_string(p.waiting_room->pass_ttl_s)) : std::nullopt;
  const std::optional<std::string> ends =
      p.ends_at ? std::optional(std::to_string(*p.ends_at)) : std::nullopt;
  Result<bool> r = Run<bool>([&](Connection& c) -> Result<bool> {
    Status s =
        c.Command(server_, "saving product", kUpsertProduct,
                  {id.c_str(), price.c_str(), stock.c_str(), starts ? starts->c_str() : nullptr,
                   ends ? ends->c_str() : nullptr, limit.c_str(), version.c_str(),
                   window ? window->c_str() : nullptr, wr_admit ? wr_admit->c_str() : nullptr,
                   wr_ttl ? wr_ttl->c_str() : nullptr});
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
  const std::string window =
      IntArray(rows.begin(), rows.end(), [](P p) { return p.payment_window_s; });
  const std::string wr_admit = IntArray(rows.begin(), rows.end(), [](P p) { return AdmitPerS(p); });
  const std::string wr_ttl = IntArray(rows.begin(), rows.end(), [](P p) { return PassTtlS(p); });
  const std::string sql = std::string(kInsertProductsSelect) +
                          (overwrite ? kOverwriteClause : " ON CONFLICT (product_id) DO NOTHING");
  Result<std::int64_t> r = Run<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
    Result<PgResult> res =
        c.Exec(server_, "inserting products", sql.c_str(),
               {ids.c_str(), cents.c_str(), stock.c_str(), starts.c_str(), ends.c_str(),
                lim.c_str(), window.c_str(), wr_admit.c_str(), wr_ttl.c_str()},
               PGRES_COMMAND_OK);
    if (!res.has_value()) return res.error();
    // PQcmdTuples gives the count's digits, or "" for a command without one.
    return ParseInt64(PQcmdTuples(res->get())).value_or(0);
  });
  if (!r.has_value()) return r.error();
  *inserted = *r;
  return Status::Ok();
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
  // Order ids begin with the creation time: the greatest is the latest. Only
  // orders holding units count (domain.hpp): closed ones gave theirs back.
  const std::string sql =
      std::string(
          "SELECT product_id, user_id, sum(quantity)::bigint, max(order_id) FROM orders "
          "WHERE status IN ") +
      kHeldStatusesSql + " GROUP BY product_id, user_id ORDER BY product_id, user_id";
  return Run<std::vector<SoldUnits>>([&](Connection& c) -> Result<std::vector<SoldUnits>> {
    Result<PgResult> r = c.Exec(server_, "reading sold units", sql.c_str());
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
      "count(*) FILTER (WHERE status = 'FAILED'), count(*) FILTER (WHERE status = 'PAID'), "
      "count(*) FILTER (WHERE status = 'CANCELLED'), "
      "count(*) FILTER (WHERE status = 'EXPIRED') FROM orders";
  return Run<OrderCounts>([&](Connection& c) -> Result<OrderCounts> {
    Result<PgResult> r = c.Exec(server_, "counting orders", kSql);
    if (!r.has_value()) return r.error();
    const PGresult* res = r->get();
    return OrderCounts{Int(res, 0, 0), Int(res, 0, 1), Int(res, 0, 2), Int(res, 0, 3),
                       Int(res, 0, 4)};
  });
}

Result<std::vector<Order>> PgDatabase::LoadAllOrders() {
  const std::string sql =
      std::string("SELECT ") + kOrderColumns + " FROM orders ORDER BY created_at, order_id";
  return Run<std::vector<Order>>([&](Connection& c) {
    return ReadOrders(c.Exec(server_, "reading all orders", sql.c_str()));
  });
}

Result<std::string> PgDatabase::SharedSecret(std::string_view name) {
  const std::string key(name);
  const std::string candidate = RandomSecretHex();
  return Run<std::string>([&](Connection& c) -> Result<std::string> {
    // One statement: insert ours unless one exists, and read what is there.
    Result<PgResult> r = c.Exec(server_, "reading a setting",
                                "WITH ins AS (INSERT INTO settings(name, value) VALUES ($1, $2) "
                                "ON CONFLICT (name) DO NOTHING RETURNING value) SELECT value FROM "
                                "ins UNION ALL SELECT value FROM settings WHERE name = $1 LIMIT 1",
                                {key.c_str(), candidate.c_str()});
    if (!r) return r.error();
    if (PQntuples(r->get()) != 1) return Status::Internal("setting " + key + " not found");
    return std::string(Text(r->get(), 0, 0));
  });
}

Result<std::vector<Order>> PgDatabase::LoadUnreturnedClosed() {
  const std::string sql = std::string("SELECT ") + kOrderColumns +
                          " FROM orders WHERE NOT units_returned ORDER BY closed_at, order_id";
  return Run<std::vector<Order>>([&](Connection& c) {
    return ReadOrders(c.Exec(server_, "reading closed orders to return", sql.c_str()));
  });
}

}  // namespace flashsale::postgres
