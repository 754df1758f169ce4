#include "backends/redis/redis_stock_store.hpp"

#include <array>
#include <boost/uuid/detail/sha1.hpp>
#include <cstdint>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <utility>

#include "backends/redis/lua_scripts.hpp"
#include "backends/redis/redis_keys.hpp"
#include "backends/redis/redis_script.hpp"
#include "backends/redis/redis_stock_store_internal.hpp"
#include "core/mutex.hpp"
#include "core/numbers.hpp"
#include "core/stored_waiting_room.hpp"

namespace flashsale::redis {
namespace {

using stock_store_internal::ErrorReply;
using stock_store_internal::OptionalMillis;
using stock_store_internal::OptionalSeconds;

std::string Sha1Hex(std::string_view text) {
  boost::uuids::detail::sha1 sha;
  sha.process_bytes(text.data(), text.size());
  boost::uuids::detail::sha1::digest_type digest;
  sha.get_digest(digest);
  char hex[41];
  for (int i = 0; i < 5; ++i) std::snprintf(hex + 8 * i, 9, "%08x", digest[i]);
  return std::string(hex, 40);
}

std::optional<std::int64_t> ToInt(const RedisValue& v) {
  if (v.type == RedisValue::Type::kInteger) return v.integer;
  if (v.type != RedisValue::Type::kString) return std::nullopt;
  return ParseInt64(v.str);
}

Status Malformed(std::string_view what) {
  return Status::Internal("redis " + std::string(what) + ": malformed reply");
}

Result<ReserveResult> ParseReserve(const RedisValue& v) {
  if (v.IsError()) return ErrorReply("reserve_stock.lua", v);
  if (v.type != RedisValue::Type::kArray || v.elements.size() != 6) {
    return Malformed("reserve_stock.lua");
  }
  const std::string& code = v.elements[0].str;
  ReserveResult out;
  std::optional<std::int64_t> price = ToInt(v.elements[1]);
  std::optional<std::int64_t> took_last = ToInt(v.elements[2]);
  std::optional<std::int64_t> epoch = ToInt(v.elements[4]);
  std::optional<std::int64_t> pay_by = ToInt(v.elements[5]);
  if (!price || !took_last || !epoch || !pay_by) return Malformed("reserve_stock.lua");
  out.restock_epoch = *epoch;
  if (code == "RESERVED") {
    out.outcome = ReserveOutcome::kReserved;
    out.price = *price;
    out.took_last_unit = *took_last == 1;
    if (*pay_by != 0) out.pay_by = *pay_by;  // 0 = no payment window
  } else if (code == "SOLD_OUT") {
    out.outcome = ReserveOutcome::kSoldOut;
  } else if (code == "INSUFFICIENT_STOCK") {
    out.outcome = ReserveOutcome::kInsufficientStock;
  } else if (code == "LIMIT_EXCEEDED") {
    out.outcome = ReserveOutcome::kLimitExceeded;
    if (!v.elements[3].str.empty()) {
      std::optional<OrderId> latest = OrderId::Parse(v.elements[3].str);
      if (!latest) return Malformed("reserve_stock.lua latest order id");
      out.latest_order = *latest;
    }
  } else if (code == "NOT_STARTED") {
    out.outcome = ReserveOutcome::kNotStarted;
  } else if (code == "ENDED") {
    out.outcome = ReserveOutcome::kEnded;
  } else if (code == "UNKNOWN_PRODUCT") {
    out.outcome = ReserveOutcome::kUnknownProduct;
  } else if (code == "PASS_REQUIRED") {
    out.outcome = ReserveOutcome::kPassRequired;
  } else if (code == "RELEASED") {
    // Only on order-id reuse: the id was reserved and released before. A bug
    // of the caller, never a business answer.
    return Status::Internal(
        "redis reserve: order id was already reserved and released (reused id)");
  } else {
    return Status::Internal("redis reserve: unknown code " + code);
  }
  return out;
}

Result<std::int64_t> ParseRelease(const Result<RedisValue>& v) {
  if (!v.has_value()) return v.error();
  if (v->IsError()) {
    if (v->str.find("unknown product") != std::string::npos) return Status::NotFound(v->str);
    return ErrorReply("release_stock.lua", *v);
  }
  if (v->type != RedisValue::Type::kArray || v->elements.size() != 2) {
    return Malformed("release_stock.lua");
  }
  std::optional<std::int64_t> epoch = ToInt(v->elements[1]);
  if (!epoch) return Malformed("release_stock.lua");
  return *epoch;
}

}  // namespace

RedisStockStore::RedisStockStore(RedisCommander& connection, Options options)
    : connection_(connection),
      options_(options),
      reserve_{ReserveStockLua(), Sha1Hex(ReserveStockLua())},
      release_{ReleaseStockLua(), Sha1Hex(ReleaseStockLua())},
      put_{PutProductLua(), Sha1Hex(PutProductLua())},
      restock_{RestockProductLua(), Sha1Hex(RestockProductLua())},
      get_{GetProductLua(), Sha1Hex(GetProductLua())},
      seed_{SeedProductLua(), Sha1Hex(SeedProductLua())} {}

std::vector<std::vector<std::string>> RedisStockStore::ScriptLoadCommands() {
  std::vector<std::vector<std::string>> out;
  for (std::string_view src : {ReserveStockLua(), ReleaseStockLua(), PutProductLua(),
                               RestockProductLua(), GetProductLua(), SeedProductLua()}) {
    out.push_back({"SCRIPT", "LOAD", std::string(src)});
  }
  return out;
}

void RedisStockStore::EvalSha(RedisCommander& via, const Script& script,
                              std::vector<std::string> keys_and_args, std::size_t num_keys,
                              RedisConnection::Callback done) {
  std::vector<std::string> argv;
  argv.reserve(keys_and_args.size() + 3);
  argv.emplace_back("EVALSHA");
  argv.push_back(script.sha1);
  argv.push_back(std::to_string(num_keys));
  for (std::string& s : keys_and_args) argv.push_back(std::move(s));
  // Kept (moved, not copied) in case the script cache was lost and the call
  // must be repeated.
  auto args = std::make_shared<const std::vector<std::string>>(std::move(argv));
  via.Send(*args, [&via, &script, args, done = std::move(done)](Result<RedisValue> r) mutable {
    if (!r.has_value() || !r->IsError() || !r->str.starts_with("NOSCRIPT")) {
      done(std::move(r));
      return;
    }
    // The server lost its script cache (restart, SCRIPT FLUSH): load, retry once.
    // Both commands are queued back to back on one connection, so they run in order.
    via.Send({"SCRIPT", "LOAD", std::string(script.source)}, [](Result<RedisValue>) {});
    via.Send(*args, std::move(done));
  });
}

Result<RedisValue> RedisStockStore::Call(std::vector<std::string> argv) {
  return AwaitReply(
      [&](RedisConnection::Callback done) { connection_.Send(argv, std::move(done)); });
}

Result<RedisValue> RedisStockStore::CallEval(const Script& script,
                                             std::vector<std::string> keys_and_args,
                                             std::size_t num_keys) {
  return AwaitReply([&](RedisConnection::Callback done) {
    EvalSha(connection_, script, std::move(keys_and_args), num_keys, std::move(done));
  });
}

std::vector<Result<RedisValue>> RedisStockStore::Gather(
    std::size_t n, const std::function<void(std::size_t, RedisConnection::Callback)>& send) {
  // Every call goes out at once (pipelined); one wait for all the replies.
  struct Replies {
    Mutex mu;
    std::vector<Result<RedisValue>> values GUARDED_BY(mu);
    std::size_t left GUARDED_BY(mu) = 0;
    std::promise<void> all_done;
  };
  if (n == 0) return {};
  auto replies = std::make_shared<Replies>();
  {
    MutexLock lock(&replies->mu);
    replies->values.assign(n, Result<RedisValue>(Status::Unknown("no reply")));
    replies->left = n;
  }
  for (std::size_t i = 0; i < n; ++i) {
    send(i, [replies, i](Result<RedisValue> v) {
      MutexLock lock(&replies->mu);
      replies->values[i] = std::move(v);
      if (--replies->left == 0) replies->all_done.set_value();
    });
  }
  replies->all_done.get_future().wait();
  MutexLock lock(&replies->mu);
  return std::move(replies->values);
}

std::vector<Result<RedisValue>> RedisStockStore::CallEvalAll(
    const Script& script, std::vector<std::vector<std::string>> calls, std::size_t num_keys) {
  return Gather(calls.size(), [&](std::size_t i, RedisConnection::Callback done) {
    EvalSha(connection_, script, std::move(calls[i]), num_keys, std::move(done));
  });
}

void RedisStockStore::Reserve(const Reservation& r, ReserveCallback done) {
  std::vector<std::string> kv{keys::Meta(r.product),      keys::Stock(r.product),
                              keys::SoldOut(r.product),   keys::Buyers(r.product),
                              keys::Order(r.order),       keys::InFlight(r.product),
                              std::to_string(r.product),  std::to_string(r.user),
                              std::to_string(r.quantity), r.order.str(),
                              std::to_string(r.now),      std::to_string(options_.order_ttl_s),
                              r.pass_verified ? "1" : "0"};
  EvalSha(ConnectionOfThisThread(), reserve_, std::move(kv), 6,
          [done = std::move(done)](Result<RedisValue> v) {
            if (!v.has_value()) {
              done(v.error());
              return;
            }
            done(ParseReserve(*v));
          });
}

RedisCommander& RedisStockStore::ConnectionOfThisThread() {
  RedisCommander* own = options_.per_thread != nullptr ? options_.per_thread->Current() : nullptr;
  return own != nullptr ? *own : connection_;
}

void RedisStockStore::Release(const Reservation& r, ReleaseCallback done) {
  // Like Reserve(): called where a hand-off was refused, which may be the very
  // thread that must read this reply (the shared connection's io thread, or
  // an HTTP I/O thread with its own connection), so it must never wait.
  EvalSha(ConnectionOfThisThread(), release_,
          {keys::Meta(r.product), keys::Stock(r.product), keys::SoldOut(r.product),
           keys::Buyers(r.product), keys::Order(r.order), keys::InFlight(r.product),
           std::to_string(r.user), std::to_string(r.quantity), std::to_string(options_.order_ttl_s),
           r.order.str()},
          6, [done = std::move(done)](Result<RedisValue> v) { done(ParseRelease(v)); });
}

Result<PutResult> RedisStockStore::Put(const Product& p, const PersistProduct& persist) {
  if (p.payment_window_s && (*p.payment_window_s < 1 || *p.payment_window_s > kMaxPaymentWindowS)) {
    return Status::Invalid("payment_window_s must be 1.." + std::to_string(kMaxPaymentWindowS));
  }
  if (p.waiting_room && !ValidWaitingRoom(*p.waiting_room)) {
    return Status::Invalid("waiting_room: admit_per_s must be 1.." + std::to_string(kMaxAdmitPerS) +
                           ", pass_ttl_s 1.." + std::to_string(kMaxPassTtlS));
  }
  // The decision: put_product.lua checks and writes in one step and numbers
  // the change (see the class comment).
  Result<RedisValue> v = CallEval(
      put_,
      {keys::Meta(p.id), keys::Stock(p.id), keys::SoldOut(p.id), std::to_string(p.price),
       std::to_string(p.stock), std::to_string(p.limit_per_user), OptionalMillis(p.starts_at),
       OptionalMillis(p.ends_at), OptionalSeconds(p.payment_window_s),
       OptionalSeconds(AdmitPerS(p)), OptionalSeconds(PassTtlS(p))},
      3);
  if (!v.has_value()) return v.error();
  if (v->IsError()) return ErrorReply("put_product.lua", *v);
  if (v->type != RedisValue::Type::kArray || v->elements.empty()) {
    return Malformed("put_product.lua");
  }
  if (v->elements[0].str == "CONFLICT") {
    std::optional<std::int64_t> sold =
        v->elements.size() == 2 ? ToInt(v->elements[1]) : std::nullopt;
    return Status::Conflict("stock " + std::to_string(p.stock) + " is below the " +
                            std::to_string(sold.value_or(-1)) + " units already sold");
  }
  if (v->elements.size() != 5) return Malformed("put_product.lua");
  std::optional<std::int64_t> created = ToInt(v->elements[1]);
  std::optional<std::int64_t> reopened = ToInt(v->elements[2]);
  std::optional<std::int64_t> epoch = ToInt(v->elements[3]);
  std::optional<std::int64_t> version = ToInt(v->elements[4]);
  if (!created || !reopened || !epoch || !version) return Malformed("put_product.lua");
  Product decided = p;
  decided.version = *version;
  if (Status s = Record(decided, persist); !s.ok()) return s;
  return PutResult{*created == 1, *reopened == 1, *epoch};
}

Result<PutResult> RedisStockStore::Restock(ProductId id, std::int64_t amount,
                                           const PersistProduct& persist) {
  if (amount <= 0) return Status::Invalid("restock amount must be > 0");
  Result<RedisValue> v = CallEval(
      restock_, {keys::Meta(id), keys::Stock(id), keys::SoldOut(id), std::to_string(amount)}, 3);
  if (!v.has_value()) return v.error();
  if (v->IsError()) return ErrorReply("restock_product.lua", *v);
  if (v->type != RedisValue::Type::kArray || v->elements.empty()) {
    return Malformed("restock_product.lua");
  }
  const std::string& code = v->elements[0].str;
  if (code == "NOT_FOUND") return Status::NotFound("product " + std::to_string(id));
  if (code == "OVERFLOW") return Status::Invalid("stock would overflow");
  if (code != "OK" || v->elements.size() != 12) return Malformed("restock_product.lua");
  // The product as Redis now holds it, at the change's version: what is persisted.
  std::optional<std::int64_t> reopened = ToInt(v->elements[1]);
  std::optional<std::int64_t> epoch = ToInt(v->elements[2]);
  std::optional<std::int64_t> version = ToInt(v->elements[3]);
  std::optional<std::int64_t> price = ToInt(v->elements[4]);
  std::optional<std::int64_t> stock = ToInt(v->elements[5]);
  std::optional<std::int64_t> limit = ToInt(v->elements[6]);
  if (!reopened || !epoch || !version || !price || !stock || !limit) {
    return Malformed("restock_product.lua");
  }
  Product decided;
  decided.id = id;
  decided.price = *price;
  decided.stock = *stock;
  decided.limit_per_user = *limit;
  decided.version = *version;
  // "" = open / no payment step / no waiting room. The window and the waiting
  // room are carried over: the row persisted for this version is the whole
  // product as Redis holds it.
  std::optional<std::int64_t> wr_admit, wr_ttl;
  for (auto [at, field] :
       {std::pair{std::size_t{7}, &decided.starts_at}, std::pair{std::size_t{8}, &decided.ends_at},
        std::pair{std::size_t{9}, &decided.payment_window_s}, std::pair{std::size_t{10}, &wr_admit},
        std::pair{std::size_t{11}, &wr_ttl}}) {
    if (v->elements[at].str.empty()) continue;
    std::optional<std::int64_t> t = ToInt(v->elements[at]);
    if (!t) return Malformed("restock_product.lua");
    *field = *t;
  }
  decided.waiting_room = WaitingRoomOf(wr_admit, wr_ttl);
  if (Status s = Record(decided, persist); !s.ok()) return s;
  return PutResult{false, *reopened == 1, *epoch};
}

Status RedisStockStore::Record(const Product& decided, const PersistProduct& persist) {
  // The index first: idempotent, and a product Redis has is listed even when
  // the database write below fails.
  Result<RedisValue> indexed = Call({"ZADD", std::string(keys::kProductIndex),
                                     std::to_string(decided.id), std::to_string(decided.id)});
  if (!indexed.has_value()) return indexed.error();
  if (indexed->IsError()) return ErrorReply("ZADD", *indexed);
  if (Status s = persist(decided); !s.ok()) {
    // Not Unavailable ("nothing happened"): the change is in effect, and a
    // blind retry of a restock would add its units twice.
    return Status::Internal(
        "product " + std::to_string(decided.id) + " was changed (version " +
        std::to_string(decided.version) + ") but its database row was not written: " + s.message() +
        "; the next change of this product or `flashsale audit --repair` writes it");
  }
  return Status::Ok();
}

Result<std::optional<StockSnapshot>> RedisStockStore::Get(ProductId id) {
  return ParseGet(id, CallEval(get_, {keys::Meta(id), keys::Stock(id), keys::SoldOut(id)}, 3));
}

Result<std::optional<StockSnapshot>> RedisStockStore::ParseGet(ProductId id,
                                                               const Result<RedisValue>& v) {
  if (!v.has_value()) return v.error();
  if (v->IsError()) return ErrorReply("get", *v);
  if (v->type != RedisValue::Type::kArray || v->elements.size() != 3 ||
      v->elements[0].type != RedisValue::Type::kArray) {
    return Malformed("get");
  }
  const std::vector<RedisValue>& meta = v->elements[0].elements;
  if (meta.empty()) return std::optional<StockSnapshot>();
  StockSnapshot snap;
  snap.product.id = id;
  std::optional<std::int64_t> wr_admit, wr_ttl;  // the waiting room's halves
  for (std::size_t i = 0; i + 1 < meta.size(); i += 2) {
    const std::string& field = meta[i].str;
    if (meta[i + 1].str.empty()) continue;  // "" = absent (open window)
    std::optional<std::int64_t> n = ToInt(meta[i + 1]);
    if (!n) return Malformed("get: meta field " + field);
    if (field == "price")
      snap.product.price = *n;
    else if (field == "stock")
      snap.product.stock = *n;
    else if (field == "limit_per_user")
      snap.product.limit_per_user = *n;
    else if (field == "starts_at")
      snap.product.starts_at = *n;
    else if (field == "ends_at")
      snap.product.ends_at = *n;
    else if (field == "payment_window_s")
      snap.product.payment_window_s = *n;
    else if (field == "wr_admit_per_s")
      wr_admit = *n;
    else if (field == "wr_pass_ttl_s")
      wr_ttl = *n;
    else if (field == "restock_epoch")
      snap.restock_epoch = *n;
    else if (field == "version")
      snap.product.version = *n;
  }
  snap.product.waiting_room = WaitingRoomOf(wr_admit, wr_ttl);
  if (!v->elements[1].str.empty()) {
    std::optional<std::int64_t> remaining = ToInt(v->elements[1]);
    if (!remaining) return Malformed("get: remaining");
    snap.remaining = *remaining;
  }
  std::optional<std::int64_t> flag = ToInt(v->elements[2]);
  snap.sold_out = flag.value_or(0) == 1;
  return std::optional<StockSnapshot>(std::move(snap));
}

Result<std::vector<StockSnapshot>> RedisStockStore::List(std::int64_t offset, std::int64_t limit) {
  std::vector<StockSnapshot> out;
  if (limit <= 0) return out;
  Result<RedisValue> ids = Call({"ZRANGE", std::string(keys::kProductIndex), std::to_string(offset),
                                 std::to_string(offset + limit - 1)});
  if (!ids.has_value()) return ids.error();
  if (ids->IsError()) return ErrorReply("list", *ids);
  std::vector<ProductId> products;
  std::vector<std::vector<std::string>> calls;
  for (const RedisValue& v : ids->elements) {
    std::optional<std::int64_t> id = ToInt(v);
    if (!id) return Malformed("list: product id");
    products.push_back(*id);
    calls.push_back({keys::Meta(*id), keys::Stock(*id), keys::SoldOut(*id)});
  }
  std::vector<Result<RedisValue>> replies = CallEvalAll(get_, std::move(calls), 3);
  for (std::size_t i = 0; i < products.size(); ++i) {
    Result<std::optional<StockSnapshot>> snap = ParseGet(products[i], replies[i]);
    if (!snap.has_value()) return snap.error();
    if (snap->has_value()) out.push_back(std::move(**snap));
  }
  return out;
}

Result<std::int64_t> RedisStockStore::ProductCount() {
  Result<RedisValue> n = Call({"ZCARD", std::string(keys::kProductIndex)});
  if (!n.has_value()) return n.error();
  if (n->type != RedisValue::Type::kInteger) return Malformed("ZCARD");
  return n->integer;
}

namespace {

// order:<id> as written by reserve_stock.lua:
// "R|<user>|<product>|<amount>|<price>|<took_last_unit>|<created_at>|<pay_by>" ("X|..." once
// released; pay_by "" = none). Markers written before the payment step end at created_at:
// read as "no pay_by". nullopt for a released or malformed marker.
std::optional<Order> ParseOrderMarker(const OrderId& id, std::string_view v) {
  if (!v.starts_with("R|")) return std::nullopt;
  std::array<std::int64_t, 6> f{};
  std::string_view rest = v.substr(2);
  std::optional<std::string_view> pay_by_field;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const std::size_t bar = rest.find('|');
    const std::string_view field = rest.substr(0, bar);
    const std::optional<std::int64_t> value = ParseInt64(field);
    if (!value) return std::nullopt;
    f[i] = *value;
    if (bar == std::string_view::npos) {
      if (i + 1 != f.size()) return std::nullopt;
      break;
    }
    if (i + 1 == f.size()) pay_by_field = rest.substr(bar + 1);
    rest = rest.substr(bar + 1);
  }
  Order o;
  if (pay_by_field && !pay_by_field->empty()) {
    const std::optional<std::int64_t> pay_by = ParseInt64(*pay_by_field);
    if (!pay_by) return std::nullopt;
    o.pay_by = *pay_by;
  }
  o.id = id;
  o.user = f[0];
  o.product = f[1];
  o.quantity = f[2];
  o.price = f[3];
  o.created_at = f[5];
  o.status = OrderStatus::kPending;
  return o;
}

}  // namespace

