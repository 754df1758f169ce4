#pragma once
// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with
// clang's thread-safety annotations, so that locking rules are checked by the
// compiler (as LevelDB's port::Mutex does). libstdc++'s std::mutex carries no
// annotations, hence the thin wrappers; they cost nothing at run time.
//
// Use: state protected by a mutex is declared `T x_ GUARDED_BY(mu_);`, a
// method that expects the caller to hold it `void F() REQUIRES(mu_);`. The
// clang build (the `fuzz` preset, which builds every library) compiles with
// -Wthread-safety -Werror; gcc ignores the attributes.
//
// Waiting: write the loop out (`while (!ready_) cv_.Wait(&mu_);`) instead of
// passing a predicate lambda, which the analysis cannot see is called with
// the mutex held.

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define FLASHSALE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define FLASHSALE_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) FLASHSALE_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY FLASHSALE_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) FLASHSALE_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) FLASHSALE_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_AFTER(...) FLASHSALE_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) FLASHSALE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) FLASHSALE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) FLASHSALE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) FLASHSALE_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) FLASHSALE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) FLASHSALE_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS FLASHSALE_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace flashsale {

class CondVar;

// Not recursive. Thread-safe by definition.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis the caller holds the mutex (where it cannot see it).
  void AssertHeld() ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its scope; Unlock()/Lock() let a scope drop it for a while
// (e.g. to run callbacks without the lock).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_->Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() {
    held_ = false;
    mu_->Unlock();
  }
  void Lock() ACQUIRE() {
    mu_->Lock();
    held_ = true;
  }

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A condition variable; every wait names the Mutex it releases while
// waiting, which the caller must hold (as absl::CondVar does: the analysis
// checks the mutex at each call). Use one Mutex with a given CondVar.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // May wake spuriously: call it in a loop that re-checks the condition.
  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // False when `timeout` passed without a notification (or spuriously).
  template <class Rep, class Period>
  bool WaitFor(Mutex* mu, std::chrono::duration<Rep, Period> timeout) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool notified = cv_.wait_for(lock, timeout) == std::cv_status::no_timeout;
    lock.release();
    return notified;
  }
  template <class Clock, class Duration>
  bool WaitUntil(Mutex* mu, std::chrono::time_point<Clock, Duration> deadline) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool notified = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return notified;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace flashsale
