#include "funnel/catalog.hpp"

#include <spdlog/spdlog.h>

namespace flashsale {

Result<PutResult> Catalog::Put(const Product& p) {
  Result<PutResult> r =
      stock_.Put(p, [this](const Product& changed) { return repository_.UpsertProduct(changed); });
  if (r) AfterChange(p.id, *r);
  return r;
}

Result<PutResult> Catalog::Restock(ProductId id, std::int64_t amount) {
  Result<PutResult> r = stock_.Restock(
      id, amount, [this](const Product& changed) { return repository_.UpsertProduct(changed); });
  if (r) AfterChange(id, *r);
  return r;
}

void Catalog::AfterChange(ProductId id, const PutResult& r) {
  if (r.reopened) {
    spdlog::info("product {} restocked: sold-out flags cleared", id);
    funnel_.AnnounceRestocked(id, r.restock_epoch);
  }
}

}  // namespace flashsale
