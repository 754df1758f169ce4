#include <cstdio>
#include <map>

#include "backends/embedded/sqlite_database.hpp"
#include "commands.hpp"

namespace flashsale::app {

// Checks the invariants of SPEC §3/§6 on the database and prints each with
// its figures. Read-only; safe beside a running embedded server (WAL).
int RunAudit(const Config& config, bool repair) {
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
  if (!products || !orders) {
    std::fprintf(stderr, "flashsale audit: cannot read %s\n", path.c_str());
    return 2;
  }
  std::map<ProductId, Product> by_id;
  for (const Product& p : *products) by_id[p.id] = p;
  std::map<ProductId, std::int64_t> sold;
  std::map<std::pair<ProductId, UserId>, std::int64_t> per_user;
  std::int64_t pending = 0, confirmed = 0, failed = 0, orphans = 0;
  std::vector<const Order*> failed_orders;
  for (const Order& o : *orders) {
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
  std::printf("[info] orders: %zu in the database (accepted = PENDING %lld + CONFIRMED %lld)\n",
              orders->size(), static_cast<long long>(pending), static_cast<long long>(confirmed));
  std::printf("%s\n", ok ? "audit passed" : "audit FAILED");
  return ok ? 0 : 1;
}

}  // namespace flashsale::app
