#include "backends/embedded/memory_stock_store.hpp"

#include <algorithm>

namespace flashsale::embedded {

void MemoryStockStore::LoadProducts(const std::vector<Product>& products) {
  // Start-up, before any other caller; the locks cost nothing here and keep
  // the locking rule (products GUARDED_BY mu) without exceptions.
  for (const Product& p : products) {
    auto state = std::make_unique<ProductState>();
    state->product = p;
    state->remaining = p.stock;
    Shard& shard = ShardOf(p.id);
    MutexLock lock(&shard.mu);
    shard.products[p.id] = std::move(state);
  }
}

void MemoryStockStore::AddSoldUnits(const SoldUnits& sold) {
  Shard& shard = ShardOf(sold.product);
  MutexLock lock(&shard.mu);
  auto it = shard.products.find(sold.product);
  if (it == shard.products.end()) return;
  ProductState& state = *it->second;
  state.remaining -= sold.units;
  if (BuyerTable::Record* buyer = state.buyers.Find(sold.user)) {
    buyer->Merge(sold.units, sold.latest_order);
  } else {
    state.buyers.Insert(sold.user, sold.units, sold.latest_order);
  }
}

void MemoryStockStore::FinishLoad() {
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (auto& [id, state] : shard.products) {
      state->remaining = std::max<std::int64_t>(state->remaining, 0);
    }
  }
}

void MemoryStockStore::Load(const std::vector<Product>& products,
                            const std::vector<SoldUnits>& sold) {
  LoadProducts(products);
  for (const SoldUnits& s : sold) AddSoldUnits(s);
  FinishLoad();
}

ReserveResult MemoryStockStore::ReserveLocked(ProductState& s, const Reservation& r) {
  ReserveResult result;
  result.restock_epoch = s.restock_epoch;
  const Product& p = s.product;
  // The waiting room first: without a pass nothing else is told (README
  // "Admission control": pass -> L1 -> reservation).
  if (p.waiting_room && !r.pass_verified) {
    result.outcome = ReserveOutcome::kPassRequired;
    return result;
  }
  if (p.starts_at && r.now < *p.starts_at) {
    result.outcome = ReserveOutcome::kNotStarted;
    return result;
  }
  if (p.ends_at && r.now >= *p.ends_at) {
    result.outcome = ReserveOutcome::kEnded;
    return result;
  }
  if (r.now < s.sold_out_until) {  // L2
    result.outcome = ReserveOutcome::kSoldOut;
    return result;
  }
  // Valid until the table's next call: the only one below is Insert, when null.
  BuyerTable::Record* buyer = s.buyers.Find(r.user);
  const std::int64_t held = buyer == nullptr ? 0 : buyer->units();
  // Written as a subtraction: held + quantity could overflow int64.
  if (r.quantity > p.limit_per_user - held) {
    result.outcome = ReserveOutcome::kLimitExceeded;
    if (buyer != nullptr) result.latest_order = buyer->latest_order();
    return result;
  }
  if (s.remaining == 0) {
    s.sold_out_until = r.now + kSoldOutFlagTtlMs;
    result.outcome = ReserveOutcome::kSoldOut;
    return result;
  }
  if (s.remaining < r.quantity) {
    result.outcome = ReserveOutcome::kInsufficientStock;
    return result;
  }
  // The last unit is sold too: the check is remaining >= quantity, not > 0.
  s.remaining -= r.quantity;
  if (buyer != nullptr) {
    buyer->Add(r.quantity, r.order);
  } else {
    s.buyers.Insert(r.user, r.quantity, r.order);
  }
  result.outcome = ReserveOutcome::kReserved;
  result.price = p.price;
  if (p.payment_window_s) result.pay_by = r.now + *p.payment_window_s * 1000;
  if (s.remaining == 0) {
    s.sold_out_until = r.now + kSoldOutFlagTtlMs;
    result.took_last_unit = true;
  }
  return result;
}

void MemoryStockStore::Reserve(const Reservation& r, ReserveCallback done) {
  ReserveResult result;
  {
    Shard& shard = ShardOf(r.product);
    MutexLock lock(&shard.mu);
    auto it = shard.products.find(r.product);
    if (it == shard.products.end()) {
      result.outcome = ReserveOutcome::kUnknownProduct;
    } else {
      result = ReserveLocked(*it->second, r);
    }
  }
  done(result);
}

