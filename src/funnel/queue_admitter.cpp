#include "funnel/queue_admitter.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <vector>

#include "core/thread_name.hpp"

namespace flashsale {

void QueueAdmitter::Start() {
  thread_ = std::thread([this] { Run(); });
}

void QueueAdmitter::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void QueueAdmitter::Touch(ProductId product) {
  const std::int64_t now = SteadyMillis();
  MutexLock lock(&mu_);
  active_[product] = now;
}

void QueueAdmitter::Count(const QueueState& state) const {
  if (state.newly_admitted > 0) metrics_.queue_admitted.Inc(state.newly_admitted);
}

void QueueAdmitter::Run() {
  NameThisThread("queue-admitter");
  std::vector<ProductId> products;
  MutexLock lock(&mu_);
  while (!stop_) {
    const auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTickMs);
    while (!stop_ && std::chrono::steady_clock::now() < next) cv_.WaitUntil(&mu_, next);
    if (stop_) return;
    const std::int64_t steady_now = SteadyMillis();
    products.clear();
    for (auto it = active_.begin(); it != active_.end();) {
      if (steady_now - it->second > kForgetAfterMs) {
        it = active_.erase(it);
      } else {
        products.push_back(it->first);
        ++it;
      }
    }
    lock.Unlock();
    for (ProductId product : products) {
      Result<std::optional<QueueState>> state = store_.Advance(product, NowMillis());
      if (!state) {
        spdlog::warn("waiting room of product {}: {}", product, state.error().ToString());
      } else if (*state) {
        Count(**state);
      }
    }
    lock.Lock();
  }
}

}  // namespace flashsale
