#pragma once
// MemoryIdempotencyStore: Idempotency-Key answers kept in process for 24 h
// (SPEC §4). Accepted answers survive restarts because the key is stored with
// its order and reloaded at start-up (Preload). One mutex guards the map: keys
// are optional and rare on the hot path, and the critical sections are a
// lookup or an insert. Safe for concurrent use; callbacks run outside the lock.
//
// Bounded: the entries take at most Options::max_bytes (an estimate per entry:
// the map node, the key, its place in an eviction queue; ~250 B for a 36-byte
// key). Finished answers wait in two queues in finish order, refusals
// (anything not ACCEPTED) and accepted ones; over the cap the oldest refusal
// goes first, then the oldest accepted answer. An accepted answer let go is
// still found: a new claim of an unknown key asks Options::find_order (the
// order record, by its Idempotency-Key) once any accepted answer was let go.
// Pending entries (first request in flight) are counted but never let go.

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/domain.hpp"
#include "core/idempotency_store.hpp"
#include "core/mutex.hpp"
#include "core/status.hpp"

namespace flashsale::embedded {

class MemoryIdempotencyStore final : public IdempotencyStore {
 public:
  static constexpr std::int64_t kTtlMs = 24 * 3'600'000;
  using FindOrderByKey = std::function<Result<std::optional<Order>>(std::string_view key)>;

  struct Options {
    std::int64_t max_bytes = std::int64_t{256} << 20;
    FindOrderByKey find_order;  // may be empty (no order record: let-go keys are forgotten)
  };

  MemoryIdempotencyStore() : MemoryIdempotencyStore(Options{}) {}
  explicit MemoryIdempotencyStore(Options options) : options_(std::move(options)) {}

  // Start-up: an accepted answer recovered from the database (oldest first).
  void Preload(const std::string& key, const PurchaseFingerprint& fp, const PurchaseReply& reply,
               std::int64_t created_at_ms);

  void Claim(std::string_view key, const PurchaseFingerprint& fp, const OrderId& proposed_order,
             ClaimCallback done) override;
  void Finish(std::string_view key, const PurchaseReply& reply, bool remember) override;

  // The store's own accounting of the memory its entries take (estimate).
  [[nodiscard]] std::int64_t Bytes() const;

 private:
  struct Entry {
    PurchaseFingerprint fingerprint;
    bool finished = false;
    PurchaseReply reply;
    std::int64_t expires_ms = 0;
    std::uint64_t generation = 0;  // tells a queued copy of the key from a later reuse
    std::vector<std::pair<PurchaseFingerprint, ClaimCallback>> waiters;  // while in flight
  };
  struct Queued {
    std::string key;
    std::uint64_t generation = 0;
    std::int64_t expires_ms = 0;
  };
  static std::int64_t EntryBytes(std::string_view key);
  // Marks `e` finished with `reply` and queues it.
  void RememberLocked(const std::string& key, Entry& e, const PurchaseReply& reply,
                      std::int64_t expires_ms) REQUIRES(mu_);
  // Drops the queue's front entry if it is still that entry.
  void DropFrontLocked(std::deque<Queued>& queue) REQUIRES(mu_);
  void EvictLocked(std::int64_t now_ms) REQUIRES(mu_);
  // Resolves a key claimed while accepted answers had been let go: from the
  // order record, or as a first request.
  void ClaimFromOrderRecord(std::string key, const PurchaseFingerprint& fp,
                            const OrderId& proposed_order, ClaimCallback done);

  const Options options_;
  mutable Mutex mu_;
  std::unordered_map<std::string, Entry> entries_ GUARDED_BY(mu_);
  std::deque<Queued> refusals_ GUARDED_BY(mu_);  // finish order
  std::deque<Queued> accepted_ GUARDED_BY(mu_);  // finish order
  std::int64_t bytes_ GUARDED_BY(mu_) = 0;
  std::uint64_t next_generation_ GUARDED_BY(mu_) = 1;
  bool accepted_let_go_ GUARDED_BY(mu_) = false;
};

}  // namespace flashsale::embedded
