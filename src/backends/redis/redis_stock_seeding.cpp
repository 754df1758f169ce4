// RedisStockStore's start-up seeding (Seed), apart from the request and admin
// paths in redis_stock_store.cpp: the buyer records are chunked, large ones
// staged in a hash of their own, and everything sent in bounded waves.

#include "backends/redis/redis_stock_store.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backends/redis/redis_keys.hpp"
#include "backends/redis/redis_stock_store_internal.hpp"
#include "core/stored_waiting_room.hpp"

namespace flashsale::redis {

using stock_store_internal::ErrorReply;
using stock_store_internal::OptionalMillis;
using stock_store_internal::OptionalSeconds;

Result<std::int64_t> RedisStockStore::Seed(const std::vector<Product>& products,
                                           const std::vector<SoldUnits>& sold) {
  // Size limits: every command must be answered within the connection's
  // timeout, counted from when it was queued, so the work is sent in waves of
  // at most kWaveBuyers buyer records, and no command carries more than
  // kChunkBuyers of them. A product with more buyers gets them written first
  // into a staging hash of its own (TTL 1 h, in case this process dies), which
  // the seed script then renames into place: the product appears with all its
  // buyers at once, or not at all.
  constexpr std::size_t kChunkBuyers = 2'000;
  constexpr std::size_t kWaveBuyers = 20'000;
  constexpr std::size_t kRemainingArg = 5 + 5;  // ARGV[6] of seed_product.lua, after 5 keys
  std::unordered_map<ProductId, std::vector<const SoldUnits*>> by_product;
  for (const SoldUnits& s : sold) by_product[s.product].push_back(&s);
  if (products.empty()) return std::int64_t{0};
  const std::string token = OrderIdGenerator().Next(0).str();  // unique per seeding run

  std::vector<std::vector<std::string>> staging;  // HSET / EXPIRE commands
  std::vector<std::size_t> staging_weight;        // buyers per command
  std::vector<std::vector<std::string>> seeds;    // seed_product.lua calls
  std::vector<std::size_t> seed_weight;
  for (const Product& p : products) {
    const std::vector<const SoldUnits*>* buyers = nullptr;
    if (auto it = by_product.find(p.id); it != by_product.end()) buyers = &it->second;
    const std::size_t n = buyers != nullptr ? buyers->size() : 0;
    const bool staged = n > kChunkBuyers;
    const std::string staging_key = keys::SeedStaging(p.id, token);
    std::int64_t units = 0;
    std::vector<std::string> kv{keys::Meta(p.id),
                                keys::Stock(p.id),
                                keys::SoldOut(p.id),
                                keys::Buyers(p.id),
                                staging_key,
                                std::to_string(p.price),
                                std::to_string(p.stock),
                                std::to_string(p.limit_per_user),
                                OptionalMillis(p.starts_at),
                                OptionalMillis(p.ends_at),
                                "",
                                staged ? "1" : "0",
                                std::to_string(p.version),
                                OptionalSeconds(p.payment_window_s),
                                OptionalSeconds(AdmitPerS(p)),
                                OptionalSeconds(PassTtlS(p))};
    for (std::size_t i = 0; i < n; i += kChunkBuyers) {
      std::vector<std::string> hset{"HSET", staging_key};
      const std::size_t end = std::min(n, i + kChunkBuyers);
      for (std::size_t j = i; j < end; ++j) {
        const SoldUnits& s = *(*buyers)[j];
        units += s.units;
        if (!staged) {
          kv.push_back(std::to_string(s.user));
          kv.push_back(std::to_string(s.units));
          kv.push_back(s.latest_order.str());
          continue;
        }
        hset.push_back(std::to_string(s.user));
        hset.push_back(std::to_string(s.units));
        hset.push_back(std::to_string(s.user) + ":o");
        hset.push_back(s.latest_order.str());
      }
      if (staged) {
        staging.push_back(std::move(hset));
        staging_weight.push_back(end - i);
        staging.push_back({"EXPIRE", staging_key, "3600"});
        staging_weight.push_back(0);
      }
    }
    kv[kRemainingArg] = std::to_string(std::max<std::int64_t>(0, p.stock - units));
    connection_.Send(
        {"ZADD", std::string(keys::kProductIndex), std::to_string(p.id), std::to_string(p.id)},
        [](Result<RedisValue>) {});
    seeds.push_back(std::move(kv));
    seed_weight.push_back(staged ? 1 : n + 1);
  }

  // Runs `calls` wave by wave; `run` sends one wave and returns its replies.
  auto in_waves = [](std::vector<std::vector<std::string>>& calls,
                     const std::vector<std::size_t>& weight, auto run) -> Result<std::int64_t> {
    std::int64_t created = 0;
    std::size_t begin = 0;
    while (begin < calls.size()) {
      std::size_t end = begin, load = 0;
      while (end < calls.size() && (end == begin || load + weight[end] <= kWaveBuyers)) {
        load += weight[end++];
      }
      std::vector<std::vector<std::string>> wave(std::make_move_iterator(calls.begin() + begin),
                                                 std::make_move_iterator(calls.begin() + end));
      for (const Result<RedisValue>& v : run(std::move(wave))) {
        if (!v.has_value()) return v.error();
        if (v->IsError()) return ErrorReply("seed", *v);
        if (v->type == RedisValue::Type::kInteger) created += v->integer;
      }
      begin = end;
    }
    return created;
  };
  Result<std::int64_t> staged = in_waves(staging, staging_weight, [this](auto wave) {
    return Gather(wave.size(), [&](std::size_t i, RedisConnection::Callback done) {
      connection_.Send(wave[i], std::move(done));
    });
  });
  if (!staged) return staged.error();
  return in_waves(seeds, seed_weight,
                  [this](auto wave) { return CallEvalAll(seed_, std::move(wave), 5); });
}

}  // namespace flashsale::redis
