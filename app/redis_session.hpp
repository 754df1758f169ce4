#pragma once
// RedisSession: a RedisStockStore over one connection on a private I/O thread,
// for the subcommands (seed, audit, and consume's closer, whose releases are
// pipelined on it). The stock scripts are loaded on connect. The thread is
// stopped before the connection goes (RedisConnection's contract). Not for the
// server's hot path (that uses DistributedStack's pool).

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <thread>

#include "backends/redis/redis_connection.hpp"
#include "backends/redis/redis_stock_store.hpp"

namespace flashsale::app {

class RedisSession {
 public:
  // Invalid for a malformed URL; the connection itself is made on first use.
  static Result<std::unique_ptr<RedisSession>> Open(const std::string& url);
  ~RedisSession();
  RedisSession(const RedisSession&) = delete;
  RedisSession& operator=(const RedisSession&) = delete;

  redis::RedisStockStore& stock() { return *stock_; }
  redis::RedisCommander& connection() { return *connection_; }

 private:
  RedisSession() = default;

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::unique_ptr<redis::RedisConnection> connection_;
  std::unique_ptr<redis::RedisStockStore> stock_;
};

inline Result<std::unique_ptr<RedisSession>> RedisSession::Open(const std::string& url) {
  Result<redis::RedisAddress> address = redis::ParseRedisUrl(url);
  if (!address) return address.error();
  std::unique_ptr<RedisSession> s(new RedisSession());
  redis::RedisConnection::Options options = redis::OptionsFor(*address);
  for (auto& command : redis::RedisStockStore::ScriptLoadCommands()) {
    options.on_connect.push_back(std::move(command));
  }
  s->connection_ = std::make_unique<redis::RedisConnection>(s->io_, options);
  s->stock_ = std::make_unique<redis::RedisStockStore>(*s->connection_);
  s->thread_ = std::thread([session = s.get()] { session->io_.run(); });
  return s;
}

inline RedisSession::~RedisSession() {
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
  stock_.reset();
  connection_.reset();
}

}  // namespace flashsale::app
