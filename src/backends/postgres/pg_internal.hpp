#pragma once
// Private to flashsale_postgres: include only from the pg_*.cpp files of this
// directory (pg_pool.cpp, pg_schema.cpp, pg_orders.cpp, pg_catalog.cpp,
// pg_lifecycle.cpp), never
// from elsewhere; callers use pg_database.hpp. Holds what those files share:
// PGresult ownership and cell parsing (RowReader), the Connection wrapper with
// its error classification by SQLSTATE, and PgDatabase::Run, a template that
// must be visible where each file instantiates it.

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/postgres/pg_database.hpp"
#include "core/checked_row.hpp"
#include "core/numbers.hpp"

namespace flashsale::postgres {

// Per-connection staging table of PersistBatch, filled by COPY.
inline constexpr const char* kCreateStaging = R"sql(
CREATE TEMP TABLE IF NOT EXISTS flashsale_batch (
  idx             INT NOT NULL,
  order_id        TEXT NOT NULL,
  user_id         BIGINT NOT NULL,
  product_id      BIGINT NOT NULL,
  quantity        BIGINT NOT NULL,
  price_cents     BIGINT NOT NULL,
  created_ms      BIGINT NOT NULL,
  idempotency_key TEXT NULL,
  pay_by_ms       BIGINT NULL
) ON COMMIT DELETE ROWS
)sql";

// What ReadOrder parses: the columns of kOrderRowColumns (core/checked_row.hpp).
// Unqualified, so that a statement may select them from `orders` or from the
// RETURNING list of an UPDATE of it.
inline constexpr const char* kOrderColumns =
    "order_id, user_id, product_id, quantity, (price * 100)::bigint, status, "
    "(extract(epoch FROM created_at) * 1000)::bigint, idempotency_key, "
    "(extract(epoch FROM pay_by) * 1000)::bigint, (extract(epoch FROM paid_at) * 1000)::bigint, "
    "(extract(epoch FROM closed_at) * 1000)::bigint, payment_ref";

// Owns a PGresult.
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

inline std::string_view Text(const PGresult* r, int row, int col) {
  return {PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col))};
}

// A value the server computes from NOT NULL BIGINT columns (counts, stock):
// it always parses unless libpq or the SQL text is broken, a bug.
inline std::int64_t Int(const PGresult* r, int row, int col) {
  std::optional<std::int64_t> v =
      PQgetisnull(r, row, col) ? std::nullopt : ParseInt64(Text(r, row, col));
  FLASHSALE_CHECK(v.has_value(), "PostgreSQL answered a non-integer where the SQL yields one");
  return *v;
}

// A row of a libpq result, for CheckedRow (core/checked_row.hpp).
struct PgCells {
  const PGresult* r;
  int row;
  std::string_view Text(int col) const { return postgres::Text(r, row, col); }
  bool IsNull(int col) const { return PQgetisnull(r, row, col) != 0; }
};

class RowReader : public CheckedRow<PgCells> {
 public:
  RowReader(const PGresult* r, int row, std::string_view table,
            std::span<const char* const> columns, int key_columns)
      : CheckedRow<PgCells>(PgCells{r, row}, table, columns, key_columns) {}
};

// Strict parse of one row of kOrderColumns (pg_orders.cpp).
Result<Order> ReadOrder(const PGresult* r, int row);
// Every row of kOrderColumns, or the error of `r` or of the first corrupt row
// (pg_orders.cpp).
Result<std::vector<Order>> ReadOrders(Result<PgResult> r);

// libpq messages end with a newline; keep them on one line (pg_pool.cpp).
std::string Trimmed(const char* msg);

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

// One libpq connection. Used by one thread at a time: the pool (pg_pool.cpp)
// hands it out by Borrow and takes it back by Return.
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

  // COMMIT of a transaction that changed something. No answer, or a broken
  // connection: the outcome is Unknown. An error answer (the server rolled
  // back) is classified as any other.
  Status Commit(const std::string& server) {
    PgResult r(PQexec(pg, "COMMIT"));
    if (r != nullptr && PQresultStatus(r.get()) == PGRES_COMMAND_OK &&
        std::string_view(PQcmdStatus(r.get())) == "COMMIT") {
      return Status::Ok();
    }
    Status s = Error(r.get(), "COMMIT", server);
    if (broken() || r == nullptr) return Status::Unknown(s.message());
    Rollback();
    return s;
  }

  // Best effort, after a failure inside a transaction.
  void Rollback() {
    if (!broken()) PQclear(PQexec(pg, "ROLLBACK"));
  }
};

// In this header, not in pg_pool.cpp: each pg_*.cpp instantiates it for its
// own result types.
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

}  // namespace flashsale::postgres
