#pragma once
// FakeOrderRepository: an in-memory OrderRepository for unit tests that only
// need the product side (Catalog's admin changes). It records every product
// saved; FailNextUpserts() makes saves answer Unavailable, to prove a refused
// database write aborts the admin change. Orders are kept by id, without the
// stock guard (the SQLite tests cover that). Safe for concurrent use.

#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/order_repository.hpp"

namespace flashsale::testutil {

class FakeOrderRepository final : public OrderRepository {
 public:
  Status UpsertProduct(const Product& p) override {
    std::lock_guard lock(mu_);
    if (fail_upserts_ > 0) {
      --fail_upserts_;
      return Status::Unavailable("fake database is down");
    }
    products_.push_back(p);
    return Status::Ok();
  }

  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override {
    std::lock_guard lock(mu_);
    PersistSummary summary;
    for (const Order& o : orders) {
      auto [it, inserted] = orders_.try_emplace(o.id.str(), o);
      if (!inserted) {
        ++summary.duplicates;
        continue;
      }
      it->second.status = OrderStatus::kConfirmed;
      ++summary.confirmed;
    }
    return summary;
  }

  Result<std::optional<Order>> FindOrder(const OrderId& id) override {
    std::lock_guard lock(mu_);
    auto it = orders_.find(id.str());
    if (it == orders_.end()) return std::optional<Order>();
    return std::optional<Order>(it->second);
  }

  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override {
    std::lock_guard lock(mu_);
    std::vector<Order> out;
    for (const auto& [id, o] : orders_) {
      if (o.user == user && static_cast<std::int64_t>(out.size()) < limit) out.push_back(o);
    }
    return out;
  }

  void FailNextUpserts(int n) {
    std::lock_guard lock(mu_);
    fail_upserts_ = n;
  }
  std::vector<Product> SavedProducts() {
    std::lock_guard lock(mu_);
    return products_;
  }

 private:
  std::mutex mu_;
  int fail_upserts_ = 0;                           // guarded by mu_
  std::vector<Product> products_;                  // guarded by mu_
  std::unordered_map<std::string, Order> orders_;  // guarded by mu_
};

}  // namespace flashsale::testutil
