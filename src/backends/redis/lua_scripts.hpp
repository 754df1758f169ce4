#pragma once
// The Lua sources of src/backends/redis/*.lua, compiled into the binary at build
// time (CMake file(READ) -> generated/redis_lua_scripts.cpp), never read from
// disk at run time. Plain constants; thread-safe.

#include <string_view>

namespace flashsale::redis {

std::string_view ReserveStockLua();    // reserve_stock.lua
std::string_view ReleaseStockLua();    // release_stock.lua
std::string_view PutProductLua();      // put_product.lua
std::string_view RestockProductLua();  // restock_product.lua
std::string_view GetProductLua();      // get_product.lua
std::string_view SeedProductLua();     // seed_product.lua

}  // namespace flashsale::redis
