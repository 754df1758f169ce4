#include "backends/redis/redis_idempotency_store.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <vector>

#include "backends/redis/lua_scripts.hpp"
#include "backends/redis/redis_keys.hpp"
#include "backends/redis/redis_script.hpp"
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

IdempotencyStore::ClaimResult Unavailable(Status why) {
  IdempotencyStore::ClaimResult r;
  r.state = IdempotencyStore::ClaimState::kUnavailable;
  r.unavailable = std::move(why);
  return r;
}

// "F|<fp>|<OUTCOME>|<s>|<order id>" split at '|' -> the stored first answer.
// Outcomes are stored by name; an ordinal (written before names were) is read too.
std::optional<PurchaseReply> FinalAnswer(const std::vector<std::string_view>& parts) {
  if (parts.size() != 7) return std::nullopt;
  PurchaseReply reply;
  if (std::optional<PurchaseOutcome> named = PurchaseOutcomeNamed(parts[4])) {
    reply.outcome = *named;
  } else if (std::optional<std::int64_t> ordinal = ParseInt64(parts[4]);
             ordinal && *ordinal >= 0 &&
             *ordinal <= static_cast<std::int64_t>(PurchaseOutcome::kUnknownProduct)) {
    reply.outcome = static_cast<PurchaseOutcome>(*ordinal);
  } else {
    return std::nullopt;
  }
  if (reply.outcome == PurchaseOutcome::kIdempotencyKeyMismatch) return std::nullopt;
  if (parts[5] == "UNKNOWN") reply.status = Status::Unknown("hand-off outcome unknown");
  if (!parts[6].empty()) {
    std::optional<OrderId> id = OrderId::Parse(parts[6]);
    if (!id) return std::nullopt;
    reply.order_id = *id;
  }
  return reply;
}

const LuaScript kClaim{ClaimIdempotencyKeyLua(), ClaimIdempotencyKeyLuaSha1()};
const LuaScript kTakeOver{TakeOverIdempotencyKeyLua(), TakeOverIdempotencyKeyLuaSha1()};
const LuaScript kFinish{FinishIdempotencyKeyLua(), FinishIdempotencyKeyLuaSha1()};

}  // namespace

RedisIdempotencyStore::RedisIdempotencyStore(RedisCommander& redis, boost::asio::io_context& io,
                                             Options options)
    : redis_(redis), io_(io), options_(options) {}

void RedisIdempotencyStore::Claim(std::string_view key, const PurchaseFingerprint& fp,
                                  const OrderId& proposed_order, ClaimCallback done) {
  TryClaim(Attempt{std::string(key), fp, proposed_order, std::move(done),
                   NowMillis() + options_.pending_ttl_ms + 1000});
}

void RedisIdempotencyStore::TryClaim(Attempt a) {
  std::vector<std::string> argv{
      KeyOf(a.key), keys::IdempotencyAcceptedLetGo(),
      "P|" + Fingerprint(a.fp) + "|" + a.proposed_order.str() + "|" + std::to_string(NowMillis()),
      std::to_string(options_.ttl_ms)};
  Eval(redis_, kClaim, 2, std::move(argv), [this, a = std::move(a)](Result<RedisValue> r) mutable {
    if (!r.has_value()) return a.done(Unavailable(r.error()));
    if (r->IsError()) return a.done(Unavailable(Status::Unavailable("redis: " + r->str)));
    if (r->type == RedisValue::Type::kInteger) {
      if (r->integer == 1 && options_.find_order) return ClaimFromOrderRecord(std::move(a));
      ClaimResult first;
      first.state = ClaimState::kFirst;
      first.order_id = a.proposed_order;
      return a.done(first);
    }
    const std::vector<std::string_view> parts = Split(r->str);
    if (parts.size() < 4 ||
        std::string(parts[1]) + "|" + std::string(parts[2]) + "|" + std::string(parts[3]) !=
            Fingerprint(a.fp)) {
      return a.done(ClaimResult{ClaimState::kMismatch, {}, {}, {}});
    }
    if (parts[0] == "F") {
      std::optional<PurchaseReply> reply = FinalAnswer(parts);
      if (!reply) return a.done(Unavailable(Status::Internal("idempotency record is malformed")));
      ClaimResult replay;
      replay.state = ClaimState::kReplay;
      replay.reply = std::move(*reply);
      return a.done(replay);
    }
    // Pending. "P|<fp>" alone was written before pending records carried an
    // order id: it expires after pending_ttl_ms as it always did.
    std::optional<std::int64_t> claimed_at =
        parts.size() == 6 ? ParseInt64(parts[5]) : std::optional<std::int64_t>();
    if (claimed_at && NowMillis() >= *claimed_at + options_.pending_ttl_ms) {
      // The owner did not finish in time (its Finish was lost, or it crashed).
      OrderId stale_order;
      if (std::optional<OrderId> id = OrderId::Parse(parts[4])) stale_order = *id;
      std::string stale = r->str;
      return TakeOver(std::move(a), std::move(stale), std::move(stale_order));
    }
    PollLater(std::move(a));
  });
}

