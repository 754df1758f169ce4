#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "backends/embedded/sqlite_database.hpp"
#include "catalog_file.hpp"
#include "commands.hpp"
#include "mock_catalog.hpp"
#include "record_database.hpp"
#include "redis_session.hpp"

namespace flashsale::app {
namespace {

// Distributed mode: the database first (the catalog's source of truth), then
// Redis. SETNX semantics on both unless --force, which replaces each product
// through the stock store (refused with the figures when stock < sold).
int SeedDistributed(const Config& config, const std::vector<Product>& products, bool force) {
  auto db = RecordDatabase::Open(config);
  if (!db) {
    std::fprintf(stderr, "flashsale seed: %s\n", db.error().ToString().c_str());
    return 1;
  }
  auto session = RedisSession::Open(config.redis);
  if (!session) {
    std::fprintf(stderr, "flashsale seed: %s\n", session.error().message().c_str());
    return 2;
  }
  redis::RedisStockStore& stock = (*session)->stock();
  int rc = 0;
  std::int64_t inserted = 0, in_redis = 0;
  Status st;
  if (force) {
    for (const Product& p : products) {
      Result<PutResult> put =
          stock.Put(p, [&](const Product& q) { return (*db)->UpsertProduct(q); });
      if (!put) {
        std::fprintf(stderr, "flashsale seed: product %lld: %s\n", static_cast<long long>(p.id),
                     put.error().ToString().c_str());
        rc = 1;
        continue;
      }
      ++inserted;
      ++in_redis;
    }
  } else if (st = (*db)->InsertProducts(products, false, &inserted); st.ok()) {
    Result<std::vector<Product>> all = (*db)->LoadProducts();
    Result<std::vector<SoldUnits>> sold = (*db)->LoadSoldUnits();
    if (!all || !sold) {
      st = !all ? all.error() : sold.error();
    } else if (Result<std::int64_t> created = stock.Seed(*all, *sold); created) {
      in_redis = *created;
    } else {
      st = created.error();
    }
  }
  if (!st.ok()) {
    std::fprintf(stderr, "flashsale seed: %s\n", st.ToString().c_str());
    rc = 1;
  } else {
    std::printf("seeded %lld of %zu products into %s and %lld into redis (%s)\n",
                static_cast<long long>(inserted), products.size(), (*db)->Describe().c_str(),
                static_cast<long long>(in_redis),
                force ? "existing ones overwritten" : "existing ones kept");
  }
  return rc;
}

}  // namespace

int RunSeed(const Config& config, const std::string& file, bool force) {
  if (std::string err = CheckBackendSelection(config); !err.empty()) {
    std::fprintf(stderr, "flashsale seed: %s\n", err.c_str());
    return 2;
  }
  Result<std::vector<Product>> products =
      file.empty()
          ? Result<std::vector<Product>>(MockCatalog(config.mock_products, config.mock_seed))
          : ReadCatalogFile(file);
  if (!products) {
    std::fprintf(stderr, "flashsale seed: %s\n", products.error().message().c_str());
    return 1;
  }
  if (config.Distributed()) return SeedDistributed(config, *products, force);
  const std::string path = config.SqlitePath();
  if (path.empty()) {
    std::fprintf(stderr,
                 "flashsale seed: --database must be sqlite:PATH in embedded mode (PostgreSQL "
                 "needs --redis and --kafka too)\n");
    return 2;
  }
  const int lock_fd = TryLockDatabase(path);
  if (lock_fd < 0) {
    std::fprintf(stderr,
                 "flashsale seed: a running flashsale server holds %s; change products through "
                 "its admin API (PUT /admin/products/{id}) instead\n",
                 path.c_str());
    return 1;
  }
  auto db = embedded::SqliteDatabase::Open({path});
  if (!db) {
    std::fprintf(stderr, "flashsale seed: %s\n", db.error().ToString().c_str());
    ::close(lock_fd);
    return 1;
  }
  std::int64_t inserted = 0;
  // SETNX semantics: existing products are kept unless --force.
  if (Status s = (*db)->InsertProducts(*products, force, &inserted); !s.ok()) {
    std::fprintf(stderr, "flashsale seed: %s\n", s.ToString().c_str());
    ::close(lock_fd);
    return 1;
  }
  std::printf("seeded %lld of %zu products into %s (%s)\n", static_cast<long long>(inserted),
              products->size(), path.c_str(),
              force ? "existing ones overwritten" : "existing ones kept");
  ::close(lock_fd);
  return 0;
}

}  // namespace flashsale::app
