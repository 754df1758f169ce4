#include "backends/embedded/memory_idempotency_store.hpp"

#include "core/domain.hpp"

namespace flashsale::embedded {
namespace {

bool IsAcceptedAnswer(const PurchaseReply& reply) {
  return reply.outcome == PurchaseOutcome::kAccepted;
}

}  // namespace

std::int64_t MemoryIdempotencyStore::EntryBytes(std::string_view key) {
  // Map node (value, hash, next pointer) + bucket, the key on the heap twice
  // (map and queue) when it does not fit the small-string buffer, the queue item.
  constexpr std::int64_t kSmallString = 15;
  const std::int64_t heap_key =
      key.size() > kSmallString ? static_cast<std::int64_t>(key.size()) + 1 : 0;
  return static_cast<std::int64_t>(sizeof(std::pair<const std::string, Entry>) + 2 * sizeof(void*) +
                                   sizeof(void*) + sizeof(Queued)) +
         2 * heap_key;
}

std::int64_t MemoryIdempotencyStore::Bytes() const {
  MutexLock lock(&mu_);
  return bytes_;
}

void MemoryIdempotencyStore::RememberLocked(const std::string& key, Entry& e,
                                            const PurchaseReply& reply, std::int64_t expires_ms) {
  e.finished = true;
  e.reply = reply;
  e.expires_ms = expires_ms;
  e.generation = next_generation_++;
  (IsAcceptedAnswer(reply) ? accepted_ : refusals_).push_back({key, e.generation, expires_ms});
  EvictLocked(NowMillis());
}

void MemoryIdempotencyStore::DropFrontLocked(std::deque<Queued>& queue) {
  const Queued& front = queue.front();
  auto it = entries_.find(front.key);
  if (it != entries_.end() && it->second.finished && it->second.generation == front.generation) {
    if (&queue == &accepted_) accepted_let_go_ = true;
    bytes_ -= EntryBytes(it->first);
    entries_.erase(it);
  }
  queue.pop_front();
}

void MemoryIdempotencyStore::EvictLocked(std::int64_t now_ms) {
  // Expired first (each queue is in expiry order), then over the cap: refusals
  // before accepted answers.
  while (!refusals_.empty() && refusals_.front().expires_ms <= now_ms) DropFrontLocked(refusals_);
  while (!accepted_.empty() && accepted_.front().expires_ms <= now_ms) {
    const bool was_let_go = accepted_let_go_;
    DropFrontLocked(accepted_);
    accepted_let_go_ = was_let_go;  // expired after 24 h: not to be answered any more
  }
  while (bytes_ > options_.max_bytes && !(refusals_.empty() && accepted_.empty())) {
    DropFrontLocked(refusals_.empty() ? accepted_ : refusals_);
  }
}

void MemoryIdempotencyStore::Preload(const std::string& key, const PurchaseFingerprint& fp,
                                     const PurchaseReply& reply, std::int64_t created_at_ms) {
  MutexLock lock(&mu_);
  auto [it, inserted] = entries_.try_emplace(key);
  if (inserted) bytes_ += EntryBytes(key);
  if (!inserted && it->second.finished) return;  // the first order with the key wins
  it->second.fingerprint = fp;
  RememberLocked(key, it->second, reply, created_at_ms + kTtlMs);
}

void MemoryIdempotencyStore::Claim(std::string_view key, const PurchaseFingerprint& fp,
                                   const OrderId& proposed_order, ClaimCallback done) {
  ClaimResult claim;
  bool ask_order_record = false;
  {
    MutexLock lock(&mu_);
    const std::int64_t now = NowMillis();
    EvictLocked(now);
    auto [it, inserted] = entries_.try_emplace(std::string(key));
    Entry& e = it->second;
    if (inserted) bytes_ += EntryBytes(key);
    if (!inserted && e.finished && e.expires_ms <= now) {
      e = Entry{};  // generation 0: its queue item no longer matches it
      inserted = true;
    }
    if (inserted) {
      e.fingerprint = fp;
      claim.state = ClaimState::kFirst;
      // In process, an owner always finishes: its own id is never lost.
      claim.order_id = proposed_order;
      ask_order_record = accepted_let_go_ && options_.find_order;
    } else if (!(e.fingerprint == fp)) {
      claim.state = ClaimState::kMismatch;
    } else if (!e.finished) {
      e.waiters.emplace_back(fp, std::move(done));
      return;  // answered by Finish()
    } else {
      claim.state = ClaimState::kReplay;
      claim.reply = e.reply;
    }
  }
  if (ask_order_record) {
    return ClaimFromOrderRecord(std::string(key), fp, proposed_order, std::move(done));
  }
  done(claim);
}

void MemoryIdempotencyStore::ClaimFromOrderRecord(std::string key, const PurchaseFingerprint& fp,
                                                  const OrderId& proposed_order,
                                                  ClaimCallback done) {
  // This caller owns the (pending) entry: racing claims wait on it meanwhile.
  Result<std::optional<Order>> found = options_.find_order(key);
  if (!found) {
    // Not known now: nothing remembered, this caller and the waiters get 503.
    std::vector<std::pair<PurchaseFingerprint, ClaimCallback>> waiters;
    {
      MutexLock lock(&mu_);
      auto it = entries_.find(key);
      FLASHSALE_CHECK(it != entries_.end() && !it->second.finished, "claimed entry vanished");
      waiters = std::move(it->second.waiters);
      bytes_ -= EntryBytes(it->first);
      entries_.erase(it);
    }
    ClaimResult unavailable;
    unavailable.state = ClaimState::kUnavailable;
    unavailable.unavailable = found.error();
    done(unavailable);
    for (auto& [waiter_fp, callback] : waiters) callback(unavailable);
    return;
  }
  if (!found->has_value() || (*found)->created_at + kTtlMs <= NowMillis()) {
    ClaimResult first;
    first.state = ClaimState::kFirst;
    first.order_id = proposed_order;
    return done(first);
  }
  const Order& o = **found;
  PurchaseReply reply;
  reply.outcome =
      o.status == OrderStatus::kFailed ? PurchaseOutcome::kSoldOut : PurchaseOutcome::kAccepted;
  reply.order_id = o.id;
  const PurchaseFingerprint stored{o.user, o.product, o.quantity};
  std::vector<std::pair<PurchaseFingerprint, ClaimCallback>> waiters;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(key);
    FLASHSALE_CHECK(it != entries_.end() && !it->second.finished, "claimed entry vanished");
    waiters = std::move(it->second.waiters);
    it->second.fingerprint = stored;
    RememberLocked(key, it->second, reply, o.created_at + kTtlMs);
  }
  ClaimResult answer;
  answer.state = stored == fp ? ClaimState::kReplay : ClaimState::kMismatch;
  if (answer.state == ClaimState::kReplay) answer.reply = reply;
  done(answer);
  for (auto& [waiter_fp, callback] : waiters) callback(answer);  // waiters share fp
}

void MemoryIdempotencyStore::Finish(std::string_view key, const PurchaseReply& reply,
                                    bool remember) {
  std::vector<std::pair<PurchaseFingerprint, ClaimCallback>> waiters;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(std::string(key));
    FLASHSALE_CHECK(it != entries_.end() && !it->second.finished, "Finish without Claim");
    waiters = std::move(it->second.waiters);
    if (remember) {
      RememberLocked(it->first, it->second, reply, NowMillis() + kTtlMs);
    } else {
      bytes_ -= EntryBytes(it->first);
      entries_.erase(it);
    }
  }
  ClaimResult claim;
  claim.state = ClaimState::kReplay;
  claim.reply = reply;
  for (auto& [fp, callback] : waiters) callback(claim);
}

}  // namespace flashsale::embedded
