#pragma once
// RunConcurrently: the contention harness of the unit tests. Starts `threads`
// threads, releases them together (so they really race), and has each make
// `calls_per_thread` calls of fn(call_index), where call_index is unique in
// [0, threads * calls_per_thread). Returns when every thread has finished.
// `fn` must be safe for concurrent use.

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace flashsale::testutil {

template <class Fn>
void RunConcurrently(int threads, int calls_per_thread, Fn&& fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int c = 0; c < calls_per_thread; ++c) fn(t * calls_per_thread + c);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (std::thread& th : pool) th.join();
}

}  // namespace flashsale::testutil