Result<std::optional<Order>> RedisStockStore::FindInFlightOrder(const OrderId& id) {
  Result<RedisValue> v = Call({"GET", keys::Order(id)});
  if (!v.has_value()) return v.error();
  if (v->IsError()) return ErrorReply("order", *v);
  if (v->type != RedisValue::Type::kString) return std::optional<Order>();
  return ParseOrderMarker(id, v->str);
}

Result<std::vector<Reservation>> RedisStockStore::HeldReservations() {
  std::vector<Reservation> out;
  std::string cursor = "0";
  do {
    Result<RedisValue> page = Call({"SCAN", cursor, "MATCH", keys::kOrderPattern, "COUNT", "1000"});
    if (!page.has_value()) return page.error();
    if (page->IsError()) return ErrorReply("scan", *page);
    if (page->elements.size() != 2) return Malformed("scan");
    cursor = page->elements[0].str;
    for (const RedisValue& key : page->elements[1].elements) {
      std::optional<OrderId> id =
          OrderId::Parse(std::string_view(key.str).substr(keys::kOrderPrefix.size()));
      if (!id) continue;
      Result<RedisValue> marker = Call({"GET", key.str});
      if (!marker.has_value()) return marker.error();
      if (marker->type != RedisValue::Type::kString) continue;  // expired meanwhile
      if (std::optional<Order> o = ParseOrderMarker(*id, marker->str)) {
        out.push_back(Reservation{o->product, o->user, o->quantity, o->id, o->created_at});
      }
    }
  } while (cursor != "0");
  return out;
}

