#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "backends/embedded/sqlite_database.hpp"
#include "catalog_file.hpp"
#include "commands.hpp"
#include "mock_catalog.hpp"

namespace flashsale::app {

int RunSeed(const Config& config, const std::string& file, bool force) {
  if (std::string err = CheckBackendSelection(config); !err.empty()) {
    std::fprintf(stderr, "flashsale seed: %s\n", err.c_str());
    return 2;
  }
  const std::string path = config.SqlitePath();
  if (path.empty()) {
    std::fprintf(stderr, "flashsale seed: --database must be sqlite:PATH in embedded mode\n");
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
