// PgDatabase's order repository: PersistBatch (COPY into the staging table,
// product locks, the stock guard, one INSERT, in-flight payments applied) and
// the order reads (FindOrder, FindOrderByIdempotencyKey, OrdersOfUser), with
// the row parser they share with the audit queries of pg_catalog.cpp.

#include <libpq-fe.h>

#include <algorithm>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "backends/postgres/pg_database.hpp"
#include "backends/postgres/pg_internal.hpp"
#include "core/numbers.hpp"

namespace flashsale::postgres {
namespace {

// Fills the staging table (kCreateStaging, pg_internal.hpp) of this connection.
constexpr const char* kCopyBatch =
    "COPY flashsale_batch (idx, order_id, user_id, product_id, quantity, price_cents, "
    "created_ms, idempotency_key, pay_by_ms) FROM STDIN";

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
                      idempotency_key, pay_by)
  SELECT b.order_id, b.user_id, b.product_id, b.quantity, b.price_cents::numeric / 100,
         CASE d.decision[b.idx + 1] WHEN 1 THEN 'CONFIRMED' ELSE 'FAILED' END,
         TIMESTAMPTZ 'epoch' + b.created_ms * INTERVAL '1 millisecond', b.idempotency_key,
         TIMESTAMPTZ 'epoch' + b.pay_by_ms * INTERVAL '1 millisecond'
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

// Waits for any Pay transaction recording an in-flight payment right now
// (its INSERT holds ROW EXCLUSIVE; a later one waits for our COMMIT and then
// finds its order stored), then says whether any payment is recorded at all:
// the apply below runs only then, so an empty order_payments costs one round
// trip. Each statement of a simple query takes its own snapshot, so the
// SELECT sees payments committed while we waited.
constexpr const char* kLockPayments =
    "LOCK TABLE order_payments IN SHARE MODE; SELECT EXISTS (SELECT 1 FROM order_payments)";

// $1: the batch's decisions (as kInsertDecided). For the orders this batch
// decided (stored now, by it or by a racing consumer): a payment recorded
// while in flight makes a CONFIRMED order paid in time with its total PAID;
// a FAILED order keeps its payment_ref (the shop refunds it). The payment
// rows of stored orders are deleted; those of orders not stored (unknown
// product) stay. Answers how many orders it made PAID.
constexpr const char* kApplyPayments = R"sql(
WITH pay AS (
  DELETE FROM order_payments p
  USING flashsale_batch b, (SELECT $1::int2[] AS decision) d, orders o
  WHERE p.order_id = b.order_id AND d.decision[b.idx + 1] IN (1, 2) AND o.order_id = b.order_id
  RETURNING p.order_id, p.payment_ref, p.received_at, p.amount
), paid AS (
  UPDATE orders o SET
    status = CASE WHEN o.status = 'FAILED' THEN o.status ELSE 'PAID' END,
    paid_at = CASE WHEN o.status = 'FAILED' THEN o.paid_at ELSE pay.received_at END,
    payment_ref = pay.payment_ref
  FROM pay
  WHERE o.order_id = pay.order_id
    AND (o.status = 'FAILED' OR
         (o.status = 'CONFIRMED' AND o.pay_by IS NOT NULL AND pay.received_at < o.pay_by
          AND pay.amount = o.price * o.quantity))
  RETURNING o.status
)
SELECT count(*) FILTER (WHERE status = 'PAID') FROM paid
)sql";

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

}  // namespace

Result<Order> ReadOrder(const PGresult* r, int row) { return ReadOrderRow(PgCells{r, row}); }

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
    copy += '\t';
    if (o.pay_by) {
      AppendInt(copy, *o.pay_by);
    } else {
      copy += "\\N";
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
    // 6. Payments received while these orders were in flight.
    {
      Result<PgResult> r = c.Exec(server_, "locking order_payments", kLockPayments);
      if (!r.has_value()) return fail(r.error());
      if (Text(r->get(), 0, 0) == "t") {
        Result<PgResult> applied =
            c.Exec(server_, "applying in-flight payments", kApplyPayments, {decisions.c_str()});
        if (!applied.has_value()) return fail(applied.error());
      }
    }
    // 7. COMMIT. No answer, or a broken connection: the outcome is unknown.
    if (Status s = c.Commit(server_); !s.ok()) return s;
    return out;
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

Result<std::vector<Order>> PgDatabase::OrdersOfUser(UserId user, std::int64_t limit) {
  const std::string u = std::to_string(user), l = std::to_string(limit);
  const std::string sql = std::string("SELECT ") + kOrderColumns +
                          " FROM orders WHERE user_id = $1 ORDER BY created_at DESC, order_id "
                          "DESC LIMIT $2";
  return Run<std::vector<Order>>([&](Connection& c) {
    return ReadOrders(c.Exec(server_, "reading orders", sql.c_str(), {u.c_str(), l.c_str()}));
  });
}

}  // namespace flashsale::postgres
