#include "backends/embedded/memory_idempotency_store.hpp"

#include "core/domain.hpp"

namespace flashsale::embedded {

void MemoryIdempotencyStore::Preload(const std::string& key, const PurchaseFingerprint& fp,
                                     const PurchaseReply& reply, std::int64_t created_at_ms) {
  std::lock_guard lock(mu_);
  Entry& e = entries_[key];
  e.fingerprint = fp;
  e.finished = true;
  e.reply = reply;
  e.expires_ms = created_at_ms + kTtlMs;
}

void MemoryIdempotencyStore::EvictExpiredLocked(std::int64_t now_ms) {
  if (now_ms < next_eviction_ms_) return;
  next_eviction_ms_ = now_ms + 60'000;
  std::erase_if(entries_, [now_ms](const auto& kv) {
    return kv.second.finished && kv.second.expires_ms <= now_ms;
  });
}

void MemoryIdempotencyStore::Claim(std::string_view key, const PurchaseFingerprint& fp,
                                   const OrderId& proposed_order, ClaimCallback done) {
  ClaimResult claim;
  {
    std::lock_guard lock(mu_);
    const std::int64_t now = NowMillis();
    EvictExpiredLocked(now);
    auto [it, inserted] = entries_.try_emplace(std::string(key));
    Entry& e = it->second;
    if (!inserted && e.finished && e.expires_ms <= now) {
      e = Entry{};
      inserted = true;
    }
    if (inserted) {
      e.fingerprint = fp;
      claim.state = ClaimState::kFirst;
      // In process, an owner always finishes: its own id is never lost.
      claim.order_id = proposed_order;
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
  done(claim);
}

void MemoryIdempotencyStore::Finish(std::string_view key, const PurchaseReply& reply,
                                    bool remember) {
  std::vector<std::pair<PurchaseFingerprint, ClaimCallback>> waiters;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(std::string(key));
    FLASHSALE_CHECK(it != entries_.end() && !it->second.finished, "Finish without Claim");
    waiters = std::move(it->second.waiters);
    if (remember) {
      it->second.finished = true;
      it->second.reply = reply;
      it->second.expires_ms = NowMillis() + kTtlMs;
    } else {
      entries_.erase(it);
    }
  }
  ClaimResult claim;
  claim.state = ClaimState::kReplay;
  claim.reply = reply;
  for (auto& [fp, callback] : waiters) callback(claim);
}

}  // namespace flashsale::embedded
