#include "backends/embedded/buyer_table.hpp"

#include <algorithm>
#include <bit>
#include <new>
#include <random>

#include <sys/mman.h>

#include "core/status.hpp"

namespace flashsale::embedded {
namespace {

struct HashKeys {
  std::uint64_t key0;
  std::uint64_t key1;
};

// Drawn once per process. User ids are chosen by clients: with a fixed hash,
// sequential ids would fill runs of adjacent slots and crafted ids could all
// share one home slot, turning each purchase into a long probe under the shard
// lock. Keyed per process, home slots cannot be computed from outside. (A
// cheap keyed mixer, not a cryptographic PRF.)
const HashKeys& ProcessHashKeys() {
  static const HashKeys keys = [] {
    std::random_device rd;
    auto draw = [&rd] { return std::uint64_t{rd()} << 32 | rd(); };
    return HashKeys{draw(), draw()};
  }();
  return keys;
}

constexpr std::size_t kMinCapacity = 8;
// Arrays of at least this size are mapped, and handed back in pieces of it.
constexpr std::size_t kMapPiece = std::size_t{2} << 20;

// No MADV_HUGEPAGE: huge pages made a warm lookup ~40 % cheaper in
// buyer_table_bench, but single calls then took up to 78 ms of CPU (page
// faults of 2 MiB pages; likely the kernel compacting memory for them, not
// verified) with the shard lock held.
void* MapZeroed(std::size_t bytes) {
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) throw std::bad_alloc();
  return data;
}

}  // namespace

OrderId BuyerTable::Record::latest_order() const {
  return state_ == kWithOrder ? OrderId::Unpack(order_) : OrderId();
}

void BuyerTable::Record::SetOrder(const OrderId& order) {
  if (order.empty()) {
    state_ = kNoOrder;
    order_ = {};
  } else {
    state_ = kWithOrder;
    order_ = order.Pack();
  }
}

void BuyerTable::Record::Add(std::int64_t units, const OrderId& order) {
  units_ += units;
  SetOrder(order);
}

void BuyerTable::Record::Merge(std::int64_t units, const OrderId& order) {
  units_ += units;
  if (order.empty()) return;  // an id is greater than none
  const OrderId::Packed packed = order.Pack();
  if (state_ == kNoOrder || order_ < packed) {
    state_ = kWithOrder;
    order_ = packed;
  }
}

BuyerTable::Slots::Slots(std::size_t capacity) : bytes_(capacity * sizeof(Record)) {
  mapped_ = bytes_ >= kMapPiece;
  void* data = mapped_ ? MapZeroed(bytes_) : std::calloc(capacity, sizeof(Record));
  if (data == nullptr) throw std::bad_alloc();
  data_ = static_cast<Record*>(data);
}

BuyerTable::Slots& BuyerTable::Slots::operator=(Slots&& other) noexcept {
  if (this != &other) {
    Free();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    mapped_ = std::exchange(other.mapped_, false);
    released_bytes_ = std::exchange(other.released_bytes_, 0);
  }
  return *this;
}

