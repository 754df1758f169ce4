#include "recording_order_queue.hpp"

#include <utility>

namespace flashsale::testutil {

RecordingOrderQueue::RecordingOrderQueue(Mode mode) : mode_(mode) {
  if (mode_ == Mode::kDeferred) thread_ = std::thread([this] { Run(); });
}

RecordingOrderQueue::~RecordingOrderQueue() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    held_ = false;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RecordingOrderQueue::AnswerWith(Status s) {
  std::lock_guard lock(mu_);
  answer_ = std::move(s);
}

void RecordingOrderQueue::Hold() {
  std::lock_guard lock(mu_);
  held_ = true;
}

void RecordingOrderQueue::Release() {
  {
    std::lock_guard lock(mu_);
    held_ = false;
  }
  wake_.notify_all();
}

void RecordingOrderQueue::HandOff(Order order, HandOffCallback done) {
  Pending p;
  {
    std::lock_guard lock(mu_);
    ++handed_off_;
    all_.push_back(order);
    p = Pending{std::move(order), answer_, std::move(done)};
    if (mode_ == Mode::kDeferred) {
      queue_.push_back(std::move(p));
      wake_.notify_all();
      return;
    }
  }
  Answer(std::move(p));
}

void RecordingOrderQueue::Answer(Pending p) {
  {
    std::lock_guard lock(mu_);
    if (p.answer.ok()) delivered_.push_back(p.order);
  }
  p.done(p.answer);
  {
    std::lock_guard lock(mu_);
    ++answered_;
  }
  answered_cv_.notify_all();
}

void RecordingOrderQueue::Run() {
  for (;;) {
    Pending p;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return (!queue_.empty() && !held_) || stopping_; });
      if (queue_.empty()) return;  // stopping and drained
      p = std::move(queue_.front());
      queue_.pop_front();
    }
    Answer(std::move(p));
  }
}

void RecordingOrderQueue::Flush() {
  std::unique_lock lock(mu_);
  const std::size_t target = handed_off_;
  answered_cv_.wait(lock, [&] { return answered_ >= target; });
}

std::size_t RecordingOrderQueue::Size() const {
  std::lock_guard lock(mu_);
  return delivered_.size();
}

std::vector<Order> RecordingOrderQueue::Delivered() const {
  std::lock_guard lock(mu_);
  return delivered_;
}

std::size_t RecordingOrderQueue::HandOffs() const {
  std::lock_guard lock(mu_);
  return handed_off_;
}

std::vector<Order> RecordingOrderQueue::All() const {
  std::lock_guard lock(mu_);
  return all_;
}

}  // namespace flashsale::testutil
