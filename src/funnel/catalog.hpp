#pragma once
// Catalog: product reads and admin changes (SPEC §4 admin routes). Each change
// is one decision of the stock store, numbered (Product::version) and written
// to the database row, which keeps the newest version, so racing changes leave
// the store and the database with the same product (see
// StockStore::PersistProduct); a change that gives a product units again
// clears L2 (in the store) and every instance's L1 (through the funnel's
// broadcast). Safe for concurrent use.

#include "core/order_repository.hpp"
#include "core/stock_store.hpp"
#include "funnel/purchase_funnel.hpp"

namespace flashsale {

class Catalog {
 public:
  Catalog(StockStore& stock, OrderRepository& repository, PurchaseFunnel& funnel)
      : stock_(stock), repository_(repository), funnel_(funnel) {}

  // Create or replace; Conflict when p.stock is below the units already sold.
  Result<PutResult> Put(const Product& p);
  // NotFound for an unknown product.
  Result<PutResult> Restock(ProductId id, std::int64_t amount);
  Result<std::optional<StockSnapshot>> Get(ProductId id) { return stock_.Get(id); }
  Result<std::vector<StockSnapshot>> List(std::int64_t offset, std::int64_t limit) {
    return stock_.List(offset, limit);
  }

 private:
  void AfterChange(ProductId id, const PutResult& r);

  StockStore& stock_;
  OrderRepository& repository_;
  PurchaseFunnel& funnel_;
};

}  // namespace flashsale
