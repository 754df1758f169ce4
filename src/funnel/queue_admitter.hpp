#pragma once
// QueueAdmitter: keeps the waiting rooms this instance serves moving on
// schedule (README "Admission control"). Admission is by rate, so the
// frontier needs no event to advance; but flashsale_queue_admitted_total must
// show admissions when they happen, not when somebody next polls. Every 100 ms
// it advances the queue of each product joined or polled here in the last
// ten minutes, and counts the positions it moved the frontier past. Calls by
// the routes count theirs too (Count()); since each store call reports only
// what it advanced, the counter summed over instances counts every admitted
// position once.
//
// Thread-safe. Start() once; Stop() (or the destructor) joins the thread.

#include <cstdint>
#include <thread>
#include <unordered_map>

#include "core/admission.hpp"
#include "core/metrics.hpp"
#include "core/mutex.hpp"

namespace flashsale {

class QueueAdmitter {
 public:
  static constexpr std::int64_t kTickMs = 100;
  static constexpr std::int64_t kForgetAfterMs = 600'000;

  // `store` and `metrics` must outlive the admitter.
  QueueAdmitter(WaitingRoomStore& store, FunnelMetrics& metrics)
      : store_(store), metrics_(metrics) {}
  ~QueueAdmitter() { Stop(); }
  QueueAdmitter(const QueueAdmitter&) = delete;
  QueueAdmitter& operator=(const QueueAdmitter&) = delete;

  void Start();
  void Stop();

  // `product`'s room is in use here: keep it moving. Any thread.
  void Touch(ProductId product);
  // A route's store call advanced `state`: count what it admitted.
  void Count(const QueueState& state) const;

 private:
  void Run();

  WaitingRoomStore& store_;
  FunnelMetrics& metrics_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::unordered_map<ProductId, std::int64_t> active_ GUARDED_BY(mu_);  // -> last touch (steady ms)
  std::thread thread_;
};

}  // namespace flashsale
