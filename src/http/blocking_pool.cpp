#include "http/blocking_pool.hpp"

#include <spdlog/spdlog.h>

#include "core/metrics.hpp"
#include "core/thread_name.hpp"

namespace flashsale::http {

BlockingPool::BlockingPool(int threads, std::size_t max_queued) : max_queued_(max_queued) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

BlockingPool::~BlockingPool() { Stop(); }

void BlockingPool::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool BlockingPool::TrySubmit(std::function<void()> job) {
  {
    MutexLock lock(&mu_);
    if (stopping_ || jobs_.size() >= max_queued_) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.Signal();
  return true;
}

void BlockingPool::Run() {
  NameThisThread("blocking-pool");
  for (;;) {
    std::function<void()> job;
    {
      MutexLock lock(&mu_);
      while (jobs_.empty() && !stopping_) wake_.Wait(&mu_);
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    // A job is a route's handler: it answers its own exceptions (Api), so one
    // that still escapes is a bug; this thread must outlive it.
    try {
      job();
    } catch (const std::exception& e) {
      InternalErrors().Inc();
      spdlog::error("blocking pool: a job threw: {}", e.what());
    } catch (...) {
      InternalErrors().Inc();
      spdlog::error("blocking pool: a job threw an unknown exception");
    }
  }
}

}  // namespace flashsale::http
