// PgDatabase's connection pool: Open (parsing the server name from the URL),
// Connect (session setup), Borrow/Return under mu_, and Ping for /readyz.
// The Connection wrapper and Run live in pg_internal.hpp.

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

#include "backends/postgres/pg_database.hpp"
#include "backends/postgres/pg_internal.hpp"

namespace flashsale::postgres {
namespace {

constexpr int kPingTimeoutMs = 2000;

void DiscardNotice(void*, const char* message) { spdlog::debug("postgres: {}", Trimmed(message)); }

}  // namespace

std::string Trimmed(const char* msg) {
  std::string s = msg != nullptr ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& ch : s) {
    if (ch == '\n') ch = ' ';
  }
  return s;
}

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
