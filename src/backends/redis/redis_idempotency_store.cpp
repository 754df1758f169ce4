#include "backends/redis/redis_idempotency_store.hpp"

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <vector>

#include "backends/redis/redis_keys.hpp"
#include "core/numbers.hpp"

namespace flashsale::redis {
namespace {

std::string KeyOf(std::string_view key) { return keys::Idempotency(key); }

std::string Fingerprint(const PurchaseFingerprint& fp) {
  return std::to_string(fp.user) + "|" + std::to_string(fp.product) + "|" +
         std::to_string(fp.amount);
}

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const std::size_t bar = s.find('|');
    out.push_back(s.substr(0, bar));
    if (bar == std::string_view::npos) return out;
    s = s.substr(bar + 1);
  }
}

IdempotencyStore::ClaimResult Unavailable(const Status& why) {
  // Not a final answer: the caller answers 503 and a later retry starts afresh.
  IdempotencyStore::ClaimResult r;
  r.state = IdempotencyStore::ClaimState::kReplay;
  r.reply.status = why;
  return r;
}

}  // namespace

RedisIdempotencyStore::RedisIdempotencyStore(RedisCommander& redis, boost::asio::io_context& io,
                                             Options options)
    : redis_(redis), io_(io), options_(options) {}

void RedisIdempotencyStore::Claim(std::string_view key, const PurchaseFingerprint& fp,
                                  ClaimCallback done) {
  TryClaim(std::string(key), fp, std::move(done), NowMillis() + options_.pending_ttl_ms + 1000);
}

void RedisIdempotencyStore::TryClaim(std::string key, PurchaseFingerprint fp, ClaimCallback done,
                                     std::int64_t give_up_at_ms) {
  std::vector<std::string> argv{"SET",
                                KeyOf(key),
                                "P|" + Fingerprint(fp),
                                "NX",
                                "GET",
                                "PX",
                                std::to_string(options_.pending_ttl_ms)};
  redis_.Send(argv, [this, key = std::move(key), fp, done = std::move(done),
                     give_up_at_ms](Result<RedisValue> r) mutable {
    if (!r.has_value()) return done(Unavailable(r.error()));
    if (r->IsError()) return done(Unavailable(Status::Unavailable("redis: " + r->str)));
    if (r->type == RedisValue::Type::kNil) return done(ClaimResult{ClaimState::kFirst, {}});
    const std::vector<std::string_view> parts = Split(r->str);
    const std::string mine = Fingerprint(fp);
    if (parts.size() < 4 ||
        std::string(parts[1]) + "|" + std::string(parts[2]) + "|" + std::string(parts[3]) != mine) {
      return done(ClaimResult{ClaimState::kMismatch, {}});
    }
    if (parts[0] == "F" && parts.size() == 7) {
      ClaimResult replay{ClaimState::kReplay, {}};
      std::optional<std::int64_t> outcome = ParseInt64(parts[4]);
      if (!outcome || *outcome < 0 ||
          *outcome > static_cast<std::int64_t>(PurchaseOutcome::kUnknownProduct)) {
        return done(Unavailable(Status::Internal("idempotency record is malformed")));
      }
      replay.reply.outcome = static_cast<PurchaseOutcome>(*outcome);
      if (parts[5] == "UNKNOWN") {
        replay.reply.status = Status::Unknown("hand-off outcome unknown");
      }
      if (!parts[6].empty()) {
        if (std::optional<OrderId> id = OrderId::Parse(parts[6])) replay.reply.order_id = *id;
      }
      return done(replay);
    }
    // The first request is still in flight: look again shortly.
    if (NowMillis() > give_up_at_ms) {
      return done(
          Unavailable(Status::Unavailable("the first request with this key is still "
                                          "in flight")));
    }
    auto timer = std::make_shared<boost::asio::steady_timer>(
        io_, std::chrono::milliseconds(options_.poll_ms));
    timer->async_wait([this, timer, key = std::move(key), fp, done = std::move(done),
                       give_up_at_ms](const boost::system::error_code&) mutable {
      TryClaim(std::move(key), fp, std::move(done), give_up_at_ms);
    });
  });
}

void RedisIdempotencyStore::Finish(std::string_view key, const PurchaseReply& reply,
                                   bool remember) {
  if (!remember) {
    redis_.Send({"DEL", KeyOf(key)}, [](Result<RedisValue>) {});
    return;
  }
  // The pending value already holds the fingerprint: one small script turns
  // "P|<fp>" into "F|<fp>|<answer>" (keys are optional and rare: EVAL is fine).
  std::string value = "|" + std::to_string(static_cast<int>(reply.outcome)) + "|" +
                      (reply.status.IsUnknown() ? "UNKNOWN" : "OK") + "|" +
                      std::string(reply.order_id.view());
  redis_.Send({"EVAL",
               "local v = redis.call('GET', KEYS[1]) "
               "if not v or string.sub(v, 1, 2) ~= 'P|' then return 0 end "
               "redis.call('SET', KEYS[1], 'F' .. string.sub(v, 2) .. ARGV[1], 'PX', ARGV[2]) "
               "return 1",
               "1", KeyOf(key), std::move(value), std::to_string(options_.ttl_ms)},
              [](Result<RedisValue>) {});
}

}  // namespace flashsale::redis