void MemoryStockStore::Release(const Reservation& r, ReleaseCallback done) {
  std::int64_t epoch = 0;
  {
    Shard& shard = ShardOf(r.product);
    MutexLock lock(&shard.mu);
    auto it = shard.products.find(r.product);
    FLASHSALE_CHECK(it != shard.products.end(), "release of an unknown product");
    ProductState& s = *it->second;
    const bool taken = s.buyers.Take(r.user, r.quantity);  // erases the record at 0 units
    FLASHSALE_CHECK(taken, "release without a matching reservation");
    s.remaining = std::min(s.remaining + r.quantity, s.product.stock);
    s.sold_out_until = 0;
    epoch = ++s.restock_epoch;
  }
  done(epoch);
}

Result<PutResult> MemoryStockStore::Put(const Product& p, const PersistProduct& persist) {
  Shard& shard = ShardOf(p.id);
  MutexLock lock(&shard.mu);
  auto it = shard.products.find(p.id);
  PutResult result;
  result.created = it == shard.products.end();
  const std::int64_t sold = result.created ? 0 : it->second->product.stock - it->second->remaining;
  if (p.stock < sold) {
    return Status::Conflict("stock " + std::to_string(p.stock) + " is below the " +
                            std::to_string(sold) + " units already sold");
  }
  // Numbered like the Redis store's changes (the lock makes this one decision).
  Product decided = p;
  decided.version = result.created ? 1 : it->second->product.version + 1;
  if (Status s = persist(decided); !s.ok()) return s;
  if (result.created) {
    it = shard.products.emplace(p.id, std::make_unique<ProductState>()).first;
  }
  ProductState& state = *it->second;
  state.product = decided;
  state.remaining = p.stock - sold;
  if (state.remaining > 0) {
    state.sold_out_until = 0;
    result.reopened = !result.created;
    if (result.reopened) ++state.restock_epoch;
  }
  result.restock_epoch = state.restock_epoch;
  return result;
}

Result<PutResult> MemoryStockStore::Restock(ProductId id, std::int64_t amount,
                                            const PersistProduct& persist) {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  auto it = shard.products.find(id);
  if (it == shard.products.end()) return Status::NotFound("product " + std::to_string(id));
  ProductState& state = *it->second;
  if (amount > INT64_MAX - state.product.stock) return Status::Invalid("stock would overflow");
  Product updated = state.product;
  updated.stock += amount;
  ++updated.version;
  if (Status s = persist(updated); !s.ok()) return s;
  state.product = updated;
  state.remaining += amount;
  PutResult result;
  if (state.remaining > 0) {
    state.sold_out_until = 0;
    result.reopened = true;
    ++state.restock_epoch;
  }
  result.restock_epoch = state.restock_epoch;
  return result;
}

StockSnapshot MemoryStockStore::Snapshot(const ProductState& s, UnixMillis now) {
  return {s.product, s.remaining, s.remaining == 0 || now < s.sold_out_until, s.restock_epoch};
}

Result<std::optional<StockSnapshot>> MemoryStockStore::Get(ProductId id) {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  auto it = shard.products.find(id);
  if (it == shard.products.end()) return std::optional<StockSnapshot>();
  return std::optional<StockSnapshot>(Snapshot(*it->second, NowMillis()));
}

Result<std::vector<StockSnapshot>> MemoryStockStore::List(std::int64_t offset, std::int64_t limit) {
  std::vector<StockSnapshot> all;
  const UnixMillis now = NowMillis();
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    for (const auto& [id, state] : shard.products) all.push_back(Snapshot(*state, now));
  }
  std::sort(all.begin(), all.end(), [](const StockSnapshot& a, const StockSnapshot& b) {
    return a.product.id < b.product.id;
  });
  std::vector<StockSnapshot> page;
  for (auto i = static_cast<std::size_t>(std::max<std::int64_t>(offset, 0));
       i < all.size() && static_cast<std::int64_t>(page.size()) < limit; ++i) {
    page.push_back(all[i]);
  }
  return page;
}

Result<std::int64_t> MemoryStockStore::ProductCount() {
  std::int64_t n = 0;
  for (Shard& shard : shards_) {
    MutexLock lock(&shard.mu);
    n += static_cast<std::int64_t>(shard.products.size());
  }
  return n;
}

std::int64_t MemoryStockStore::UnitsOf(ProductId product, UserId user) {
  Shard& shard = ShardOf(product);
  MutexLock lock(&shard.mu);
  auto it = shard.products.find(product);
  if (it == shard.products.end()) return 0;
  const BuyerTable::Record* buyer = it->second->buyers.Find(user);
  return buyer == nullptr ? 0 : buyer->units();
}

}  // namespace flashsale::embedded
