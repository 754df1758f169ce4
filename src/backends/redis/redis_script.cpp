#include "backends/redis/redis_script.hpp"

#include <future>
#include <memory>
#include <utility>

namespace flashsale::redis {

void Eval(RedisCommander& redis, const LuaScript& script, std::size_t num_keys,
          std::vector<std::string> keys_and_args, RedisCommander::Callback done) {
  std::vector<std::string> argv;
  argv.reserve(keys_and_args.size() + 3);
  argv.emplace_back("EVALSHA");
  argv.emplace_back(script.sha1);
  argv.push_back(std::to_string(num_keys));
  for (std::string& s : keys_and_args) argv.push_back(std::move(s));
  auto call = std::make_shared<std::vector<std::string>>(std::move(argv));
  redis.Send(*call, [&redis, &script, call, done = std::move(done)](Result<RedisValue> r) mutable {
    if (!r.has_value() || !r->IsError() || !r->str.starts_with("NOSCRIPT")) {
      return done(std::move(r));
    }
    (*call)[0] = "EVAL";
    (*call)[1] = std::string(script.source);
    redis.Send(*call, std::move(done));
  });
}

Result<RedisValue> AwaitReply(const std::function<void(RedisCommander::Callback)>& send) {
  auto promise = std::make_shared<std::promise<Result<RedisValue>>>();
  std::future<Result<RedisValue>> future = promise->get_future();
  send([promise](Result<RedisValue> r) { promise->set_value(std::move(r)); });
  return future.get();
}

}  // namespace flashsale::redis
