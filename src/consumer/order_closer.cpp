#include "consumer/order_closer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <unordered_map>

#include "core/thread_name.hpp"

namespace flashsale {

OrderCloser::OrderCloser(OrderLifecycle& lifecycle, StockStore& stock, StatusBroadcast& broadcast,
                         FunnelMetrics& metrics, Options options)
    : lifecycle_(lifecycle),
      stock_(stock),
      broadcast_(broadcast),
      metrics_(metrics),
      options_(options) {}

OrderCloser::~OrderCloser() { Stop(); }

void OrderCloser::AddSweep(Sweep sweep) { sweeps_.push_back(std::move(sweep)); }

void OrderCloser::Start() {
  thread_ = std::thread([this] { Run(); });
}

void OrderCloser::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void OrderCloser::Wake() {
  {
    MutexLock lock(&mu_);
    woken_ = true;
  }
  cv_.SignalAll();
}

OrderCloser::FaultPoint OrderCloser::FaultPointNamed(std::string_view name) {
  if (name == "closer_before_give_back") return FaultPoint::kBeforeGiveBack;
  if (name == "closer_after_give_back") return FaultPoint::kAfterGiveBack;
  return FaultPoint::kNone;
}

void OrderCloser::Run() {
  NameThisThread("closer");
  for (;;) {
    RunOnce(NowMillis());
    // Sleep until the next deadline, at most max_sleep_ms.
    UnixMillis wake_at = NowMillis() + options_.max_sleep_ms;
    if (Result<std::optional<UnixMillis>> next = lifecycle_.NextPayBy(); next && *next) {
      wake_at = std::clamp(**next, NowMillis(), wake_at);
    }
    MutexLock lock(&mu_);
    while (!stop_ && !woken_) {
      const UnixMillis now = NowMillis();
      if (now >= wake_at) break;
      cv_.WaitFor(&mu_, std::chrono::milliseconds(wake_at - now));
    }
    if (stop_) return;
    woken_ = false;
  }
}

std::int64_t OrderCloser::RunOnce(UnixMillis now) {
  std::int64_t handled = 0;
  // 1. Expire what is due, a batch per transaction.
  for (;;) {
    // The clock is read per batch: an order's closed_at is when its batch
    // closed it (a pass over a large backlog takes seconds).
    const UnixMillis batch_now = std::max(now, NowMillis());
    Result<std::int64_t> expired = lifecycle_.ExpireDue(batch_now, options_.batch);
    if (!expired) {
      spdlog::warn("closer: expiring orders: {}", expired.error().ToString());
      break;
    }
    handled += *expired;
    if (*expired < options_.batch) break;
  }
  // 2. Give back the units of closed orders; 3. one RESTOCKED per product.
  std::unordered_map<ProductId, std::int64_t> epochs;
  handled += ReturnUnits(now, epochs);
  // 4. The mode's sweeps (they merge nothing into `epochs`: they broadcast
  // on their own).
  for (const Sweep& sweep : sweeps_) handled += sweep(now);
  for (const auto& [product, epoch] : epochs) {
    broadcast_.Publish(product, ProductStatusChange::kRestocked, epoch);
  }
  return handled;
}

std::vector<bool> OrderCloser::GiveBack(StockStore& stock, std::span<const Order> orders,
                                        std::unordered_map<ProductId, std::int64_t>& epochs) {
  // Every release in flight at once (the Redis store pipelines them), then
  // one wait for all of them.
  struct Pending {
    Mutex mu;
    CondVar cv;
    std::size_t left GUARDED_BY(mu) = 0;
    std::vector<bool> given GUARDED_BY(mu);
    std::vector<std::int64_t> epoch GUARDED_BY(mu);
  } pending;
  {
    MutexLock lock(&pending.mu);
    pending.left = orders.size();
    pending.given.assign(orders.size(), false);
    pending.epoch.assign(orders.size(), 0);
  }
  const UnixMillis now = NowMillis();
  for (std::size_t i = 0; i < orders.size(); ++i) {
    const Order& o = orders[i];
    Reservation r;
    r.product = o.product;
    r.user = o.user;
    r.quantity = o.quantity;
    r.order = o.id;
    r.now = now;
    stock.Release(r, [&pending, i, id = o.id](Result<std::int64_t> epoch) {
      if (!epoch) {
        spdlog::warn("closer: giving back order {}: {} (retried on the next pass)", id.view(),
                     epoch.error().ToString());
      }
      MutexLock lock(&pending.mu);
      if (epoch) {
        pending.given[i] = true;
        pending.epoch[i] = *epoch;
      }
      if (--pending.left == 0) pending.cv.SignalAll();
    });
  }
  MutexLock lock(&pending.mu);
  while (pending.left > 0) pending.cv.Wait(&pending.mu);
  for (std::size_t i = 0; i < orders.size(); ++i) {
    if (!pending.given[i]) continue;
    std::int64_t& e = epochs[orders[i].product];
    e = std::max(e, pending.epoch[i]);
  }
  return pending.given;
}

std::int64_t OrderCloser::ReturnUnits(UnixMillis now,
                                      std::unordered_map<ProductId, std::int64_t>& epochs) {
  (void)now;
  std::int64_t total = 0;
  for (;;) {
    std::int64_t claimed = 0;
    Result<std::int64_t> marked = lifecycle_.ReturnClosedUnits(
        options_.batch, [&](std::span<const Order> orders) -> std::vector<bool> {
          claimed = static_cast<std::int64_t>(orders.size());
          if (options_.fault == FaultPoint::kBeforeGiveBack) {
            spdlog::critical("FLASHSALE_FAULT: killed before giving back {} orders", orders.size());
            std::raise(SIGKILL);
          }
          std::vector<bool> given = GiveBack(stock_, orders, epochs);
          if (options_.fault == FaultPoint::kAfterGiveBack) {
            spdlog::critical("FLASHSALE_FAULT: killed after giving back {} orders", orders.size());
            std::raise(SIGKILL);
          }
          for (std::size_t i = 0; i < orders.size(); ++i) {
            if (!given[i]) continue;
            const Order& o = orders[i];
            metrics_.units_returned.Inc(o.quantity);
            if (o.status == OrderStatus::kCancelled) {
              metrics_.orders_closed_cancelled.Inc();
            } else {
              metrics_.orders_closed_expired.Inc();
              if (o.pay_by && o.closed_at && *o.closed_at >= *o.pay_by) {
                metrics_.close_lag.ObserveNanos((*o.closed_at - *o.pay_by) * 1'000'000);
              }
            }
          }
          return given;
        });
    if (!marked) {
      spdlog::warn("closer: returning units of closed orders: {}", marked.error().ToString());
      break;
    }
    total += *marked;
    if (claimed < options_.batch || *marked == 0) break;
  }
  return total;
}

}  // namespace flashsale
