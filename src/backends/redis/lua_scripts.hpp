#pragma once
// The Lua sources of src/backends/redis/*.lua, compiled into the binary at build
// time (CMake file(READ) -> generated/redis_lua_scripts.cpp), never read from
// disk at run time. Plain constants; thread-safe. Each `<Script>Sha1()` is the
// lowercase hex SHA1 of its source (computed by CMake), the name EVALSHA takes.

#include <string_view>

namespace flashsale::redis {

std::string_view ReserveStockLua();    // reserve_stock.lua
std::string_view ReleaseStockLua();    // release_stock.lua
std::string_view PutProductLua();      // put_product.lua
std::string_view RestockProductLua();  // restock_product.lua
std::string_view GetProductLua();      // get_product.lua
std::string_view SeedProductLua();     // seed_product.lua
// RedisIdempotencyStore's scripts.
std::string_view ClaimIdempotencyKeyLua();     // claim_idempotency_key.lua
std::string_view TakeOverIdempotencyKeyLua();  // take_over_idempotency_key.lua
std::string_view FinishIdempotencyKeyLua();    // finish_idempotency_key.lua
// RedisWaitingRoom's scripts, each behind queue_frontier.lua (see its header).
std::string_view QueueJoinLua();     // queue_frontier.lua + queue_join.lua
std::string_view QueueAdvanceLua();  // queue_frontier.lua + queue_advance.lua

std::string_view ReserveStockLuaSha1();
std::string_view ReleaseStockLuaSha1();
std::string_view PutProductLuaSha1();
std::string_view RestockProductLuaSha1();
std::string_view GetProductLuaSha1();
std::string_view SeedProductLuaSha1();
std::string_view ClaimIdempotencyKeyLuaSha1();
std::string_view TakeOverIdempotencyKeyLuaSha1();
std::string_view FinishIdempotencyKeyLuaSha1();
std::string_view QueueJoinLuaSha1();
std::string_view QueueAdvanceLuaSha1();

}  // namespace flashsale::redis
