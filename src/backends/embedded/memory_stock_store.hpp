#pragma once
// MemoryStockStore: the embedded StockStore. Products live in 64 shards, each
// behind its own mutex, so purchases of different products rarely contend and
// there is no global lock; one purchase holds one shard lock for a few hash
// lookups. The L2 flag is an in-process expiry time per product. Per-user
// records live in a compact BuyerTable per product (buyer_table.hpp).
//
// Thread safety: all methods are safe for concurrent use. Reserve() and
// Release() answer inline (on the caller's thread, after the shard lock is
// released).

#include <array>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backends/embedded/buyer_table.hpp"
#include "core/mutex.hpp"
#include "core/stock_store.hpp"

namespace flashsale::embedded {

using flashsale::SoldUnits;

class MemoryStockStore final : public StockStore {
 public:
  static constexpr std::int64_t kSoldOutFlagTtlMs = 3'600'000;  // SPEC §1: L2 TTL

  MemoryStockStore() = default;
  // Start-up rebuild, streamed (REQUIRES: no concurrent calls, nor any other
  // call until FinishLoad()): LoadProducts, then AddSoldUnits once per row,
  // then FinishLoad. Rows need no grouping: the same product and user may
  // come several times, their units add up and the greatest order id is kept
  // (ids sort by creation time), so raw order rows can be fed as they are read.
  void LoadProducts(const std::vector<Product>& products);
  // Rows of a product not loaded (a deleted product) are skipped: audit
  // reports them.
  void AddSoldUnits(const SoldUnits& sold);
  // Clamps remaining at 0: a database that sold more than stock (FAILED orders
  // are not counted, so this means lost writes) must not make it negative.
  void FinishLoad();
  // All three at once, for callers that hold the rows already.
  void Load(const std::vector<Product>& products, const std::vector<SoldUnits>& sold);

  void Reserve(const Reservation& r, ReserveCallback done) override;
  void Release(const Reservation& r, ReleaseCallback done) override;
  Result<PutResult> Put(const Product& p, const PersistProduct& persist) override;
  Result<PutResult> Restock(ProductId id, std::int64_t amount,
                            const PersistProduct& persist) override;
  Result<std::optional<StockSnapshot>> Get(ProductId id) override;
  Result<std::vector<StockSnapshot>> List(std::int64_t offset, std::int64_t limit) override;
  Result<std::int64_t> ProductCount() override;

  // The per-user record, for tests and audit.
  std::int64_t UnitsOf(ProductId product, UserId user);

 private:
  struct ProductState {
    Product product;
    std::int64_t remaining = 0;
    UnixMillis sold_out_until = 0;  // L2 flag: set while now < sold_out_until
    std::int64_t restock_epoch = 0;
    BuyerTable buyers;
  };
  struct alignas(64) Shard {
    // Also guards every ProductState it owns (which the analysis cannot see).
    Mutex mu;
    std::unordered_map<ProductId, std::unique_ptr<ProductState>> products GUARDED_BY(mu);
  };
  static constexpr std::size_t kShards = 64;

  Shard& ShardOf(ProductId id) { return shards_[static_cast<std::uint64_t>(id) % kShards]; }
  static StockSnapshot Snapshot(const ProductState& s, UnixMillis now);
  static ReserveResult ReserveLocked(ProductState& s, const Reservation& r);

  std::array<Shard, kShards> shards_;
};

}  // namespace flashsale::embedded
