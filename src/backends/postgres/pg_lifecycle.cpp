// PgDatabase's order lifecycle (core/order_lifecycle.hpp): Pay, Cancel,
// ExpireDue, NextPayBy and the outbox ReturnClosedUnits. Every decision is
// one transaction; the lock order that keeps them free of deadlocks is in
// pg_database.hpp ("Lifecycle locking").

#include <libpq-fe.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "backends/postgres/pg_database.hpp"
#include "backends/postgres/pg_internal.hpp"
#include "core/numbers.hpp"

namespace flashsale::postgres {
namespace {

// ms since the epoch as a TIMESTAMPTZ, for a text parameter `p` ("$2").
std::string Ms(std::string_view p) {
  return "(TIMESTAMPTZ 'epoch' + " + std::string(p) + "::bigint * INTERVAL '1 millisecond')";
}

// Pay starts over when the order landed while it recorded the payment
// in flight (it then decides on the stored row). Landing again and again
// would take a consumer that stores the order and rolls back in a loop:
// after this many tries, Unavailable (the caller retries).
constexpr int kPayAttempts = 5;

}  // namespace

Result<PaymentDecision> PgDatabase::Pay(const Payment& payment,
                                        const std::optional<Order>& in_flight) {
  const std::string id(payment.order.view());
  const std::string ref = payment.payment_ref;
  const std::string amount = std::to_string(payment.amount);
  const std::string received = std::to_string(payment.received_at);
  const std::string select =
      std::string("SELECT ") + kOrderColumns + " FROM orders WHERE order_id = $1 FOR UPDATE";
  // $1 id, $2 received_at: CONFIRMED past its pay_by closes EXPIRED here, and
  // its product gives back the units (order row, then product row).
  const std::string expire =
      "WITH c AS (UPDATE orders SET status = 'EXPIRED', closed_at = " + Ms("$2") +
      ", units_returned = FALSE WHERE order_id = $1 AND status = 'CONFIRMED' RETURNING *), "
      "p AS (UPDATE products SET sold = products.sold - c.quantity FROM c "
      "WHERE products.product_id = c.product_id) SELECT " +
      kOrderColumns + " FROM c";
  // $1 id, $2 received_at, $3 payment_ref.
  const std::string paid = "UPDATE orders SET status = 'PAID', paid_at = " + Ms("$2") +
                           ", payment_ref = $3 WHERE order_id = $1 AND status = 'CONFIRMED' "
                           "RETURNING " +
                           kOrderColumns;
  const std::string record =
      "INSERT INTO order_payments (order_id, payment_ref, amount, received_at) VALUES ($1, $3, "
      "$4::bigint::numeric / 100, " +
      Ms("$2") + ") ON CONFLICT (order_id) DO NOTHING RETURNING 1";

  auto body = [&](Connection& c) -> Result<PaymentDecision> {
    for (int attempt = 0; attempt < kPayAttempts; ++attempt) {
      PaymentDecision d;
      auto fail = [&](Status s) -> Result<PaymentDecision> {
        c.Rollback();
        return s;
      };
      // Ends a transaction that changed nothing.
      auto done = [&]() -> Result<PaymentDecision> {
        c.Rollback();
        return d;
      };
      // An UPDATE ... RETURNING kOrderColumns that must have found the row
      // (the SELECT ... FOR UPDATE holds it): then COMMIT.
      auto apply = [&](Result<PgResult> r, PaymentOutcome outcome) -> Result<PaymentDecision> {
        if (!r.has_value()) return fail(r.error());
        if (PQntuples(r->get()) != 1) {
          return fail(Status::Internal("order " + id + " changed under its row lock"));
        }
        Result<Order> o = ReadOrder(r->get(), 0);
        if (!o.has_value()) return fail(o.error());
        if (Status s = c.Commit(server_); !s.ok()) return s;
        d.outcome = outcome;
        d.order = std::move(*o);
        return d;
      };

      if (Status s = c.Command(server_, "BEGIN", "BEGIN"); !s.ok()) return s;
      Result<PgResult> r = c.Exec(server_, "reading order to pay", select.c_str(), {id.c_str()});
      if (!r.has_value()) return fail(r.error());
      if (PQntuples(r->get()) == 1) {
        Result<Order> stored = ReadOrder(r->get(), 0);
        if (!stored.has_value()) return fail(stored.error());
        d.order = std::move(*stored);
        const Order& o = d.order;
        if (o.status == OrderStatus::kPaid) {
          d.outcome = o.payment_ref == payment.payment_ref ? PaymentOutcome::kPaid
                                                           : PaymentOutcome::kWrongStatus;
          return done();
        }
        if (o.status != OrderStatus::kConfirmed || !o.pay_by) {
          d.outcome = PaymentOutcome::kWrongStatus;
          return done();
        }
        if (o.Total() != payment.amount) {
          d.outcome = PaymentOutcome::kAmountMismatch;
          return done();
        }
        if (*o.pay_by <= payment.received_at) {
          return apply(c.Exec(server_, "expiring a late order", expire.c_str(),
                              {id.c_str(), received.c_str()}),
                       PaymentOutcome::kWrongStatus);
        }
        return apply(c.Exec(server_, "paying an order", paid.c_str(),
                            {id.c_str(), received.c_str(), ref.c_str()}),
                     PaymentOutcome::kPaid);
      }

      // Not stored: decided from the in-flight record.
      if (!in_flight) {
        d.outcome = PaymentOutcome::kNotFound;
        return done();
      }
      d.order = *in_flight;
      if (!in_flight->pay_by) {
        d.outcome = PaymentOutcome::kWrongStatus;
        return done();
      }
      if (in_flight->Total() != payment.amount) {
        d.outcome = PaymentOutcome::kAmountMismatch;
        return done();
      }
      if (*in_flight->pay_by <= payment.received_at) {
        d.outcome = PaymentOutcome::kWrongStatus;  // PENDING: it expires when it lands
        return done();
      }
      r = c.Exec(server_, "recording a payment", record.c_str(),
                 {id.c_str(), received.c_str(), ref.c_str(), amount.c_str()});
      if (!r.has_value()) return fail(r.error());
      d.outcome = PaymentOutcome::kRecorded;
      d.order.payment_ref = payment.payment_ref;
      if (PQntuples(r->get()) == 0) {  // recorded before: by this payment or another
        r = c.Exec(server_, "reading a recorded payment",
                   "SELECT payment_ref FROM order_payments WHERE order_id = $1", {id.c_str()});
        if (!r.has_value()) return fail(r.error());
        if (PQntuples(r->get()) == 1) {
          d.order.payment_ref = std::string(Text(r->get(), 0, 0));
          if (d.order.payment_ref != payment.payment_ref) {
            d.outcome = PaymentOutcome::kWrongStatus;
            return done();
          }
        }
        // No row: the batch that landed it deleted it since; caught below.
      }
      // The order may have landed after our first read (its batch waited
      // for nothing of ours, or applied the row we saw): decide it stored.
      r = c.Exec(server_, "checking the order landed", "SELECT 1 FROM orders WHERE order_id = $1",
                 {id.c_str()});
      if (!r.has_value()) return fail(r.error());
      if (PQntuples(r->get()) == 1) {
        c.Rollback();
        continue;
      }
      if (Status s = c.Commit(server_); !s.ok()) return s;
      return d;
    }
    return Status::Unavailable("order " + id +
                               " kept landing and disappearing while a payment was recorded");
  };
  return Run<PaymentDecision>(body);
}

Result<CancelDecision> PgDatabase::Cancel(const OrderId& id, UnixMillis now) {
  const std::string key(id.view()), at = std::to_string(now);
  // One statement: the order row, then its product's (pg_database.hpp).
  const std::string cancel =
      "WITH c AS (UPDATE orders SET status = 'CANCELLED', closed_at = " + Ms("$2") +
      ", units_returned = FALSE WHERE order_id = $1 AND status = 'CONFIRMED' RETURNING *), "
      "p AS (UPDATE products SET sold = products.sold - c.quantity FROM c "
      "WHERE products.product_id = c.product_id) SELECT " +
      kOrderColumns + " FROM c";
  const std::string find =
      std::string("SELECT ") + kOrderColumns + " FROM orders WHERE order_id = $1";
  return Run<CancelDecision>([&](Connection& c) -> Result<CancelDecision> {
    CancelDecision d;
    Result<PgResult> r =
        c.Exec(server_, "cancelling an order", cancel.c_str(), {key.c_str(), at.c_str()});
    if (!r.has_value()) return r.error();
    if (PQntuples(r->get()) == 1) {
      d.outcome = CancelOutcome::kCancelled;
    } else {
      r = c.Exec(server_, "reading order", find.c_str(), {key.c_str()});
      if (!r.has_value()) return r.error();
      if (PQntuples(r->get()) == 0) return d;  // kNotFound
      d.outcome = CancelOutcome::kWrongStatus;
    }
    Result<Order> o = ReadOrder(r->get(), 0);
    if (!o.has_value()) return o.error();
    d.order = std::move(*o);
    return d;
  });
}

Result<std::int64_t> PgDatabase::ExpireDue(UnixMillis now, std::int64_t max) {
  const std::string at = std::to_string(now),
                    limit = std::to_string(std::max<std::int64_t>(max, 0));
  // Orders being paid or cancelled right now are skipped (SKIP LOCKED), as
  // are those another closer is expiring: the next call sees them again if
  // they are still CONFIRMED. The UPDATE re-checks the status. A recorded
  // payment (of an order that landed without applying it) keeps the order
  // from expiring: applied below.
  const std::string expire =
      "WITH due AS (SELECT order_id FROM orders o WHERE status = 'CONFIRMED' AND pay_by IS NOT "
      "NULL AND pay_by <= " +
      Ms("$1") +
      " AND NOT EXISTS (SELECT 1 FROM order_payments p WHERE p.order_id = o.order_id) "
      "ORDER BY pay_by LIMIT $2 FOR UPDATE SKIP LOCKED), "
      "c AS (UPDATE orders o SET status = 'EXPIRED', closed_at = " +
      Ms("$1") +
      ", units_returned = FALSE FROM due WHERE o.order_id = due.order_id AND o.status = "
      "'CONFIRMED' RETURNING o.product_id, o.quantity) "
      "SELECT product_id, sum(quantity)::bigint, count(*) FROM c GROUP BY product_id "
      "ORDER BY product_id";
  // Products locked in id order first, as PersistBatch locks them (an
  // UPDATE's join would lock them in whatever order its plan meets them).
  constexpr const char* kLockProducts =
      "SELECT 1 FROM products WHERE product_id = ANY($1::bigint[]) ORDER BY product_id "
      "FOR UPDATE";
  constexpr const char* kGiveBack =
      "UPDATE products SET sold = products.sold - d.units "
      "FROM unnest($1::bigint[], $2::bigint[]) AS d(id, units) WHERE products.product_id = d.id";
  // Recorded payments of stored orders (none unless an order landed without
  // its batch applying them): CONFIRMED and in time with the total -> PAID;
  // the rows of stored orders go. Last, after the product locks (products
  // before order_payments, as in PersistBatch), and skipping orders locked
  // by a payment or a cancel.
  constexpr const char* kApplyLanded = R"sql(
WITH landed AS (
  SELECT o.order_id, o.status, o.pay_by, o.price * o.quantity AS total
  FROM order_payments p JOIN orders o ON o.order_id = p.order_id
  FOR UPDATE OF o SKIP LOCKED
), pay AS (
  DELETE FROM order_payments p USING landed WHERE p.order_id = landed.order_id
  RETURNING p.order_id, p.payment_ref, p.received_at, p.amount
)
UPDATE orders o SET status = 'PAID', paid_at = pay.received_at, payment_ref = pay.payment_ref
FROM pay
WHERE o.order_id = pay.order_id AND o.status = 'CONFIRMED' AND o.pay_by IS NOT NULL
  AND pay.received_at < o.pay_by AND pay.amount = o.price * o.quantity
)sql";
  return Run<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
    auto fail = [&](Status s) -> Result<std::int64_t> {
      c.Rollback();
      return s;
    };
    if (Status s = c.Command(server_, "BEGIN", "BEGIN"); !s.ok()) return s;
    std::int64_t expired = 0;
    Result<PgResult> r =
        c.Exec(server_, "expiring due orders", expire.c_str(), {at.c_str(), limit.c_str()});
    if (!r.has_value()) return fail(r.error());
    const int rows = PQntuples(r->get());
    if (rows > 0) {
      std::vector<int> all(static_cast<std::size_t>(rows));
      for (int i = 0; i < rows; ++i) {
        all[static_cast<std::size_t>(i)] = i;
        expired += Int(r->get(), i, 2);
      }
      const PGresult* res = r->get();
      const std::string ids =
          IntArray(all.begin(), all.end(), [res](int i) { return Int(res, i, 0); });
      const std::string units =
          IntArray(all.begin(), all.end(), [res](int i) { return Int(res, i, 1); });
      Result<PgResult> locked = c.Exec(server_, "locking products", kLockProducts, {ids.c_str()});
      if (!locked.has_value()) return fail(locked.error());
      if (Status s =
              c.Command(server_, "giving back units", kGiveBack, {ids.c_str(), units.c_str()});
          !s.ok()) {
        return fail(s);
      }
    }
    r = c.Exec(server_, "looking for recorded payments",
               "SELECT EXISTS (SELECT 1 FROM order_payments p JOIN orders o USING (order_id))");
    if (!r.has_value()) return fail(r.error());
    if (Text(r->get(), 0, 0) == "t") {
      if (Status s = c.Command(server_, "applying recorded payments", kApplyLanded); !s.ok()) {
        return fail(s);
      }
    }
    if (Status s = c.Commit(server_); !s.ok()) return s;
    return expired;
  });
}

