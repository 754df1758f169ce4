#pragma once
// Calling this folder's Lua scripts by EVALSHA, and waiting for one reply.
// Free functions over a RedisCommander; thread-safe as the commander is.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/redis/redis_connection.hpp"

namespace flashsale::redis {

// One of the compiled-in scripts (lua_scripts.hpp): its source and SHA1.
struct LuaScript {
  std::string_view source;
  std::string_view sha1;
};

// Runs `script` by EVALSHA: only its SHA1 travels, not its source (the
// contract headers make the sources kilobytes). On NOSCRIPT (a fresh or
// restarted server, SCRIPT FLUSH) the script did not run: the same call goes
// once more as EVAL, which also caches the script for the next EVALSHA.
// `redis` and `script` must outlive the call (the commander runs `done`, on
// its I/O thread, exactly once).
void Eval(RedisCommander& redis, const LuaScript& script, std::size_t num_keys,
          std::vector<std::string> keys_and_args, RedisCommander::Callback done);

// Issues one command through `send` (which must call the callback it is given
// exactly once) and blocks until its reply.
// REQUIRES: not called on the I/O thread that runs the callback (nobody would
// read the reply), nor on an event loop of the request path.
Result<RedisValue> AwaitReply(const std::function<void(RedisCommander::Callback)>& send);

}  // namespace flashsale::redis
