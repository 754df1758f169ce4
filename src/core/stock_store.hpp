#pragma once
// StockStore: remaining units, sale windows, the L2 sold-out flag and per-user
// records per product, handed out atomically.
//
// Invariants kept by every implementation: remaining never goes below zero and
// never above stock; no user holds more than the product's limit; sold ==
// stock - remaining. Safe for concurrent use from any thread.

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/domain.hpp"
#include "core/purchase.hpp"
#include "core/status.hpp"

namespace flashsale {

struct StockSnapshot {
  Product product;
  std::int64_t remaining = 0;
  bool sold_out = false;  // the L2 flag
  std::int64_t restock_epoch = 0;
};

// What the database says was sold (orders not FAILED), per product and user,
// to rebuild a stock store at start-up.
struct SoldUnits {
  ProductId product = 0;
  UserId user = 0;
  std::int64_t units = 0;
  OrderId latest_order;
};

struct PutResult {
  bool created = false;
  bool reopened = false;  // units remain now: L1 everywhere must forget the flag
  std::int64_t restock_epoch = 0;
};

class StockStore {
 public:
  using ReserveCallback = std::function<void(Result<ReserveResult>)>;
  // Gets the product's restock epoch after a release.
  using ReleaseCallback = std::function<void(Result<std::int64_t>)>;
  // Persists an admin change to the database: the product as the store
  // decided it, with the change's version (Product::version, strictly
  // increasing per product). Racing calls may arrive out of order: the
  // database must keep the row of the highest version (UpsertProduct does).
  // Embedded store: called under the product's lock before the change is
  // applied; a non-OK status aborts it. Redis store: called once Redis has
  // decided and applied it; a non-OK status is returned (the change stays in
  // effect, the row catches up later; see redis_stock_store.hpp).
  using PersistProduct = std::function<Status(const Product&)>;

  virtual ~StockStore() = default;

  // One atomic step: sale window, L2 flag, per-user limit, stock. Takes
  // `r.quantity` units for `r.order`, or none. When it takes the last unit it
  // sets the L2 flag. `done` runs exactly once, possibly inline, possibly on
  // another thread. A non-OK status means the outcome is unknown.
  virtual void Reserve(const Reservation& r, ReserveCallback done) = 0;

  // Gives back the units of `r`, and its per-user record, and clears L2;
  // `done` gets the product's new restock epoch. Asynchronous like Reserve():
  // `done` runs exactly once, possibly inline, possibly on another thread, and
  // must not block. Never waits itself, so it may be called on any I/O thread
  // (a hand-off refused at once arrives on the thread that answered Reserve()).
  // REQUIRES: `r` was kReserved and its order was definitely never handed off.
  virtual void Release(const Reservation& r, ReleaseCallback done) = 0;

  // Creates or replaces a product's metadata; stock is the total ever sellable,
  // so remaining becomes stock - sold. Conflict when stock < sold. Clears L2
  // when units remain.
  virtual Result<PutResult> Put(const Product& p, const PersistProduct& persist) = 0;

  // Adds `amount` to stock and remaining; NotFound for an unknown product.
  virtual Result<PutResult> Restock(ProductId id, std::int64_t amount,
                                    const PersistProduct& persist) = 0;

  virtual Result<std::optional<StockSnapshot>> Get(ProductId id) = 0;

  // Products in id order, for GET /products.
  virtual Result<std::vector<StockSnapshot>> List(std::int64_t offset, std::int64_t limit) = 0;

  // Empty store and nothing to load: the caller may load a mock catalog.
  virtual Result<std::int64_t> ProductCount() = 0;
};

}  // namespace flashsale
