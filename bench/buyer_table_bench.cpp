// Buyer records of the embedded stock store at scale (issue 8), one line per workload:
//   fill     10,000,000 distinct uniformly random 63-bit user ids into ONE product through
//            MemoryStockStore::Reserve (stock and limit 10^9): VmRSS before/after, bytes per
//            record, ns per Reserve, the longest single Reserve (a table growth shows here)
//   warm hit a table of 1,000,000 random buyers; Reserve by one of them (lookup + update)
//   warm new the same table; Reserve by a new random user, then Release it (insert + erase,
//            so the table keeps its size)
//   growth   BuyerTable::Insert alone, 10 M random users, growing incrementally and then
//            stop-the-world: the longest single Insert (why growth is incremental)
// A plain program rather than Google Benchmark: the figures of interest are the resident
// size and the single worst call, which Google Benchmark does not report.
// Run: build/release/bench/buyer_table_bench [records=10000000] [warm_records=1000000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <time.h>

#include "backends/embedded/memory_stock_store.hpp"
// Absent before BuyerTable existed: the same program then measures the
// unordered_map layout (fill and warm only), for a before/after.
#if __has_include("backends/embedded/buyer_table.hpp")
#include "backends/embedded/buyer_table.hpp"
#define FLASHSALE_HAS_BUYER_TABLE 1
#endif

namespace flashsale {
namespace {

using Clock = std::chrono::steady_clock;

constexpr ProductId kProduct = 1;
constexpr std::int64_t kBillion = 1'000'000'000;

// A field of /proc/self/status in KiB (0 when unavailable): VmRSS, the
// resident set size, or VmHWM, its peak so far.
std::int64_t ProcStatusKiB(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::strtoll(line.c_str() + field.size(), nullptr, 10);
  }
  return 0;
}
std::int64_t VmRssKiB() { return ProcStatusKiB("VmRSS:"); }

double NsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
}

// CPU time of this thread: unlike the wall clock, it leaves out the time the
// thread was preempted (the benchmark shares 2 cores with builds), and keeps
// the kernel's page faults, which are part of a call's cost.
double ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// The worst single call, by wall clock and by CPU time.
struct Worst {
  double wall_ns = 0;
  std::int64_t wall_at = 0;
  double cpu_ns = 0;
  std::int64_t cpu_at = 0;
  void Add(std::int64_t i, double wall, double cpu) {
    if (wall > wall_ns) {
      wall_ns = wall;
      wall_at = i;
    }
    if (cpu > cpu_ns) {
      cpu_ns = cpu;
      cpu_at = i;
    }
  }
  void Print(const char* what) const {
    std::printf("%s: longest single call %.3f ms wall (at %lld), %.3f ms CPU (at %lld)\n", what,
                wall_ns / 1e6, static_cast<long long>(wall_at), cpu_ns / 1e6,
                static_cast<long long>(cpu_at));
  }
};

Product BigProduct() {
  Product p;
  p.id = kProduct;
  p.price = 100;
  p.stock = kBillion;
  p.limit_per_user = kBillion;
  return p;
}

// Reserves one unit; returns whether it was taken (the ids are distinct, so it must be).
bool ReserveOne(embedded::MemoryStockStore& store, UserId user, const OrderId& order) {
  bool reserved = false;
  store.Reserve({kProduct, user, 1, order, 0}, [&](Result<ReserveResult> r) {
    reserved = r.has_value() && r->outcome == ReserveOutcome::kReserved;
  });
  return reserved;
}

// 63-bit ids: user ids are int64 >= 0 (SPEC §4).
UserId RandomUser(std::mt19937_64& rng) { return static_cast<UserId>(rng() >> 1); }

void Fill(std::int64_t records) {
  // The clock is read twice per Reserve below; its own cost is part of "ns per Reserve".
  const Clock::time_point probe = Clock::now();
  for (int i = 0; i < 1000; ++i) (void)Clock::now();
  const double clock_ns = NsSince(probe) / 1000;

  OrderIdGenerator ids;
  std::mt19937_64 rng(42);
  embedded::MemoryStockStore store;
  store.Load({BigProduct()}, {});
  const std::int64_t rss_before = VmRssKiB();
  double total_wall_ns = 0;
  double total_cpu_ns = 0;
  Worst worst;
  std::int64_t reserved = 0;
  for (std::int64_t i = 0; i < records; ++i) {
    const UserId user = RandomUser(rng);
    const OrderId order = ids.Next(NowMillis());
    const double cpu_start = ThreadCpuNs();
    const Clock::time_point start = Clock::now();
    const bool ok = ReserveOne(store, user, order);
    const double wall = NsSince(start);
    const double cpu = ThreadCpuNs() - cpu_start;
    reserved += ok ? 1 : 0;
    total_wall_ns += wall;
    total_cpu_ns += cpu;
    worst.Add(i, wall, cpu);
  }
  const std::int64_t rss_after = VmRssKiB();
  std::printf("fill: %lld Reserve calls, %lld reserved (distinct buyers)\n",
              static_cast<long long>(records), static_cast<long long>(reserved));
  std::printf("fill: VmRSS before %.1f MiB, after %.1f MiB, growth %.1f MiB\n",
              static_cast<double>(rss_before) / 1024, static_cast<double>(rss_after) / 1024,
              static_cast<double>(rss_after - rss_before) / 1024);
  std::printf("fill: peak VmRSS so far (VmHWM; the fill runs first) %.1f MiB\n",
              static_cast<double>(ProcStatusKiB("VmHWM:")) / 1024);
  std::printf("fill: %.1f bytes per record (RSS growth / records)\n",
              static_cast<double>(rss_after - rss_before) * 1024 / static_cast<double>(reserved));
  std::printf(
      "fill: %.1f ns per Reserve wall, %.1f ns CPU (timers included; a wall clock read "
      "costs %.1f ns)\n",
      total_wall_ns / static_cast<double>(records), total_cpu_ns / static_cast<double>(records),
      clock_ns);
  worst.Print("fill");
}

