#pragma once
// BlockingPool: a few threads for route work that may block on a backend
// (database reads, readiness pings), so it never runs on an HTTP event loop.
// The queue is bounded: when it is full, TrySubmit() refuses at once and the
// route answers 503, instead of requests piling up behind a stalled backend.
//
// Thread safety: TrySubmit() and Stop() from any thread.

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "core/mutex.hpp"

namespace flashsale::http {

class BlockingPool {
 public:
  BlockingPool(int threads, std::size_t max_queued);
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // False (and `job` dropped) when max_queued jobs already wait, or after Stop().
  bool TrySubmit(std::function<void()> job);
  // Runs what was queued, then joins the threads. Idempotent; the destructor calls it.
  void Stop();

 private:
  void Run();

  const std::size_t max_queued_;
  Mutex mu_;
  CondVar wake_;
  std::deque<std::function<void()>> jobs_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace flashsale::http