void RedisIdempotencyStore::PollLater(Attempt a) {
  // The first request is still in flight: look again shortly.
  if (NowMillis() > a.give_up_at_ms) {
    return a.done(
        Unavailable(Status::Unavailable("the first request with this key is still in flight")));
  }
  auto timer =
      std::make_shared<boost::asio::steady_timer>(io_, std::chrono::milliseconds(options_.poll_ms));
  timer->async_wait([this, timer, a = std::move(a)](const boost::system::error_code&) mutable {
    TryClaim(std::move(a));
  });
}

void RedisIdempotencyStore::TakeOver(Attempt a, std::string stale, OrderId stale_order) {
  if (stale_order.empty()) stale_order = a.proposed_order;
  // Was the stale owner's reservation released (a refused hand-off)? Then its
  // id is spent and the retry starts afresh with its own.
  // The command is built before the callback takes the attempt (argument
  // evaluation order is unspecified).
  std::vector<std::string> get_marker{"GET", keys::Order(stale_order)};
  redis_.Send(std::move(get_marker), [this, a = std::move(a), stale = std::move(stale),
                                      stale_order = std::move(stale_order)](
                                         Result<RedisValue> marker) mutable {
    if (!marker.has_value()) return a.done(Unavailable(marker.error()));
    if (marker->IsError()) {
      return a.done(Unavailable(Status::Unavailable("redis: " + marker->str)));
    }
    const bool released =
        marker->type != RedisValue::Type::kNil && !marker->str.empty() && marker->str[0] == 'X';
    OrderId order = released ? a.proposed_order : stale_order;
    std::string mine =
        "P|" + Fingerprint(a.fp) + "|" + order.str() + "|" + std::to_string(NowMillis());
    std::vector<std::string> swap{KeyOf(a.key), std::move(stale), std::move(mine)};
    Eval(redis_, kTakeOver, 1, std::move(swap),
         [this, a = std::move(a), order = std::move(order)](Result<RedisValue> swapped) mutable {
           if (!swapped.has_value()) return a.done(Unavailable(swapped.error()));
           if (swapped->IsError()) {
             return a.done(Unavailable(Status::Unavailable("redis: " + swapped->str)));
           }
           if (swapped->integer != 1) return TryClaim(std::move(a));  // lost the race
           spdlog::warn(
               "Idempotency-Key {}: the first request did not finish; "
               "retrying it with order {}",
               a.key, order.view());
           ClaimResult first;
           first.state = ClaimState::kFirst;
           first.order_id = std::move(order);
           a.done(first);
         });
  });
}

void RedisIdempotencyStore::Finish(std::string_view key, const PurchaseReply& reply,
                                   bool remember) {
  if (!remember) {
    // Lost? Then the pending record stays; a retry after pending_ttl_ms sees
    // the released order:<id> and starts afresh.
    redis_.Send({"DEL", KeyOf(key)}, [](Result<RedisValue>) {});
    return;
  }
  // The pending value already holds the fingerprint: one script turns
  // "P|<fp>|<order>|<at>" into "F|<fp>|<answer>" and keeps the cap
  // (finish_idempotency_key.lua). Lost? See TakeOver.
  std::string value = "|" + std::string(StatusName(reply.outcome)) + "|" +
                      (reply.status.IsUnknown() ? "UNKNOWN" : "OK") + "|" +
                      std::string(reply.order_id.view());
  Eval(redis_, kFinish, 4,
       {KeyOf(key), keys::IdempotencyRefusals(), keys::IdempotencyAccepted(),
        keys::IdempotencyAcceptedLetGo(), std::move(value), std::to_string(options_.ttl_ms),
        reply.outcome == PurchaseOutcome::kAccepted ? "1" : "0", std::to_string(NowMillis()),
        std::to_string(options_.max_keys), std::string(key), std::string(keys::kIdempotencyPrefix)},
       [](Result<RedisValue>) {});
}

void RedisIdempotencyStore::ClaimFromOrderRecord(Attempt a) {
  // We hold the pending record: racing retries poll it meanwhile.
  std::string key = a.key;
  options_.find_order(
      std::move(key), [this, a = std::move(a)](Result<std::optional<Order>> found) mutable {
        if (found && found->has_value() && (*found)->created_at + options_.ttl_ms > NowMillis()) {
          // Answered from the order each time: nothing is stored again (the cap
          // holds), and the pending record goes so that pollers ask too.
          const Order& o = **found;
          redis_.Send({"DEL", KeyOf(a.key)}, [](Result<RedisValue>) {});
          ClaimResult answer;
          if (PurchaseFingerprint{o.user, o.product, o.quantity} == a.fp) {
            answer.state = ClaimState::kReplay;
            answer.reply.outcome = o.status == OrderStatus::kFailed ? PurchaseOutcome::kSoldOut
                                                                    : PurchaseOutcome::kAccepted;
            answer.reply.order_id = o.id;
          } else {
            answer.state = ClaimState::kMismatch;
          }
          return a.done(answer);
        }
        if (!found) {
          redis_.Send({"DEL", KeyOf(a.key)}, [](Result<RedisValue>) {});
          return a.done(Unavailable(found.error()));
        }
        ClaimResult first;
        first.state = ClaimState::kFirst;
        first.order_id = a.proposed_order;
        a.done(first);
      });
}

}  // namespace flashsale::redis
