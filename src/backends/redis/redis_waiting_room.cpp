#include "backends/redis/redis_waiting_room.hpp"

#include <charconv>
#include <random>
#include <utility>

#include "backends/redis/lua_scripts.hpp"
#include "backends/redis/redis_keys.hpp"
#include "backends/redis/redis_script.hpp"
#include "core/numbers.hpp"

namespace flashsale::redis {
namespace {

const LuaScript kJoin{QueueJoinLua(), QueueJoinLuaSha1()};
const LuaScript kAdvance{QueueAdvanceLua(), QueueAdvanceLuaSha1()};

// Both scripts' reply (see queue_frontier.lua's header), decoded.
struct QueueReply {
  std::string code;
  std::int64_t position = 0;
  QueueState state;
};

std::optional<std::int64_t> IntOf(const RedisValue& v) {
  if (v.type == RedisValue::Type::kInteger) return v.integer;
  if (v.type == RedisValue::Type::kString) return ParseInt64(v.str);
  return std::nullopt;
}

// Whole text as a number (from_chars: exact, and the C locale whatever the
// process' locale is): "%.17g" of a double reads back as that double.
template <typename T>
std::optional<T> Whole(std::string_view text) {
  T out{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return out;
}

Result<QueueReply> Decode(std::string_view script, const Result<RedisValue>& v) {
  // The connection's failures (down, backoff, timeout) and Redis' own error
  // replies (LOADING, BUSY, OOM ...) all mean "try again later".
  if (!v.has_value()) {
    return Status::Unavailable("redis " + std::string(script) + ": " + v.error().message());
  }
  if (v->IsError()) return Status::Unavailable("redis " + std::string(script) + ": " + v->str);
  const auto malformed = [&] {
    return Status::Internal("redis " + std::string(script) + ": malformed reply");
  };
  if (v->type != RedisValue::Type::kArray || v->elements.size() != 11) return malformed();
  const std::vector<RedisValue>& e = v->elements;
  QueueReply out;
  out.code = e[0].str;
  const std::optional<std::int64_t> position = IntOf(e[1]);
  const std::optional<std::int64_t> joined = IntOf(e[2]);
  const std::optional<double> admitted = Whole<double>(e[3].str);
  const std::optional<std::int64_t> as_of = IntOf(e[4]);
  const std::optional<std::int64_t> sold_out = IntOf(e[6]);
  const std::optional<std::int64_t> newly = IntOf(e[7]);
  const std::optional<std::int64_t> rate = IntOf(e[9]);
  const std::optional<std::int64_t> ttl = IntOf(e[10]);
  if (!position || !joined || !admitted || !as_of || !sold_out || !newly || !rate || !ttl) {
    return malformed();
  }
  QueueState& s = out.state;
  if (!e[5].str.empty()) {
    const std::optional<std::uint64_t> generation = Whole<std::uint64_t>(e[5].str);
    if (!generation) return malformed();
    s.generation = *generation;
  }
  if (!e[8].str.empty()) {
    const std::optional<std::int64_t> starts_at = ParseInt64(e[8].str);
    if (!starts_at) return malformed();
    s.starts_at = *starts_at;
  }
  out.position = *position;
  s.room = WaitingRoom{*rate, *ttl};
  s.joined = *joined;
  s.admitted = *admitted;
  s.as_of = *as_of;
  s.sold_out = *sold_out == 1;
  s.newly_admitted = *newly;
  return out;
}

Result<QueueReply> Run(RedisCommander& redis, const LuaScript& script, std::string_view name,
                       std::size_t num_keys, std::vector<std::string> keys_and_args) {
  return Decode(name, AwaitReply([&](RedisCommander::Callback done) {
                  Eval(redis, script, num_keys, std::move(keys_and_args), std::move(done));
                }));
}

// The generation the first join gives a queue: random, so that a ticket of a
// queue that was deleted and formed again (a new generation) is told apart.
std::string RandomGeneration() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng());
}

}  // namespace

Result<WaitingRoomStore::Joined> RedisWaitingRoom::Join(ProductId product, UserId user,
                                                        std::string_view address,
                                                        std::int64_t max_places, UnixMillis now) {
  Result<QueueReply> r =
      Run(redis_, kJoin, "queue_join.lua", 6,
          {keys::Meta(product), keys::Stock(product), keys::SoldOut(product), keys::Queue(product),
           keys::QueueUsers(product), keys::QueueAddresses(product), std::to_string(now),
           std::to_string(user), std::string(address),
           std::to_string(std::max<std::int64_t>(max_places, 0)), RandomGeneration()});
  if (!r) return r.error();
  Joined out;
  if (r->code == "JOINED") {
    out.outcome = JoinOutcome::kJoined;
  } else if (r->code == "ALREADY_JOINED") {
    out.outcome = JoinOutcome::kAlreadyJoined;
  } else if (r->code == "ADDRESS_FULL") {
    out.outcome = JoinOutcome::kAddressFull;
  } else if (r->code == "NO_WAITING_ROOM") {
    out.outcome = JoinOutcome::kNoWaitingRoom;
    return out;
  } else if (r->code == "UNKNOWN_PRODUCT") {
    out.outcome = JoinOutcome::kUnknownProduct;
    return out;
  } else {
    return Status::Internal("redis queue_join.lua: unknown code " + r->code);
  }
  out.position = r->position;
  out.state = std::move(r->state);
  return out;
}

Result<std::optional<QueueState>> RedisWaitingRoom::Advance(ProductId product, UnixMillis now) {
  Result<QueueReply> r = Run(redis_, kAdvance, "queue_advance.lua", 4,
                             {keys::Meta(product), keys::Stock(product), keys::SoldOut(product),
                              keys::Queue(product), std::to_string(now)});
  if (!r) return r.error();
  if (r->code == "UNKNOWN_PRODUCT" || r->code == "NO_WAITING_ROOM") {
    return std::optional<QueueState>();
  }
  if (r->code != "OK") return Status::Internal("redis queue_advance.lua: unknown code " + r->code);
  return std::optional<QueueState>(std::move(r->state));
}

}  // namespace flashsale::redis
