#pragma once
// RedisStockStore: the StockStore of distributed mode. Same semantics as
// embedded::MemoryStockStore; the atomic work is done by the Lua scripts of
// this folder (EVALSHA; on NOSCRIPT the script is loaded and the call retried
// once). Products live under the keys of redis_keys.hpp.
//
// Thread safety: all methods are safe for concurrent use. Reserve() and
// Release() never wait: they answer on the connection's io thread (their
// callbacks must not block; with Options::per_thread, that is the calling I/O
// thread); the other methods block the caller until Redis answers or the
// request times out.
// REQUIRES: the blocking methods are never called on the connection's io thread
// (the reply could only be read by the thread that waits for it), nor on a
// request path (they would stall an event loop).
//
// Product index: the sorted set keys::kProductIndex (score and member =
// product id), written after each Put()/Restock()/Seed() by a separate,
// idempotent ZADD (outside the scripts, so that every script touches one
// product's hash slot only and works on a Redis Cluster), for List() and
// ProductCount().
//
// Admin changes (Put, Restock) are ONE decision that Redis and the database
// agree on. The decision is made in Redis, atomically, by put_product.lua or
// restock_product.lua: it checks (CONFLICT, NOT_FOUND), applies the change and
// numbers it with the product's `version` (HINCRBY: strictly increasing per
// product; seeding from the database starts it at the row's version). The
// product as decided, with that version, is then handed to PersistProduct,
// and the database keeps a row only if its version is not older (UPDATE ...
// WHERE version <= new). Why that is correct:
//  - Races: every change is serialised by Redis, and the row persisted for
//    version v is exactly Redis' product after change v (Restock persists the
//    script's reply, never a row it read before). Racing persists may arrive
//    in any order; the database keeps the highest version, which is the last
//    decision, which is what Redis holds. A refused change (CONFLICT) is never
//    persisted.
//  - Crash or database error between the two writes: Redis has version v, the
//    database an older row. The caller gets an error saying so (never
//    "nothing happened"); the row catches up with the next change of the
//    product (it carries the whole product at a newer version) or with
//    `flashsale audit --repair`, which writes Redis' product rows the database
//    lacks; `flashsale audit` reports rows that differ. Until then the
//    database's stock guard works on the older stock.
//  - Redis restarted empty: seeding copies the database rows with their
//    versions, so the next decision is numbered above every persisted one.
// The embedded MemoryStockStore holds the product's lock across persist and
// apply, so its changes are one decision already; it numbers them the same way.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "backends/redis/redis_connection.hpp"
#include "core/stock_store.hpp"

namespace flashsale::redis {

class RedisStockStore final : public StockStore {
 public:
  // Longest payment window put_product.lua accepts (7 days): reserve_stock.lua
  // computes pay_by in doubles, exact far beyond that.
  static constexpr std::int64_t kMaxPaymentWindowS = 7 * 24 * 3600;

  struct Options {
    // ARGV[6] of reserve_stock.lua: TTL of order:<id>, the in-flight order and
    // per-order marker (longer than audit --repair's grace period and the
    // closer's retry horizon); a product's payment window is added to it, so
    // that release_stock.lua stays idempotent until the order's units are back.
    std::int64_t order_ttl_s = 86'400;
    // When set, Reserve() and Release() send through the calling thread's own connection
    // if it has one (the HTTP workers do), and through `connection` otherwise.
    const ThreadLocalRedis* per_thread = nullptr;
  };

  // `connection` must outlive the store.
  RedisStockStore(RedisCommander& connection, Options options);
  explicit RedisStockStore(RedisCommander& connection) : RedisStockStore(connection, Options{}) {}

  // SCRIPT LOAD of every script, for RedisConnection::Options::on_connect: a
  // fresh or restarted server never answers a burst of purchases NOSCRIPT.
  static std::vector<std::vector<std::string>> ScriptLoadCommands();

  // Start-up seeding with SETNX semantics: creates each product that Redis
  // does not have, with remaining = stock - sold and its buyer records from
  // `sold` (what the database says was sold: Redis restarted empty keeps no
  // oversell of what was persisted). Existing products are left alone.
  // Returns how many were created.
  Result<std::int64_t> Seed(const std::vector<Product>& products,
                            const std::vector<SoldUnits>& sold);

