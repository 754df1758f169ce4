#pragma once
// MemoryOrderSource: a fake OrderSource for tests (never in production). It
// hands out pushed orders in push order, at most `max` per Poll(); Commit()
// marks everything polled so far as done (like a Kafka offset commit); and
// DeadLetter(i) records order i of the last Poll() with its reason, in call
// order. OnCommit() runs a check at each Commit(), before it takes effect, so
// a test can see what its repository held at that moment.
//
// Thread safety: every method may be called from any thread (the consumer
// polls on its own thread while the test reads the records).

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/order_repository.hpp"

namespace flashsale::testutil {

class MemoryOrderSource final : public OrderSource {
 public:
  struct Letter {
    Order order;
    std::string reason;
  };

  void Push(std::vector<Order> orders) {
    std::lock_guard lock(mu_);
    for (Order& o : orders) queued_.push_back(std::move(o));
    cv_.notify_all();
  }
  void OnCommit(std::function<void()> check) {
    std::lock_guard lock(mu_);
    on_commit_ = std::move(check);
  }

  Result<std::vector<Order>> Poll(std::size_t max, int wait_ms) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                 [this] { return !queued_.empty() || woken_; });
    woken_ = false;
    last_batch_.clear();
    while (!queued_.empty() && last_batch_.size() < max) {
      last_batch_.push_back(std::move(queued_.front()));
      queued_.pop_front();
    }
    polled_ += last_batch_.size();
    return last_batch_;
  }
  Status Commit() override {
    std::function<void()> check;
    {
      std::lock_guard lock(mu_);
      check = on_commit_;
    }
    if (check) check();
    std::lock_guard lock(mu_);
    committed_ = polled_;
    ++commits_;
    return Status::Ok();
  }
  void Wake() override {
    std::lock_guard lock(mu_);
    woken_ = true;
    cv_.notify_all();
  }
  std::int64_t Lag() override {
    std::lock_guard lock(mu_);
    return static_cast<std::int64_t>(queued_.size());
  }
  Status DeadLetter(std::size_t index, std::string_view reason) override {
    std::lock_guard lock(mu_);
    if (index >= last_batch_.size()) return Status::Invalid("DeadLetter index out of range");
    dead_letters_.push_back({last_batch_[index], std::string(reason)});
    return Status::Ok();
  }

  // Orders covered by a Commit() so far.
  std::size_t Committed() {
    std::lock_guard lock(mu_);
    return committed_;
  }
  int Commits() {
    std::lock_guard lock(mu_);
    return commits_;
  }
  std::vector<Letter> DeadLetters() {
    std::lock_guard lock(mu_);
    return dead_letters_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Order> queued_;          // guarded by mu_
  std::vector<Order> last_batch_;     // guarded by mu_
  std::vector<Letter> dead_letters_;  // guarded by mu_
  std::function<void()> on_commit_;   // guarded by mu_
  std::size_t polled_ = 0;            // guarded by mu_
  std::size_t committed_ = 0;         // guarded by mu_
  int commits_ = 0;                   // guarded by mu_
  bool woken_ = false;                // guarded by mu_
};

}  // namespace flashsale::testutil