Result<std::vector<ProductId>> RedisStockStore::ProductIds() {
  Result<RedisValue> ids = Call({"ZRANGE", std::string(keys::kProductIndex), "0", "-1"});
  if (!ids.has_value()) return ids.error();
  if (ids->IsError()) return ErrorReply("product ids", *ids);
  std::vector<ProductId> out;
  out.reserve(ids->elements.size());
  for (const RedisValue& v : ids->elements) {
    std::optional<std::int64_t> id = ToInt(v);
    if (!id) return Malformed("product ids");
    out.push_back(*id);
  }
  return out;
}

Status RedisStockStore::ForgetLanded(std::span<const Order> orders) {
  // One ZREM per product, all pipelined: one round trip. A consumer batch may
  // hold 100,000 orders of one product: each ZREM carries at most kChunk of
  // them, so that no single command holds Redis (and the purchases queued
  // behind it) for long.
  constexpr std::size_t kChunk = 5'000;
  std::map<ProductId, std::vector<std::vector<std::string>>> by_product;
  for (const Order& o : orders) {
    std::vector<std::vector<std::string>>& zrems = by_product[o.product];
    if (zrems.empty() || zrems.back().size() == kChunk + 2) {
      zrems.push_back({"ZREM", keys::InFlight(o.product)});
    }
    zrems.back().push_back(o.id.str());
  }
  std::vector<std::vector<std::string>> calls;
  for (auto& [product, zrems] : by_product) {
    for (std::vector<std::string>& zrem : zrems) calls.push_back(std::move(zrem));
  }
  std::vector<Result<RedisValue>> replies =
      Gather(calls.size(), [&](std::size_t i, RedisConnection::Callback done) {
        connection_.Send(std::move(calls[i]), std::move(done));
      });
  for (const Result<RedisValue>& v : replies) {
    if (!v.has_value()) return v.error();
    if (v->IsError()) return ErrorReply("ZREM in-flight", *v);
  }
  return Status::Ok();
}

