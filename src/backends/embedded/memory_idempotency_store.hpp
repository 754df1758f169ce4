#pragma once
// MemoryIdempotencyStore: Idempotency-Key answers kept in process for 24 h
// (SPEC §4). Accepted answers survive restarts because the key is stored with
// its order and reloaded at start-up (Preload). One mutex guards the map: keys
// are optional and rare on the hot path, and the critical sections are a
// lookup or an insert. Safe for concurrent use; callbacks run outside the lock.

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/idempotency_store.hpp"

namespace flashsale::embedded {

class MemoryIdempotencyStore final : public IdempotencyStore {
 public:
  static constexpr std::int64_t kTtlMs = 24 * 3'600'000;

  // Start-up: an accepted answer recovered from the database.
  void Preload(const std::string& key, const PurchaseFingerprint& fp, const PurchaseReply& reply,
               std::int64_t created_at_ms);

  void Claim(std::string_view key, const PurchaseFingerprint& fp, const OrderId& proposed_order,
             ClaimCallback done) override;
  void Finish(std::string_view key, const PurchaseReply& reply, bool remember) override;

 private:
  struct Entry {
    PurchaseFingerprint fingerprint;
    bool finished = false;
    PurchaseReply reply;
    std::int64_t expires_ms = 0;
    std::vector<std::pair<PurchaseFingerprint, ClaimCallback>> waiters;  // while in flight
  };
  void EvictExpiredLocked(std::int64_t now_ms);

  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
  std::int64_t next_eviction_ms_ = 0;               // guarded by mu_
};

}  // namespace flashsale::embedded
