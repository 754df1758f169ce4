#include "stranded_sweep.hpp"

#include <spdlog/spdlog.h>

#include <future>
#include <unordered_map>
#include <vector>

#include "consumer/order_closer.hpp"

namespace flashsale::app {
namespace {

// Raises each field to its new value, never lowers it (one atomic script).
constexpr const char* kPublishMax = R"(
for i = 1, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1)";

}  // namespace

Result<redis::RedisValue> SafeTimeBoard::Call(const std::vector<std::string>& argv) {
  auto promise = std::make_shared<std::promise<Result<redis::RedisValue>>>();
  std::future<Result<redis::RedisValue>> future = promise->get_future();
  redis_.Send(argv, [promise](Result<redis::RedisValue> r) { promise->set_value(std::move(r)); });
  Result<redis::RedisValue> v = future.get();
  if (v && v->IsError()) return Status::Unavailable("redis: " + key_ + ": " + v->str);
  return v;
}

Status SafeTimeBoard::Publish(const std::map<std::int32_t, UnixMillis>& safe_times) {
  if (safe_times.empty()) return Status::Ok();
  std::vector<std::string> argv{"EVAL", kPublishMax, "1", key_};
  for (const auto& [partition, safe] : safe_times) {
    argv.push_back(std::to_string(partition));
    argv.push_back(std::to_string(safe));
  }
  Result<redis::RedisValue> v = Call(argv);
  return v ? Status::Ok() : v.error();
}

Result<std::optional<UnixMillis>> SafeTimeBoard::Min(int partitions) {
  Result<redis::RedisValue> v = Call({"HGETALL", key_});
  if (!v) return v.error();
  std::map<std::int64_t, std::int64_t> by_partition;
  for (std::size_t i = 0; i + 1 < v->elements.size(); i += 2) {
    try {
      by_partition[std::stoll(v->elements[i].str)] = std::stoll(v->elements[i + 1].str);
    } catch (const std::exception&) {
      return Status::Unavailable("redis: " + key_ + ": malformed entry");
    }
  }
  std::optional<UnixMillis> low;
  for (int p = 0; p < partitions; ++p) {
    const auto it = by_partition.find(p);
    if (it == by_partition.end()) return std::optional<UnixMillis>();
    low = low ? std::min(*low, it->second) : it->second;
  }
  return low;
}

StrandedSweep::StrandedSweep(RecordDatabase& db, redis::RedisStockStore& stock,
                             SafeTimeBoard& board, StatusBroadcast& broadcast,
                             FunnelMetrics& metrics, std::function<Result<int>()> partitions,
                             Options options)
    : db_(db),
      stock_(stock),
      board_(board),
      broadcast_(broadcast),
      metrics_(metrics),
      partitions_(std::move(partitions)),
      options_(options) {}

std::int64_t StrandedSweep::operator()(UnixMillis) {
  const std::int64_t now = SteadyMillis();
  if (now < next_sweep_ms_) return 0;
  next_sweep_ms_ = now + options_.interval_ms;
  return Sweep();
}

std::int64_t StrandedSweep::Sweep() {
  // Partitions can be added to a topic: look again every 30 s.
  if (partition_count_ == 0 || SteadyMillis() - partitions_checked_ms_ > 30'000) {
    Result<int> count = partitions_();
    if (!count) {
      spdlog::warn("stranded reservations: {}", count.error().ToString());
      if (partition_count_ == 0) return 0;
    } else {
      partition_count_ = *count;
      partitions_checked_ms_ = SteadyMillis();
    }
  }
  Result<std::optional<UnixMillis>> safe = board_.Min(partition_count_);
  if (!safe) {
    spdlog::warn("stranded reservations: {}", safe.error().ToString());
    return 0;
  }
  if (!*safe) {
    if (!warned_no_safe_time_) {
      spdlog::info(
          "stranded reservations: not every partition of {} has a safe time yet (a consumer "
          "has not read it to its end): nothing is certain, nothing returned",
          partition_count_);
      warned_no_safe_time_ = true;
    }
    return 0;
  }
  warned_no_safe_time_ = false;
  Result<std::vector<ProductId>> products = stock_.ProductIds();
  if (!products) {
    spdlog::warn("stranded reservations: {}", products.error().ToString());
    return 0;
  }
  std::int64_t returned = 0;
  std::int64_t units = 0;
  std::int64_t landed_total = 0;
  std::unordered_map<ProductId, std::int64_t> epochs;
  for (const ProductId product : *products) {
    // A few rounds at most: each one either forgets or returns what it got.
    for (int round = 0; round < 16; ++round) {
      Result<std::vector<Order>> stale = stock_.StaleInFlight(product, **safe, options_.batch);
      if (!stale) {
        spdlog::warn("stranded reservations of product {}: {}", product, stale.error().ToString());
        break;
      }
      if (stale->empty()) break;
      std::vector<Order> landed;
      std::vector<Order> stranded;
      bool failed = false;
      for (Order& o : *stale) {
        Result<std::optional<Order>> stored = db_.FindOrder(o.id);
        if (!stored) {
          spdlog::warn("stranded reservations: order {}: {}", o.id.view(),
                       stored.error().ToString());
          failed = true;
          break;
        }
        (stored->has_value() ? landed : stranded).push_back(std::move(o));
      }
      if (!landed.empty()) {
        if (Status st = stock_.ForgetLanded(landed); !st.ok()) {
          spdlog::warn("stranded reservations: forgetting landed orders: {}", st.ToString());
          failed = true;
        } else {
          landed_total += static_cast<std::int64_t>(landed.size());
        }
      }
      std::int64_t given_now = 0;
      if (!stranded.empty()) {
        const std::vector<bool> given = OrderCloser::GiveBack(stock_, stranded, epochs);
        for (std::size_t i = 0; i < stranded.size(); ++i) {
          if (!given[i]) continue;
          ++given_now;
          units += stranded[i].quantity;
          metrics_.orders_closed_stranded.Inc();
          spdlog::debug(
              "stranded reservation returned: order {} product {} user {} quantity {} (created "
              "{} ms before the safe time; never reached the database)",
              stranded[i].id.view(), product, stranded[i].user, stranded[i].quantity,
              **safe - stranded[i].created_at);
        }
      }
      returned += given_now;
      if (failed || (landed.empty() && given_now == 0) || stale->size() < options_.batch) break;
    }
  }
  for (const auto& [product, epoch] : epochs) {
    broadcast_.Publish(product, ProductStatusChange::kRestocked, epoch);
  }
  if (returned > 0 || landed_total > 0) {
    spdlog::info(
        "stranded reservations: {} returned ({} units), {} landed orders left the in-flight "
        "index",
        returned, units, landed_total);
  }
  return returned;
}

}  // namespace flashsale::app
