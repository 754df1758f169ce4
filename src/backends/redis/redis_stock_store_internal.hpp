#pragma once
// Private to redis_stock_store.cpp and redis_stock_seeding.cpp (one class,
// RedisStockStore, split over two files): the small reply and argument helpers
// both halves use. Pure functions, thread-safe.

#include <optional>
#include <string>
#include <string_view>

#include "backends/redis/redis_connection.hpp"
#include "core/clock.hpp"
#include "core/status.hpp"

namespace flashsale::redis::stock_store_internal {

// A Redis error reply to command or script `what`, as an internal error.
inline Status ErrorReply(std::string_view what, const RedisValue& v) {
  return Status::Internal("redis " + std::string(what) + ": " + v.str);
}

// A time argument of the Lua scripts: its milliseconds, or "" for none.
inline std::string OptionalMillis(const std::optional<UnixMillis>& t) {
  return t ? std::to_string(*t) : std::string();
}

// A payment window argument of the Lua scripts: its seconds, or "" for none.
inline std::string OptionalSeconds(const std::optional<std::int64_t>& s) {
  return s ? std::to_string(*s) : std::string();
}

}  // namespace flashsale::redis::stock_store_internal
