#pragma once
// OrderCloser: the order lifecycle's clock (README "Order lifecycle"). On a
// thread of its own it
//   1. closes every CONFIRMED order whose pay_by has passed (EXPIRED), in the
//      database, one atomic decision per order (OrderLifecycle::ExpireDue);
//   2. gives the units of closed orders (EXPIRED and CANCELLED) back to the
//      stock store and the buyer's record (StockStore::Release), through the
//      database's outbox (ReturnClosedUnits): an order is marked returned only
//      once its release is done, so a crash in between returns it on the next
//      pass (the release is idempotent per order, or redone by the embedded
//      start-up rebuild), never twice;
//   3. broadcasts RESTOCKED once per product per pass (coalesced, not one per
//      order), so every instance's L1 forgets the sold-out flag;
//   4. runs the mode's extra sweeps (distributed: stranded reservations).
// It sleeps until the next pay_by (bounded by Options::max_sleep_ms, so
// orders cancelled or landed by other processes are seen soon), or until
// Wake() (a cancel in this process).
//
// Thread safety: Start()/Stop() from the owner's thread; Wake() and RunOnce()
// from any thread (RunOnce is for tests and tools, not beside a started closer).

#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics.hpp"
#include "core/mutex.hpp"
#include "core/order_lifecycle.hpp"
#include "core/status_broadcast.hpp"
#include "core/stock_store.hpp"

namespace flashsale {

class OrderCloser {
 public:
  // Where the crash tests kill the process (FLASHSALE_FAULT, tests only):
  // after the database closed orders and claimed their units for return,
  // before (kBeforeGiveBack) or after (kAfterGiveBack) the stock store's
  // write, before the outbox is marked.
  enum class FaultPoint { kNone, kBeforeGiveBack, kAfterGiveBack };

  struct Options {
    int max_sleep_ms = 200;
    std::int64_t batch = 5000;  // orders per database transaction
    FaultPoint fault = FaultPoint::kNone;
  };
  // An extra sweep run on every pass (after the outbox); returns how many
  // orders it handled. Runs on the closer's thread.
  using Sweep = std::function<std::int64_t(UnixMillis now)>;

  // All references must outlive the closer.
  OrderCloser(OrderLifecycle& lifecycle, StockStore& stock, StatusBroadcast& broadcast,
              FunnelMetrics& metrics, Options options);
  ~OrderCloser();
  OrderCloser(const OrderCloser&) = delete;
  OrderCloser& operator=(const OrderCloser&) = delete;

  void AddSweep(Sweep sweep);  // REQUIRES: before Start()
  void Start();
  void Stop();
  void Wake();

  // One pass at `now`: expire, give back, broadcast, sweep. Returns the
  // orders it closed or gave back. Errors are logged (the next pass retries).
  std::int64_t RunOnce(UnixMillis now);

  // FLASHSALE_FAULT's value ("closer_before_give_back", ...) as a FaultPoint.
  static FaultPoint FaultPointNamed(std::string_view name);

  // Gives back the units of `orders` through `stock` (one Release each, all
  // in flight at once, waited for), and returns one flag per order; the
  // products' new restock epochs are merged into `epochs`. Shared with the
  // stranded-reservation sweep.
  static std::vector<bool> GiveBack(StockStore& stock, std::span<const Order> orders,
                                    std::unordered_map<ProductId, std::int64_t>& epochs);

 private:
  void Run();
  std::int64_t ReturnUnits(UnixMillis now, std::unordered_map<ProductId, std::int64_t>& epochs);

  OrderLifecycle& lifecycle_;
  StockStore& stock_;
  StatusBroadcast& broadcast_;
  FunnelMetrics& metrics_;
  const Options options_;
  std::vector<Sweep> sweeps_;

  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool woken_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace flashsale
