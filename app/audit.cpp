#include <algorithm>
#include <cstdio>
#include <future>
#include <map>

#include "backends/embedded/sqlite_database.hpp"
#include "backends/kafka/kafka_options.hpp"
#include "backends/kafka/kafka_status_broadcast.hpp"
#include "commands.hpp"
#include "distributed_stack.hpp"
#include "record_database.hpp"
#include "redis_session.hpp"

namespace flashsale::app {
namespace {

// Prints each invariant of SPEC §3/§6 with its figures; false when one is
// broken. Sold units are the held ones (PENDING + CONFIRMED + PAID: HoldsUnits).
// `unreturned`: closed orders whose units the closer has not given back yet
// (they still hold their units in the stock store). `redis_remaining`
// (distributed mode): remaining units per product in Redis, reconciled with
// the database: stock - remaining == held units + units not yet returned.
bool CheckInvariants(const std::vector<Product>& products, const std::vector<Order>& orders,
                     const std::vector<Order>& unreturned,
                     const std::map<ProductId, std::int64_t>* redis_remaining) {
  std::map<ProductId, Product> by_id;
  for (const Product& p : products) by_id[p.id] = p;
  std::map<ProductId, std::int64_t> sold;
  std::map<std::pair<ProductId, UserId>, std::int64_t> per_user;
  std::int64_t pending = 0, confirmed = 0, failed = 0, orphans = 0, paid = 0, closed = 0;
  std::vector<const Order*> failed_orders;
  for (const Order& o : orders) {
    if (!by_id.contains(o.product)) ++orphans;
    switch (o.status) {
      case OrderStatus::kFailed:
        ++failed;
        failed_orders.push_back(&o);
        continue;  // never counted as sold
      case OrderStatus::kPending:
        ++pending;
        break;
      case OrderStatus::kConfirmed:
        ++confirmed;
        break;
      case OrderStatus::kPaid:
        ++paid;
        break;
      case OrderStatus::kCancelled:
      case OrderStatus::kExpired:
        ++closed;
        continue;  // their units went back on sale
    }
    sold[o.product] += o.quantity;
    per_user[{o.product, o.user}] += o.quantity;
  }

  bool ok = true;
  auto report = [&ok](bool holds, const std::string& line) {
    std::printf("[%s] %s\n", holds ? " OK " : "FAIL", line.c_str());
    ok = ok && holds;
  };

  std::int64_t oversold_products = 0, total_stock = 0, total_sold = 0;
  for (const auto& [id, p] : by_id) {
    const std::int64_t s = sold.contains(id) ? sold[id] : 0;
    total_stock += p.stock;
    total_sold += s;
    if (s > p.stock) {
      ++oversold_products;
      std::printf("       product %lld: sold %lld > stock %lld\n", static_cast<long long>(id),
                  static_cast<long long>(s), static_cast<long long>(p.stock));
    }
  }
  report(oversold_products == 0,
         "no oversell: sold <= stock for every product (" + std::to_string(by_id.size()) +
             " products, stock " + std::to_string(total_stock) + ", sold " +
             std::to_string(total_sold) + ", remaining " +
             std::to_string(total_stock - total_sold) + ", products oversold " +
             std::to_string(oversold_products) + ")");

  std::int64_t over_limit = 0;
  for (const auto& [key, units] : per_user) {
    auto it = by_id.find(key.first);
    if (it != by_id.end() && units > it->second.limit_per_user) {
      ++over_limit;
      std::printf("       product %lld user %lld: %lld units > limit %lld\n",
                  static_cast<long long>(key.first), static_cast<long long>(key.second),
                  static_cast<long long>(units), static_cast<long long>(it->second.limit_per_user));
    }
  }
  report(over_limit == 0, "per-user limits hold (" + std::to_string(per_user.size()) +
                              " buyer records, over the limit " + std::to_string(over_limit) + ")");
  report(orphans == 0, "every order names a known product (orders of unknown products: " +
                           std::to_string(orphans) + ")");
  report(failed == 0, "no FAILED orders (FAILED " + std::to_string(failed) +
                          "; they mean the stock store lost writes)");
  for (const Order* o : failed_orders) {
    std::printf("       FAILED order %s product %lld user %lld quantity %lld\n",
                std::string(o->id.view()).c_str(), static_cast<long long>(o->product),
                static_cast<long long>(o->user), static_cast<long long>(o->quantity));
  }
  std::printf(
      "[info] orders: %zu in the database (holding units: PENDING %lld + CONFIRMED %lld + PAID "
      "%lld; closed %lld, of which %zu not yet given back by the closer)\n",
      orders.size(), static_cast<long long>(pending), static_cast<long long>(confirmed),
      static_cast<long long>(paid), static_cast<long long>(closed), unreturned.size());
  std::map<ProductId, std::int64_t> returning;  // units of closed orders still held by the store
  for (const Order& o : unreturned) returning[o.product] += o.quantity;
  for (std::size_t i = 0; i < unreturned.size() && i < 20; ++i) {
    const Order& o = unreturned[i];
    std::printf("       %s order %s product %lld: %lld units not yet given back\n",
                std::string(ToString(o.status)).c_str(), std::string(o.id.view()).c_str(),
                static_cast<long long>(o.product), static_cast<long long>(o.quantity));
  }
  if (redis_remaining != nullptr) {
    // Units Redis handed out (stock - remaining) must all be in the database
    // once the consumer has caught up: sold in Redis == sold in the database.
    std::int64_t mismatched = 0, missing = 0, redis_sold_total = 0;
    for (const auto& [id, p] : by_id) {
      auto it = redis_remaining->find(id);
      if (it == redis_remaining->end()) {
        ++missing;
        continue;
      }
      const std::int64_t redis_sold = p.stock - it->second;
      redis_sold_total += redis_sold;
      const std::int64_t db_sold =
          (sold.contains(id) ? sold[id] : 0) + (returning.contains(id) ? returning[id] : 0);
      if (redis_sold != db_sold) {
        ++mismatched;
        if (mismatched <= 20) {
          std::printf(
              "       product %lld: redis sold %lld (stock %lld - remaining %lld), "
              "database %lld\n",
              static_cast<long long>(id), static_cast<long long>(redis_sold),
              static_cast<long long>(p.stock), static_cast<long long>(it->second),
              static_cast<long long>(db_sold));
        }
      }
    }
    report(missing == 0,
           "every database product is in redis (missing " + std::to_string(missing) + ")");
    report(mismatched == 0,
           "database orders == accepted: stock - remaining in redis == units of PENDING + "
           "CONFIRMED + PAID orders (+ closed ones not yet given back) for every product (redis "
           "sold " +
               std::to_string(redis_sold_total) + ", database " + std::to_string(total_sold) +
               ", products differing " + std::to_string(mismatched) +
               (mismatched > 0 ? "; orders still in flight? run again once the consumer caught up"
                               : "") +
               ")");
  }
  return ok;
}

int AuditEmbedded(const Config& config, bool repair) {
  const std::string path = config.SqlitePath();
  if (path.empty()) {
    std::fprintf(stderr, "flashsale audit: --database must be sqlite:PATH in embedded mode\n");
    return 2;
  }
  if (repair) {
    std::printf(
        "note: --repair has nothing to return in embedded mode (the journal never leaves "
        "a reservation without its order)\n");
  }
  auto db = embedded::SqliteDatabase::Open({path, embedded::JournalSync::kFull, true});
  if (!db) {
    std::fprintf(stderr, "flashsale audit: %s\n", db.error().ToString().c_str());
    return 2;
  }
  Result<std::vector<Product>> products = (*db)->LoadProducts();
  Result<std::vector<Order>> orders = (*db)->LoadAllOrders();
  Result<std::vector<Order>> unreturned = (*db)->LoadUnreturnedClosed();
  if (!products || !orders || !unreturned) {
    std::fprintf(stderr, "flashsale audit: cannot read %s\n", path.c_str());
    return 2;
  }
  const bool ok = CheckInvariants(*products, *orders, *unreturned, nullptr);
  std::printf("%s\n", ok ? "audit passed" : "audit FAILED");
  return ok ? 0 : 1;
}

// Release() that waits for its answer. Only here: `audit --repair` runs on
// the main thread of a command-line tool, which is no I/O thread of the store's
// connection (that runs on its own thread), so the reply is read meanwhile.
// The request path never waits (PurchaseFunnel answers from the callback).
Result<std::int64_t> ReleaseAndWait(redis::RedisStockStore& stock, const Reservation& r) {
  std::promise<Result<std::int64_t>> answer;
  std::future<Result<std::int64_t>> epoch = answer.get_future();
  stock.Release(r, [&answer](Result<std::int64_t> e) { answer.set_value(std::move(e)); });
  return epoch.get();
}

// `audit --repair` (SPEC §1): a reservation whose hand-off ended UNKNOWN, or
// whose server died mid-hand-off, holds units although its order may never
// reach the topic. Once the consumer group has committed everything in the
// topic, an order that is older than the grace period and still not in the
// database never reached the topic: its units go back (release_stock.lua).
int RepairHeldReservations(const Config& config, RecordDatabase& db,
                           redis::RedisStockStore& stock) {
  Result<std::int64_t> lag = kafka::GroupLag(KafkaOptionsOf(config), config.consumer_group);
  if (!lag) {
    std::fprintf(stderr, "flashsale audit --repair: %s\n", lag.error().ToString().c_str());
    return 2;
  }
  if (*lag > 0) {
    std::fprintf(stderr,
                 "flashsale audit --repair: %lld orders are not yet persisted by group %s; run "
                 "it again once the consumer has caught up\n",
                 static_cast<long long>(*lag), config.consumer_group.c_str());
    return 2;
  }
  Result<std::vector<Reservation>> held = stock.HeldReservations();
  if (!held) {
    std::fprintf(stderr, "flashsale audit --repair: %s\n", held.error().ToString().c_str());
    return 2;
  }
  const UnixMillis cutoff = NowMillis() - config.repair_grace_s * 1000;
  std::int64_t returned = 0, checked = 0;
  std::map<ProductId, std::int64_t> reopened;  // product -> restock epoch after the release
  for (const Reservation& r : *held) {
    if (r.now > cutoff) continue;  // its hand-off may still be running
    ++checked;
    Result<std::optional<Order>> found = db.FindOrder(r.order);
    if (!found) {
      std::fprintf(stderr, "flashsale audit --repair: %s\n", found.error().ToString().c_str());
      return 2;
    }
    if (found->has_value()) continue;
    Result<std::int64_t> epoch = ReleaseAndWait(stock, r);
    if (!epoch) {
      std::fprintf(stderr, "flashsale audit --repair: release of %s: %s\n",
                   std::string(r.order.view()).c_str(), epoch.error().ToString().c_str());
      return 2;
    }
    reopened[r.product] = std::max(reopened[r.product], *epoch);
    ++returned;
    std::printf(
        "[repair] order %s never reached the database: %lld units of product %lld "
        "returned (user %lld)\n",
        std::string(r.order.view()).c_str(), static_cast<long long>(r.quantity),
        static_cast<long long>(r.product), static_cast<long long>(r.user));
  }
  if (!reopened.empty()) {
    // Units are back: every server's L1 must forget its SOLD_OUT flag (SPEC §1),
    // as after an admin restock. The producer is flushed when it goes.
    Status topics = kafka::EnsureTopics(KafkaOptionsOf(config));
    auto broadcast = kafka::KafkaStatusBroadcast::Create(KafkaOptionsOf(config));
    if (!topics.ok() || !broadcast) {
      std::fprintf(stderr, "flashsale audit --repair: units returned, but RESTOCKED not sent: %s\n",
                   (!topics.ok() ? topics : broadcast.error()).ToString().c_str());
      return 2;
    }
    for (const auto& [product, epoch] : reopened) {
      (*broadcast)->Publish(product, ProductStatusChange::kRestocked, epoch);
    }
    std::printf("[repair] RESTOCKED sent for %zu products\n", reopened.size());
  }
  std::printf("[repair] %zu reservations held, %lld older than %lld s checked, %lld returned\n",
              held->size(), static_cast<long long>(checked),
              static_cast<long long>(config.repair_grace_s), static_cast<long long>(returned));
  return 0;
}

bool SameRow(const Product& a, const Product& b) {
  return a.price == b.price && a.stock == b.stock && a.limit_per_user == b.limit_per_user &&
         a.starts_at == b.starts_at && a.ends_at == b.ends_at;
}

// Admin changes are decided in Redis and then written to the database row
// (redis_stock_store.hpp); a row that missed its write (database error or a
// crash in between) differs from Redis. Returns the products whose row
// differs from Redis' product (or is missing); with `repair`, first writes
// Redis' product into each such row (UpsertProduct keeps a newer row).
std::vector<ProductId> ReconcileProductRows(RecordDatabase& db, std::vector<Product>& rows,
                                            const std::vector<StockSnapshot>& in_redis,
                                            bool repair) {
  std::map<ProductId, const Product*> row_of;
  for (const Product& p : rows) row_of[p.id] = &p;
  std::vector<ProductId> differing;
  std::vector<Product> to_write;
  for (const StockSnapshot& snap : in_redis) {
    auto it = row_of.find(snap.product.id);
    if (it != row_of.end() && SameRow(*it->second, snap.product)) continue;
    if (repair && (it == row_of.end() || it->second->version <= snap.product.version)) {
      to_write.push_back(snap.product);
    } else {
      differing.push_back(snap.product.id);
    }
  }
  for (const Product& p : to_write) {
    if (Status s = db.UpsertProduct(p); !s.ok()) {
      std::printf("[repair] product %lld: %s\n", static_cast<long long>(p.id),
                  s.ToString().c_str());
      differing.push_back(p.id);
      continue;
    }
    std::printf("[repair] product %lld: database row written from redis (version %lld)\n",
                static_cast<long long>(p.id), static_cast<long long>(p.version));
  }
  if (!to_write.empty()) {
    Result<std::vector<Product>> reread = db.LoadProducts();
    if (reread) rows = std::move(*reread);
  }
  return differing;
}

int AuditDistributed(const Config& config, bool repair) {
  auto db = RecordDatabase::Open(config);
  if (!db) {
    std::fprintf(stderr, "flashsale audit: %s\n", db.error().ToString().c_str());
    return 2;
  }
  auto session = RedisSession::Open(config.redis);
  if (!session) {
    std::fprintf(stderr, "flashsale audit: %s\n", session.error().message().c_str());
    return 2;
  }
  if (repair) {
    if (int rc = RepairHeldReservations(config, **db, (*session)->stock()); rc != 0) return rc;
  }
  std::map<ProductId, std::int64_t> remaining;
  Result<std::vector<Product>> products = (*db)->LoadProducts();
  Result<std::vector<Order>> orders = (*db)->LoadAllOrders();
  // Every product Redis knows, read pipelined through its index.
  Status redis_error;
  Result<std::int64_t> count = (*session)->stock().ProductCount();
  Result<std::vector<StockSnapshot>> snaps =
      count ? (*session)->stock().List(0, *count)
            : Result<std::vector<StockSnapshot>>(count.error());
  if (snaps) {
    for (const StockSnapshot& snap : *snaps) remaining[snap.product.id] = snap.remaining;
  } else {
    redis_error = snaps.error();
  }
  if (!products || !orders) {
    std::fprintf(stderr, "flashsale audit: cannot read %s\n", (*db)->Describe().c_str());
    return 2;
  }
  if (!redis_error.ok()) {
    std::fprintf(stderr, "flashsale audit: redis: %s\n", redis_error.ToString().c_str());
    return 2;
  }
  const std::vector<ProductId> differing = ReconcileProductRows(**db, *products, *snaps, repair);
  for (std::size_t i = 0; i < differing.size() && i < 20; ++i) {
    std::printf("       product %lld: the database row differs from redis\n",
                static_cast<long long>(differing[i]));
  }
  std::printf(
      "[%s] every redis product has its database row, with the same price, stock, "
      "limit and window (differing %zu%s)\n",
      differing.empty() ? " OK " : "FAIL", differing.size(),
      differing.empty() ? ""
                        : "; an admin change whose database write failed? "
                          "`flashsale audit --repair` writes them");
  if (!config.kafka.empty()) {
    // The topic side: what the order consumer has yet to persist. Orders in
    // flight explain a Redis/database difference; with none, it is a loss.
    Result<std::int64_t> lag = kafka::GroupLag(KafkaOptionsOf(config), config.consumer_group);
    if (lag) {
      std::printf("[info] %sproduct_orders: %lld messages not yet committed by group %s\n",
                  config.topic_prefix.c_str(), static_cast<long long>(*lag),
                  config.consumer_group.c_str());
    } else {
      std::printf("[info] kafka: %s\n", lag.error().ToString().c_str());
    }
  }
  Result<std::vector<Order>> unreturned = (*db)->LoadUnreturnedClosed();
  if (!unreturned) {
    std::fprintf(stderr, "flashsale audit: %s\n", unreturned.error().ToString().c_str());
    return 2;
  }
  const bool ok = CheckInvariants(*products, *orders, *unreturned, &remaining) && differing.empty();
  std::printf("%s\n", ok ? "audit passed" : "audit FAILED");
  return ok ? 0 : 1;
}

}  // namespace

// Read-only unless --repair; safe beside running servers (embedded: WAL).
int RunAudit(const Config& config, bool repair) {
  if (std::string err = CheckBackendSelection(config); !err.empty()) {
    std::fprintf(stderr, "flashsale audit: %s\n", err.c_str());
    return 2;
  }
  return config.Distributed() ? AuditDistributed(config, repair) : AuditEmbedded(config, repair);
}

}  // namespace flashsale::app
