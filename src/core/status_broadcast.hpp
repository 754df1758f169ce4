#pragma once
// StatusBroadcast: SOLD_OUT / RESTOCKED news for every instance's L1 cache
// (in-process when embedded; Kafka product_status_change_topic when
// distributed). Safe for concurrent use.

#include <cstdint>
#include <functional>

#include "core/domain.hpp"

namespace flashsale {

enum class ProductStatusChange { kSoldOut, kRestocked };

class StatusBroadcast {
 public:
  // `epoch`: the product's restock epoch when the change happened.
  using Listener = std::function<void(ProductId, ProductStatusChange, std::int64_t epoch)>;
  virtual ~StatusBroadcast() = default;
  virtual void Publish(ProductId product, ProductStatusChange change, std::int64_t epoch) = 0;
  // REQUIRES: called before the first Publish (start-up wiring).
  virtual void Subscribe(Listener listener) = 0;
};

}  // namespace flashsale