Result<std::vector<Order>> RedisStockStore::StaleInFlight(ProductId product,
                                                          UnixMillis created_before,
                                                          std::size_t max) {
  std::vector<Order> out;
  if (max == 0) return out;
  const std::string index = keys::InFlight(product);
  Result<RedisValue> ids =
      Call({"ZRANGEBYSCORE", index, "-inf", "(" + std::to_string(created_before), "LIMIT", "0",
            std::to_string(max)});
  if (!ids.has_value()) return ids.error();
  if (ids->IsError()) return ErrorReply("in-flight index", *ids);
  if (ids->type != RedisValue::Type::kArray) return Malformed("in-flight index");
  if (ids->elements.empty()) return out;
  std::vector<std::string> mget{"MGET"};
  mget.reserve(ids->elements.size() + 1);
  for (const RedisValue& id : ids->elements)
    mget.push_back(std::string(keys::kOrderPrefix) + id.str);
  Result<RedisValue> markers = Call(std::move(mget));
  if (!markers.has_value()) return markers.error();
  if (markers->IsError()) return ErrorReply("in-flight markers", *markers);
  if (markers->type != RedisValue::Type::kArray ||
      markers->elements.size() != ids->elements.size()) {
    return Malformed("in-flight markers");
  }
  // Entries whose marker is gone (expired) or released ("X") are no
  // reservation any more: dropped from the index, not returned. A marker of
  // another product (a corrupt entry) is dropped too.
  std::vector<std::string> gone{"ZREM", index};
  for (std::size_t i = 0; i < ids->elements.size(); ++i) {
    const std::string& member = ids->elements[i].str;
    const RedisValue& marker = markers->elements[i];
    std::optional<OrderId> id = OrderId::Parse(member);
    std::optional<Order> order;
    if (id && marker.type == RedisValue::Type::kString) order = ParseOrderMarker(*id, marker.str);
    if (order && order->product == product) {
      out.push_back(std::move(*order));
    } else {
      gone.push_back(member);
    }
  }
  if (gone.size() > 2) {
    Result<RedisValue> removed = Call(std::move(gone));
    if (!removed.has_value()) return removed.error();
    if (removed->IsError()) return ErrorReply("ZREM in-flight", *removed);
  }
  return out;
}

Status RedisStockStore::Ping() {
  Result<RedisValue> v = Call({"PING"});
  if (!v.has_value()) return v.error();
  if (v->IsError()) return Status::Unavailable("redis: " + v->str);
  return Status::Ok();
}

}  // namespace flashsale::redis
