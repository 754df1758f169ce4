#pragma once
// LocalStatusBroadcast: SOLD_OUT / RESTOCKED news within one process (embedded
// mode has one instance). Listeners run inline on the publisher's thread.
// Subscribe() only during start-up; Publish() is then safe from any thread.

#include <vector>

#include "core/status_broadcast.hpp"

namespace flashsale::embedded {

class LocalStatusBroadcast final : public StatusBroadcast {
 public:
  void Publish(ProductId product, ProductStatusChange change, std::int64_t epoch) override {
    for (const Listener& l : listeners_) l(product, change, epoch);
  }
  void Subscribe(Listener listener) override { listeners_.push_back(std::move(listener)); }

 private:
  std::vector<Listener> listeners_;  // constant after start-up
};

}  // namespace flashsale::embedded
