#include "backends/embedded/sqlite_order_journal.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include "core/metrics.hpp"
#include "core/thread_name.hpp"

namespace flashsale::embedded {

void JournalOrderSource::Prime(std::vector<Order> pending) {
  MutexLock lock(&mu_);
  for (Order& o : pending) orders_.push_back(std::move(o));
  cv_.Signal();
}

void JournalOrderSource::Push(std::vector<Order>& committed) {
  {
    MutexLock lock(&mu_);
    for (Order& o : committed) orders_.push_back(std::move(o));
  }
  cv_.Signal();
}

Result<std::vector<Order>> JournalOrderSource::Poll(std::size_t max, int wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  std::deque<Order> taken;
  std::vector<Order> out;
  {
    MutexLock lock(&mu_);
    while (orders_.empty() && !woken_ && std::chrono::steady_clock::now() < deadline) {
      cv_.WaitUntil(&mu_, deadline);
    }
    woken_ = false;
    if (orders_.size() <= max) {
      // Everything: the deque is swapped out, and its orders moved after the
      // lock is released (the journal thread pushes under it; a batch can be
      // 100,000 orders).
      taken.swap(orders_);
    } else {
      out.reserve(max);
      for (std::size_t i = 0; i < max; ++i) {
        out.push_back(std::move(orders_.front()));
        orders_.pop_front();
      }
      return out;
    }
  }
  out.reserve(taken.size());
  for (Order& o : taken) out.push_back(std::move(o));
  return out;
}

void JournalOrderSource::Wake() {
  MutexLock lock(&mu_);
  woken_ = true;
  cv_.SignalAll();
}

Status JournalOrderSource::DeadLetter(std::size_t index, std::string_view reason) {
  spdlog::error(
      "consumer: journalled order #{} of the batch cannot be persisted ({}); left PENDING", index,
      reason);
  return Status::Ok();
}

std::int64_t JournalOrderSource::Lag() {
  MutexLock lock(&mu_);
  return static_cast<std::int64_t>(orders_.size());
}

SqliteOrderJournal::SqliteOrderJournal(SqliteDatabase& db, JournalOrderSource& source)
    : db_(db), source_(source), thread_([this] { Run(); }) {}

SqliteOrderJournal::~SqliteOrderJournal() { Stop(); }

void SqliteOrderJournal::HandOff(Order order, HandOffCallback done) {
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      queued_orders_.push_back(std::move(order));
      queued_callbacks_.push_back(std::move(done));
      ++enqueued_;
      if (queued_orders_.size() == 1) wake_.Signal();
      return;
    }
  }
  done(Status::NotDelivered("journal is shutting down"));
}

void SqliteOrderJournal::Flush() {
  MutexLock lock(&mu_);
  const std::uint64_t target = enqueued_;
  while (answered_ < target) drained_.Wait(&mu_);
}

void SqliteOrderJournal::Stop() {
  Flush();
  {
    MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.Signal();
  if (thread_.joinable()) thread_.join();
}

void SqliteOrderJournal::Run() {
  NameThisThread("journal");
  std::vector<Order> orders;
  std::vector<HandOffCallback> callbacks;
  for (;;) {
    {
      MutexLock lock(&mu_);
      while (queued_orders_.empty() && !stopping_) wake_.Wait(&mu_);
      if (queued_orders_.empty()) return;  // stopping and drained
      // Everything queued so far goes into this commit (group commit). The
      // batch is not capped: its size is bounded by the requests in flight.
      orders.swap(queued_orders_);
      callbacks.swap(queued_callbacks_);
    }
    const Status s = db_.AppendPending(orders);
    if (!s.ok())
      spdlog::error("journal commit of {} orders failed: {}", orders.size(), s.ToString());
    // Answer only after the commit (durable first, then reply). A callback
    // that throws is a bug upstream: logged and counted, and the rest of the
    // group is still answered (the journal thread must outlive it).
    for (HandOffCallback& done : callbacks) {
      try {
        done(s);
      } catch (const std::exception& e) {
        InternalErrors().Inc();
        spdlog::error("order journal: a hand-off callback threw: {}", e.what());
      } catch (...) {
        InternalErrors().Inc();
        spdlog::error("order journal: a hand-off callback threw an unknown exception");
      }
    }
    const std::size_t answered = orders.size();
    if (s.ok()) source_.Push(orders);
    orders.clear();
    callbacks.clear();
    {
      MutexLock lock(&mu_);
      answered_ += answered;
    }
    drained_.SignalAll();
  }
}

}  // namespace flashsale::embedded
