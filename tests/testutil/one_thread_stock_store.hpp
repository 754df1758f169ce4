#pragma once
// OneThreadStockStore: a fake StockStore for unit tests (never in production).
// It keeps its data in an embedded::MemoryStockStore but answers Reserve() and
// Release() later, from one thread of its own, the way RedisStockStore does
// with --redis-shared-connections (every reply read and answered by the one
// Redis I/O thread): a caller that waited there for an answer would wait for
// itself.
//
// Thread safety: every method may be called from any thread. Callbacks run on
// the store's thread, without the store's lock held.

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "backends/embedded/memory_stock_store.hpp"

namespace flashsale::testutil {

class OneThreadStockStore final : public StockStore {
 public:
  OneThreadStockStore() : thread_([this] { Run(); }) {}
  // Runs what is queued, then joins the thread.
  ~OneThreadStockStore() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  OneThreadStockStore(const OneThreadStockStore&) = delete;
  OneThreadStockStore& operator=(const OneThreadStockStore&) = delete;

  embedded::MemoryStockStore& data() { return data_; }
  // Waits until everything posted so far has run, callbacks included (so the
  // test may destroy what they touch). REQUIRES: not on the store's thread.
  void Drain() {
    std::promise<void> drained;
    Post([&drained] { drained.set_value(); });
    drained.get_future().wait();
  }
  [[nodiscard]] bool OnStoreThread() const {
    return std::this_thread::get_id() == thread_.get_id();
  }

  void Reserve(const Reservation& r, ReserveCallback done) override {
    Post([this, r, done = std::move(done)] { data_.Reserve(r, done); });
  }
  void Release(const Reservation& r, ReleaseCallback done) override {
    Post([this, r, done = std::move(done)] { data_.Release(r, done); });
  }
  Result<PutResult> Put(const Product& p, const PersistProduct& persist) override {
    return data_.Put(p, persist);
  }
  Result<PutResult> Restock(ProductId id, std::int64_t amount,
                            const PersistProduct& persist) override {
    return data_.Restock(id, amount, persist);
  }
  Result<std::optional<StockSnapshot>> Get(ProductId id) override { return data_.Get(id); }
  Result<std::vector<StockSnapshot>> List(std::int64_t offset, std::int64_t limit) override {
    return data_.List(offset, limit);
  }
  Result<std::int64_t> ProductCount() override { return data_.ProductCount(); }

 private:
  void Post(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_all();
  }
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        wake_.wait(lock, [this] { return !tasks_.empty() || stopping_; });
        if (tasks_.empty()) return;  // stopping and drained
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  embedded::MemoryStockStore data_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::thread thread_;                       // last: starts once the rest exists
};

}  // namespace flashsale::testutil
