#pragma once
// SqliteOrderJournal: the embedded OrderQueue. Hand-offs from every I/O thread
// are queued; one journal thread writes everything queued so far in one
// transaction (group commit: one fsync for many orders with synchronous=FULL)
// and only then answers each order, so an ACCEPTED order is on disk. Committed
// orders go on to the consumer through JournalOrderSource.
//
// Thread safety: HandOff() and Flush() from any thread; callbacks run on the
// journal thread.

#include <deque>
#include <thread>
#include <vector>

#include "backends/embedded/sqlite_database.hpp"
#include "core/mutex.hpp"
#include "core/order_queue.hpp"
#include "core/order_repository.hpp"

namespace flashsale::embedded {

// The consumer's view of the journal: committed PENDING orders, in commit
// order. At start-up it is primed with the PENDING rows left by a previous run,
// so a crash between journal and consumer loses nothing. Thread-safe.
class JournalOrderSource final : public OrderSource {
 public:
  void Prime(std::vector<Order> pending);
  void Push(std::vector<Order>& committed);  // moves the orders in
  Result<std::vector<Order>> Poll(std::size_t max, int wait_ms) override;
  Status Commit() override { return Status::Ok(); }  // progress lives in the orders' status
  void Wake() override;
  std::int64_t Lag() override;
  // The journal has no dead-letter queue (its orders were checked against the
  // catalog before they were reserved): logs and leaves the order PENDING.
  Status DeadLetter(std::size_t index, std::string_view reason) override;

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<Order> orders_ GUARDED_BY(mu_);
  bool woken_ GUARDED_BY(mu_) = false;
};

class SqliteOrderJournal final : public OrderQueue {
 public:
  SqliteOrderJournal(SqliteDatabase& db, JournalOrderSource& source);
  ~SqliteOrderJournal() override;  // flushes, then stops the thread

  void HandOff(Order order, HandOffCallback done) override;
  void Flush() override;
  // Stops taking orders (they are answered NotDelivered) after flushing.
  void Stop();

 private:
  void Run();

  SqliteDatabase& db_;
  JournalOrderSource& source_;
  Mutex mu_;
  CondVar wake_;     // journal thread: work arrived
  CondVar drained_;  // Flush(): a batch finished
  // Orders and their callbacks, index by index; swapped out whole by the
  // journal thread, so an order is never copied.
  std::vector<Order> queued_orders_ GUARDED_BY(mu_);
  std::vector<HandOffCallback> queued_callbacks_ GUARDED_BY(mu_);
  std::uint64_t enqueued_ GUARDED_BY(mu_) = 0;
  std::uint64_t answered_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace flashsale::embedded
