#pragma once
// BuyerTable: the per-user records of one product in the embedded stock store
// (user -> units held, latest order id), compact enough for millions of buyers.
//
// Layout: open addressing with linear probing over one array of 32-byte
// records (user id 8, units 8, order id packed into 12, state 4), capacity a
// power of two, at most 3/4 full. Erasing shifts the records behind it back
// (no tombstones), so a lookup stops at the first empty slot. With the free
// slots a record costs 43..85 bytes (load factor between 3/8 and 3/4): 53.7
// at 10 M records; the unordered_map it replaces cost 73.7 and one more cache
// miss per lookup (bucket, then node).
//
// Growth is incremental, as in Redis dicts: doubling allocates the new array
// and leaves the records in the old one; every later call first moves those
// of a few old slots (migrate_slots_per_call, finishing a run of records), and
// lookups consult both arrays until the old one is empty. Moving them all at
// once took 0.6-1.1 s of CPU at 6.3 M records (bench/buyer_table_bench.cpp),
// a pause for every purchase of the product's shard, which waits on its lock;
// incrementally, no single call took more than ~1.2 ms of CPU.
//
// Thread safety: thread-compatible; the store calls it under a shard lock.
//
// Invariants:
//  - a user has at most one record, in the new array or the old one;
//  - in each array, every record sits at its home slot or after it with no
//    empty slot between (cyclically): what linear probing needs to find it;
//  - while growing, the old array's slots before migrate_pos_ are empty, and
//    so is the one at migrate_pos_ between calls (unless it is 0).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <utility>

#include "core/domain.hpp"

namespace flashsale::embedded {

class BuyerTable {
 public:
  // One buyer's record: a view into the table, valid until the next call on
  // the table (a call may move records).
  class Record {
   public:
    [[nodiscard]] UserId user() const { return static_cast<UserId>(user_); }
    [[nodiscard]] std::int64_t units() const { return units_; }
    // Empty when the record was loaded without one.
    [[nodiscard]] OrderId latest_order() const;
    // A purchase: adds `units`; `order` becomes the latest order.
    void Add(std::int64_t units, const OrderId& order);
    // Start-up rebuild, which may see a user's orders in any order: adds
    // `units` and keeps the greater order id (ids sort by creation time).
    void Merge(std::int64_t units, const OrderId& order);

   private:
    friend class BuyerTable;
    enum State : std::uint32_t { kEmpty = 0, kNoOrder = 1, kWithOrder = 2 };
    void SetOrder(const OrderId& order);

    // All zero is an empty slot, so arrays come from calloc (untouched pages
    // stay unmapped until a record lands there).
    std::uint64_t user_;
    std::int64_t units_;
    OrderId::Packed order_;
    State state_;
  };
  static_assert(sizeof(Record) == 32, "two records per cache line");

  // Slots of the old array moved or passed per call while growing, plus the
  // rest of a run of records under way (runs are short at 3/4 load). The old
  // array is empty well before the new one fills: it holds capacity/2 slots,
  // and filling takes 3/8 capacity inserts.
  static constexpr std::size_t kMigrateSlotsPerCall = 8;
  // Moves everything at the doubling itself (stop-the-world), for comparison.
  static constexpr std::size_t kMigrateAllAtOnce = std::numeric_limits<std::size_t>::max();

  explicit BuyerTable(std::size_t migrate_slots_per_call = kMigrateSlotsPerCall);
  BuyerTable(BuyerTable&&) noexcept = default;
  BuyerTable& operator=(BuyerTable&&) noexcept = default;

  // The record of `user`, or null.
  Record* Find(UserId user);
  // Creates the record of `user`. REQUIRES: Find(user) was null, and the
  // table has not changed since.
  void Insert(UserId user, std::int64_t units, const OrderId& order);
  // Takes `units` back from the user's record, erasing it when none remain.
  // False, changing nothing, when the user holds fewer than `units`.
  bool Take(UserId user, std::int64_t units);

  [[nodiscard]] std::size_t size() const { return cur_.size + old_.size; }
  // Slots of both arrays, and what they occupy.
  [[nodiscard]] std::size_t capacity() const { return cur_.capacity() + old_.capacity(); }
  [[nodiscard]] std::size_t MemoryBytes() const { return capacity() * sizeof(Record); }
  // A doubling is under way: records remain in the old array.
  [[nodiscard]] bool growing() const { return static_cast<bool>(old_.slots); }

 private:
  // Zeroed (empty) slots. Small arrays come from calloc; large ones are
  // mapped directly, so pages arrive lazily and a growing table can hand back
  // the old array's emptied prefix piece by piece: freeing the 256 MiB array
  // in one go at the end of a doubling took 16 ms.
  class Slots {
   public:
    Slots() = default;
    explicit Slots(std::size_t capacity);
    Slots(Slots&& other) noexcept { *this = std::move(other); }
    Slots& operator=(Slots&& other) noexcept;
    ~Slots() { Free(); }
    explicit operator bool() const { return data_ != nullptr; }
    Record& operator[](std::size_t i) const { return data_[i]; }
    // Returns the memory of slots [0, end) to the system, as far as whole
    // pieces of a mapped array go. REQUIRES: those slots are empty; they still
    // read as empty afterwards (zero pages).
    void ReleaseEmptyPrefix(std::size_t end);

   private:
    void Free();
    Record* data_ = nullptr;
    std::size_t bytes_ = 0;
    bool mapped_ = false;
    std::size_t released_bytes_ = 0;  // of a mapped array, from its start
  };
  struct Array {
    Slots slots;
    std::size_t mask = 0;  // capacity - 1 (0 with no slots)
    int shift = 64;        // home slot = hash >> shift
    std::size_t size = 0;
    [[nodiscard]] std::size_t capacity() const { return slots ? mask + 1 : 0; }
  };

  [[nodiscard]] std::uint64_t Hash(std::uint64_t user) const;
  static Array Allocate(std::size_t capacity);
  // The slot holding `user` in `a`, or capacity (none).
  std::size_t IndexIn(const Array& a, std::uint64_t user, std::uint64_t hash) const;
  void EraseAt(Array& a, std::size_t index);
  // The empty slot for `user` in the new array. REQUIRES: room, user absent.
  Record& EmptySlotFor(std::uint64_t user, std::uint64_t hash);
  void MigrateStep(std::size_t budget);
  void Grow();

  std::uint64_t key0_;
  std::uint64_t key1_;
  std::size_t migrate_slots_per_call_;
  Array cur_;
  Array old_;  // while growing: the records not yet moved
  std::size_t migrate_pos_ = 0;
};

}  // namespace flashsale::embedded
