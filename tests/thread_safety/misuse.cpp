// Compiled by thread_safety_check.sh with clang -Wthread-safety -Werror: each
// function marked BAD must be refused, the GOOD ones accepted. Proves that
// src/core/mutex.hpp's annotations are live (a typo in a macro would make
// every GUARDED_BY silently vacuous).
#include "core/mutex.hpp"

namespace {
class Account {
 public:
  void Deposit(int n) {
#if defined(CHECK_GOOD)
    flashsale::MutexLock lock(&mu_);
    balance_ += n;
    AddLocked(n);
#elif defined(CHECK_BAD_UNLOCKED_WRITE)
    balance_ += n;  // GUARDED_BY(mu_) written without mu_
#elif defined(CHECK_BAD_REQUIRES)
    AddLocked(n);  // REQUIRES(mu_) called without mu_
#elif defined(CHECK_BAD_WAIT)
    cv_.Wait(&mu_);  // CondVar::Wait REQUIRES its mutex
    (void)n;
#endif
  }

 private:
  void AddLocked(int n) REQUIRES(mu_) { balance_ += n; }
  flashsale::Mutex mu_;
  flashsale::CondVar cv_;
  int balance_ GUARDED_BY(mu_) = 0;
};
}  // namespace

int main() {
  Account a;
  a.Deposit(1);
}
