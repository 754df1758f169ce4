#pragma once
// RecordDatabase: the database of record of distributed mode behind one face,
// PostgreSQL (`--database postgresql://...`) or SQLite (`sqlite:PATH`), for
// the app's start-up, seed and audit code. Thread-safe as the database is.

#include <memory>
#include <vector>

#include "config.hpp"
#include "core/order_lifecycle.hpp"
#include "core/order_repository.hpp"
#include "core/stock_store.hpp"

namespace flashsale::app {

class RecordDatabase : public OrderRepository, public OrderLifecycle {
 public:
  // Opens (and creates the schema of) the database named by config.database.
  static Result<std::unique_ptr<RecordDatabase>> Open(const Config& config);

  virtual Result<std::vector<Product>> LoadProducts() = 0;
  virtual Result<std::vector<SoldUnits>> LoadSoldUnits() = 0;
  virtual Result<std::vector<Order>> LoadAllOrders() = 0;
  // Closed orders whose units were not given back yet (the closer's outbox).
  virtual Result<std::vector<Order>> LoadUnreturnedClosed() = 0;
  // The first order stored with this Idempotency-Key (indexed).
  virtual Result<std::optional<Order>> FindOrderByIdempotencyKey(std::string_view key) = 0;
  virtual Status InsertProducts(const std::vector<Product>& products, bool overwrite,
                                std::int64_t* inserted) = 0;
  // A secret generated on first use and kept in the database, the same for
  // every instance (the cancel tokens').
  virtual Result<std::string> SharedSecret(std::string_view name) = 0;
  // OK when the database answers (for /readyz).
  virtual Status Ping() = 0;
  // "postgresql 127.0.0.1:5432/flashsale" or the SQLite path, for logs.
  [[nodiscard]] virtual std::string Describe() const = 0;
};

}  // namespace flashsale::app
