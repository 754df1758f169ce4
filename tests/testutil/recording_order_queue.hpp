#pragma once
// RecordingOrderQueue: a fake OrderQueue for unit tests (never in production).
// It records every hand-off and answers it with the status set by AnswerWith()
// (OK by default), either inline on the caller's thread (Mode::kInline) or from
// its own answer thread (Mode::kDeferred), which models a journal or a Kafka
// producer answering later. Hold() parks deferred answers until Release(), so
// a test can line up racing requests behind one in-flight hand-off.
//
// Thread safety: every method may be called from any thread. Callbacks run
// without the queue's lock held, so they may call back into the queue.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "core/order_queue.hpp"

namespace flashsale::testutil {

class RecordingOrderQueue final : public OrderQueue {
 public:
  enum class Mode { kInline, kDeferred };

  explicit RecordingOrderQueue(Mode mode = Mode::kInline);
  // Releases held answers, answers everything queued, joins the answer thread.
  ~RecordingOrderQueue() override;
  RecordingOrderQueue(const RecordingOrderQueue&) = delete;
  RecordingOrderQueue& operator=(const RecordingOrderQueue&) = delete;

  // The answer given to hand-offs from now on (kDeferred: decided when the
  // hand-off arrives, not when it is answered).
  void AnswerWith(Status s);
  // kDeferred only: keep answers back until Release().
  void Hold();
  void Release();

  void HandOff(Order order, HandOffCallback done) override;
  // Waits until every hand-off so far got its answer (releases nothing).
  void Flush() override;

  // Hand-offs answered OK: the orders that are "durable".
  [[nodiscard]] std::size_t Size() const;
  [[nodiscard]] std::vector<Order> Delivered() const;
  // Every hand-off, whatever its answer.
  [[nodiscard]] std::size_t HandOffs() const;
  [[nodiscard]] std::vector<Order> All() const;

 private:
  struct Pending {
    Order order;
    Status answer;
    HandOffCallback done;
  };
  void Answer(Pending p);  // REQUIRES: mu_ not held
  void Run();

  const Mode mode_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable answered_cv_;
  Status answer_;                 // guarded by mu_
  bool held_ = false;             // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  std::deque<Pending> queue_;     // guarded by mu_ (kDeferred)
  std::vector<Order> all_;        // guarded by mu_
  std::vector<Order> delivered_;  // guarded by mu_
  std::size_t handed_off_ = 0;    // guarded by mu_
  std::size_t answered_ = 0;      // guarded by mu_
  std::thread thread_;            // kDeferred only
};

}  // namespace flashsale::testutil