  // The order while it is in flight (order:<id>, written by the reservation
  // script): PENDING, or nullopt when Redis does not have it.
  Result<std::optional<Order>> FindInFlightOrder(const OrderId& id);

  // PING, for /readyz.
  Status Ping();

  // Every product id Redis has (the product index), ascending.
  Result<std::vector<ProductId>> ProductIds();

  // In-flight index (item:{<id>}:inflight, see reserve_stock.lua): every
  // reservation is indexed by its product and creation time until it is
  // released or known to have landed, so the closer finds stranded
  // reservations (an instance died between Reserve and the hand-off) without
  // scanning the keyspace.
  //
  // After the consumer stored `orders` in the database: takes them out of
  // their products' indexes, in one pipelined round trip (one ZREM per
  // product and 5,000 orders). Idempotent; orders that are not indexed are
  // ignored. Only `id` and `product` of each order are read.
  Status ForgetLanded(std::span<const Order> orders);
  // Up to `max` orders of `product` still in the index, created before
  // `created_before` (oldest first), as their markers hold them: status
  // PENDING, user, quantity, price, created_at, pay_by. Entries whose marker
  // expired or was released are removed from the index and skipped (so fewer
  // than `max` may come back while older ones remain: call again). An order
  // returned may have landed nonetheless (the consumer forgets orders after
  // its database commit, and may die in between): the caller checks the
  // database before it releases one. One ZRANGEBYSCORE and one MGET (plus one
  // ZREM when some were dropped).
  // NOTE: the MGET reads order:<id> keys of many hash slots (standalone only,
  // as the marker itself; see reserve_stock.lua).
  Result<std::vector<Order>> StaleInFlight(ProductId product, UnixMillis created_before,
                                           std::size_t max);

  // Every reservation still held (per-order marker "R|..."), for `audit
  // --repair`: r.now is the order's creation time (from its id). SCANs the
  // whole keyspace: an operator's tool, not a request path.
  Result<std::vector<Reservation>> HeldReservations();

  void Reserve(const Reservation& r, ReserveCallback done) override;
  void Release(const Reservation& r, ReleaseCallback done) override;
  Result<PutResult> Put(const Product& p, const PersistProduct& persist) override;
  Result<PutResult> Restock(ProductId id, std::int64_t amount,
                            const PersistProduct& persist) override;
  Result<std::optional<StockSnapshot>> Get(ProductId id) override;
  Result<std::vector<StockSnapshot>> List(std::int64_t offset, std::int64_t limit) override;
  Result<std::int64_t> ProductCount() override;

 private:
  struct Script {
    std::string_view source;
    std::string sha1;  // hex, computed once at construction
  };
  // EVALSHA, then on NOSCRIPT: SCRIPT LOAD and EVALSHA once more.
  void EvalSha(RedisCommander& via, const Script& script, std::vector<std::string> keys_and_args,
               std::size_t num_keys, RedisConnection::Callback done);
  // Send() and wait for the reply.
  Result<RedisValue> Call(std::vector<std::string> argv);
  Result<RedisValue> CallEval(const Script& script, std::vector<std::string> keys_and_args,
                              std::size_t num_keys);
  // n calls, pipelined: send(i, done) issues call i; one wait for all the
  // replies, returned in call order.
  std::vector<Result<RedisValue>> Gather(
      std::size_t n, const std::function<void(std::size_t, RedisConnection::Callback)>& send);
  // Many calls of one script, pipelined; the replies in the order of `calls`.
  std::vector<Result<RedisValue>> CallEvalAll(const Script& script,
                                              std::vector<std::vector<std::string>> calls,
                                              std::size_t num_keys);
  // After an admin change was decided in Redis: indexes the product, then
  // persists `decided` (see the class comment); an error says the change is in
  // effect but not recorded.
  Status Record(const Product& decided, const PersistProduct& persist);
  // get_'s reply for product `id`.
  static Result<std::optional<StockSnapshot>> ParseGet(ProductId id, const Result<RedisValue>& v);

  // The calling thread's own connection (Options::per_thread), else the shared one.
  RedisCommander& ConnectionOfThisThread();

  RedisCommander& connection_;
  const Options options_;
  const Script reserve_;
  const Script release_;
  const Script put_;
  const Script restock_;
  const Script get_;
  const Script seed_;
};

}  // namespace flashsale::redis