Result<std::optional<UnixMillis>> PgDatabase::NextPayBy() {
  // min() over the partial index orders_awaiting_payment: one index probe.
  constexpr const char* kSql =
      "SELECT (extract(epoch FROM min(pay_by)) * 1000)::bigint FROM orders "
      "WHERE status = 'CONFIRMED' AND pay_by IS NOT NULL";
  return Run<std::optional<UnixMillis>>([&](Connection& c) -> Result<std::optional<UnixMillis>> {
    Result<PgResult> r = c.Exec(server_, "reading the next pay_by", kSql);
    if (!r.has_value()) return r.error();
    if (PQgetisnull(r->get(), 0, 0)) return std::optional<UnixMillis>();
    return std::optional<UnixMillis>(Int(r->get(), 0, 0));
  });
}

Result<std::int64_t> PgDatabase::ReturnClosedUnits(std::int64_t max, const GiveBack& give_back) {
  const std::string limit = std::to_string(std::max<std::int64_t>(max, 0));
  const std::string claim = std::string("SELECT ") + kOrderColumns +
                            " FROM orders WHERE NOT units_returned ORDER BY closed_at, order_id "
                            "LIMIT $1 FOR UPDATE SKIP LOCKED";
  return Run<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
    auto fail = [&](Status s) -> Result<std::int64_t> {
      c.Rollback();
      return s;
    };
    if (Status s = c.Command(server_, "BEGIN", "BEGIN"); !s.ok()) return s;
    Result<std::vector<Order>> claimed =
        ReadOrders(c.Exec(server_, "claiming closed orders", claim.c_str(), {limit.c_str()}));
    if (!claimed.has_value()) return fail(claimed.error());
    if (claimed->empty()) {
      c.Rollback();
      return std::int64_t{0};
    }
    // Row locks held: no other closer gets these orders meanwhile.
    const std::vector<bool> given = give_back(*claimed);
    std::string ids = "{";
    std::int64_t marked = 0;
    for (std::size_t i = 0; i < claimed->size() && i < given.size(); ++i) {
      if (!given[i]) continue;
      if (marked++ > 0) ids += ',';
      ids += (*claimed)[i].id.view();  // hex digits: no quoting needed
    }
    ids += '}';
    if (marked == 0) {
      c.Rollback();
      return std::int64_t{0};
    }
    if (Status s = c.Command(server_, "marking units returned",
                             "UPDATE orders SET units_returned = TRUE WHERE order_id = "
                             "ANY($1::text[]) AND NOT units_returned",
                             {ids.c_str()});
        !s.ok()) {
      return fail(s);
    }
    if (Status s = c.Commit(server_); !s.ok()) return s;
    return marked;
  });
}

}  // namespace flashsale::postgres