void BuyerTable::Slots::Free() {
  if (data_ == nullptr) return;
  if (mapped_) {
    munmap(data_, bytes_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
}

void BuyerTable::Slots::ReleaseEmptyPrefix(std::size_t end) {
  if (!mapped_) return;
  const std::size_t upto = end * sizeof(Record) / kMapPiece * kMapPiece;
  if (upto <= released_bytes_) return;
  // MADV_DONTNEED, not munmap: the slots stay readable and read as zero,
  // i.e. empty, which probes that wrap around the array rely on.
  madvise(reinterpret_cast<char*>(data_) + released_bytes_, upto - released_bytes_, MADV_DONTNEED);
  released_bytes_ = upto;
}

BuyerTable::BuyerTable(std::size_t migrate_slots_per_call)
    : key0_(ProcessHashKeys().key0),
      key1_(ProcessHashKeys().key1),
      migrate_slots_per_call_(std::max<std::size_t>(migrate_slots_per_call, 1)) {}

std::uint64_t BuyerTable::Hash(std::uint64_t user) const {
  // Two multiply-xorshift rounds, a key folded in before each; the home slot
  // is taken from the high bits, the best mixed.
  std::uint64_t x = (user ^ key0_) * 0x9E3779B97F4A7C15u;
  x ^= x >> 32;
  x = (x ^ key1_) * 0xD6E8FEB86659FD93u;
  return x ^ (x >> 29);
}

BuyerTable::Array BuyerTable::Allocate(std::size_t capacity) {
  Array a;
  a.slots = Slots(capacity);
  a.mask = capacity - 1;
  a.shift = 64 - std::countr_zero(capacity);
  return a;
}

std::size_t BuyerTable::IndexIn(const Array& a, std::uint64_t user, std::uint64_t hash) const {
  if (a.size == 0) return a.capacity();
  for (std::size_t i = hash >> a.shift;; i = (i + 1) & a.mask) {
    const Record& r = a.slots[i];
    if (r.state_ == Record::kEmpty) return a.capacity();
    if (r.user_ == user) return i;
  }
}

void BuyerTable::EraseAt(Array& a, std::size_t index) {
  // Backward shift: walk the run after the hole; a record whose home is not
  // between the hole and itself moves into the hole, so no record ends up
  // behind an empty slot it would have to probe across.
  std::size_t hole = index;
  for (std::size_t j = (index + 1) & a.mask; a.slots[j].state_ != Record::kEmpty;
       j = (j + 1) & a.mask) {
    const std::size_t home = Hash(a.slots[j].user_) >> a.shift;
    if (((j - home) & a.mask) >= ((j - hole) & a.mask)) {
      a.slots[hole] = a.slots[j];
      hole = j;
    }
  }
  a.slots[hole] = Record{};
  --a.size;
}

BuyerTable::Record& BuyerTable::EmptySlotFor(std::uint64_t user, std::uint64_t hash) {
  for (std::size_t i = hash >> cur_.shift;; i = (i + 1) & cur_.mask) {
    Record& r = cur_.slots[i];
    if (r.state_ == Record::kEmpty) return r;
    FLASHSALE_CHECK(r.user_ != user, "BuyerTable::Insert of a user who has a record");
  }
}

void BuyerTable::MigrateStep(std::size_t budget) {
  // Moves whole runs of occupied slots, each from migrate_pos_ up to the next
  // empty slot, and stops only at an empty slot. The slot before a run is
  // empty (or the run starts at 0), so the run is the tail of a cluster: no
  // record left in the old array probes through it, and it can be emptied
  // without shifting anything back. (Erasing record by record with a backward
  // shift walked the rest of the run each time: quadratic in its length.)
  // Each slot, moved or passed, spends one unit of budget; a run under way is
  // finished even past the budget, so a call moves at most budget + the
  // longest run's records.
  while (growing()) {
    if (old_.size == 0 || migrate_pos_ == old_.capacity()) {
      FLASHSALE_CHECK(old_.size == 0, "BuyerTable: records left behind by a doubling");
      old_ = Array();
      migrate_pos_ = 0;
      return;
    }
    Record& r = old_.slots[migrate_pos_];
    if (r.state_ == Record::kEmpty) {
      if (budget == 0) return;
      --budget;
      old_.slots.ReleaseEmptyPrefix(++migrate_pos_);
      continue;
    }
    EmptySlotFor(r.user_, Hash(r.user_)) = r;
    ++cur_.size;
    --old_.size;
    r = Record{};
    ++migrate_pos_;
    if (budget > 0) --budget;
  }
}

void BuyerTable::Grow() {
  MigrateStep(kMigrateAllAtOnce);  // REQUIRES of the doubling below: one old array
  const std::size_t capacity = std::max(kMinCapacity, cur_.capacity() * 2);
  old_ = std::move(cur_);
  cur_ = Allocate(capacity);
  migrate_pos_ = 0;
  MigrateStep(migrate_slots_per_call_);
}

BuyerTable::Record* BuyerTable::Find(UserId user) {
  MigrateStep(migrate_slots_per_call_);
  const auto key = static_cast<std::uint64_t>(user);
  const std::uint64_t hash = Hash(key);
  if (std::size_t i = IndexIn(cur_, key, hash); i != cur_.capacity()) return &cur_.slots[i];
  if (std::size_t i = IndexIn(old_, key, hash); i != old_.capacity()) return &old_.slots[i];
  return nullptr;
}

void BuyerTable::Insert(UserId user, std::int64_t units, const OrderId& order) {
  MigrateStep(migrate_slots_per_call_);
  // At most 3/4 full, counting the records still to move from the old array.
  if ((size() + 1) * 4 > cur_.capacity() * 3) Grow();
  const auto key = static_cast<std::uint64_t>(user);
  Record& r = EmptySlotFor(key, Hash(key));
  r.user_ = key;
  r.units_ = units;
  r.SetOrder(order);
  ++cur_.size;
}

bool BuyerTable::Take(UserId user, std::int64_t units) {
  MigrateStep(migrate_slots_per_call_);
  const auto key = static_cast<std::uint64_t>(user);
  const std::uint64_t hash = Hash(key);
  for (Array* a : {&cur_, &old_}) {
    const std::size_t i = IndexIn(*a, key, hash);
    if (i == a->capacity()) continue;
    Record& r = a->slots[i];
    if (r.units_ < units) return false;
    r.units_ -= units;
    if (r.units_ == 0) EraseAt(*a, i);
    return true;
  }
  return false;
}

}  // namespace flashsale::embedded