void Warm(std::int64_t records) {
  OrderIdGenerator ids;
  std::mt19937_64 rng(7);
  embedded::MemoryStockStore store;
  store.Load({BigProduct()}, {});
  std::vector<UserId> buyers(static_cast<std::size_t>(records));
  for (UserId& user : buyers) {
    user = RandomUser(rng);
    ReserveOne(store, user, ids.Next(NowMillis()));
  }
  const OrderId order = ids.Next(NowMillis());  // the id's value does not matter here
  std::uniform_int_distribution<std::size_t> pick(0, buyers.size() - 1);
  std::vector<UserId> hits(static_cast<std::size_t>(records));
  for (UserId& user : hits) user = buyers[pick(rng)];

  std::int64_t reserved = 0;
  double cpu_start = ThreadCpuNs();
  Clock::time_point start = Clock::now();
  for (UserId user : hits) reserved += ReserveOne(store, user, order) ? 1 : 0;
  std::printf(
      "warm hit: %.1f ns per Reserve of an existing buyer wall, %.1f ns CPU (%lld records, %lld "
      "reserved)\n",
      NsSince(start) / static_cast<double>(records),
      (ThreadCpuNs() - cpu_start) / static_cast<double>(records), static_cast<long long>(records),
      static_cast<long long>(reserved));

  std::vector<UserId> fresh(static_cast<std::size_t>(records));
  for (UserId& user : fresh) user = RandomUser(rng);
  cpu_start = ThreadCpuNs();
  start = Clock::now();
  for (UserId user : fresh) {
    ReserveOne(store, user, order);
    store.Release({kProduct, user, 1, order, 0}, [](Result<std::int64_t>) {});
  }
  std::printf(
      "warm new: %.1f ns per Reserve + Release of a new buyer wall, %.1f ns CPU (%lld "
      "records)\n",
      NsSince(start) / static_cast<double>(records),
      (ThreadCpuNs() - cpu_start) / static_cast<double>(records), static_cast<long long>(records));
}

#ifdef FLASHSALE_HAS_BUYER_TABLE
void Growth(std::int64_t records, std::size_t migrate_slots_per_call, const char* name) {
  std::mt19937_64 rng(42);
  const OrderId order = OrderIdGenerator().Next(NowMillis());
  embedded::BuyerTable table(migrate_slots_per_call);
  Worst worst;
  const double cpu_all = ThreadCpuNs();
  for (std::int64_t i = 0; i < records; ++i) {
    const UserId user = RandomUser(rng);
    const double cpu_start = ThreadCpuNs();
    const Clock::time_point start = Clock::now();
    if (table.Find(user) == nullptr) table.Insert(user, 1, order);
    const double wall = NsSince(start);
    worst.Add(i, wall, ThreadCpuNs() - cpu_start);
  }
  std::printf(
      "%s: %.1f ns CPU per Find + Insert (timers included); %zu records, %zu slots of "
      "%zu B (%.1f MiB, %.1f B per record)\n",
      name, (ThreadCpuNs() - cpu_all) / static_cast<double>(records), table.size(),
      table.capacity(), sizeof(embedded::BuyerTable::Record),
      static_cast<double>(table.MemoryBytes()) / (1 << 20),
      static_cast<double>(table.MemoryBytes()) / static_cast<double>(table.size()));
  worst.Print(name);
}
#endif

}  // namespace
}  // namespace flashsale

int main(int argc, char** argv) {
  const std::int64_t records = argc > 1 ? std::atoll(argv[1]) : 10'000'000;
  const std::int64_t warm_records = argc > 2 ? std::atoll(argv[2]) : 1'000'000;
  flashsale::Fill(records);
  flashsale::Warm(warm_records);
#ifdef FLASHSALE_HAS_BUYER_TABLE
  flashsale::Growth(records, flashsale::embedded::BuyerTable::kMigrateSlotsPerCall,
                    "growth, incremental");
  flashsale::Growth(records, flashsale::embedded::BuyerTable::kMigrateAllAtOnce,
                    "growth, stop-the-world");
#endif
  return 0;
}
