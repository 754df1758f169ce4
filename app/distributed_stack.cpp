#include "distributed_stack.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "mock_catalog.hpp"

namespace flashsale::app {

kafka::KafkaOptions KafkaOptionsOf(const Config& config) {
  kafka::KafkaOptions o;
  o.bootstrap = config.kafka;
  o.topic_prefix = config.topic_prefix;
  o.delivery_timeout_ms = static_cast<int>(config.kafka_timeout_ms);
  o.linger_ms = config.kafka_linger_ms;
  for (const std::string& kv : config.kafka_producer_config) {
    const std::size_t eq = kv.find('=');  // present: checked when the flag was parsed
    o.producer_properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return o;
}

Result<std::optional<Order>> InFlightAwareOrders::FindOrder(const OrderId& id) {
  Result<std::optional<Order>> persisted = db_.FindOrder(id);
  if (!persisted || persisted->has_value()) return persisted;
  return stock_.FindInFlightOrder(id);
}

Result<std::vector<Order>> InFlightAwareOrders::OrdersOfUser(UserId user, std::int64_t limit) {
  Result<std::vector<Order>> stored = db_.OrdersOfUser(user, limit);
  if (!stored) return stored;
  return accepted_.MergeWithStored(user, std::move(*stored), static_cast<std::size_t>(limit),
                                   NowMillis());
}

Result<std::unique_ptr<DistributedStack>> DistributedStack::Open(const Config& config) {
  std::unique_ptr<DistributedStack> s(new DistributedStack());
  auto db = RecordDatabase::Open(config);
  if (!db) return db.error();
  s->db_ = std::move(*db);
  Result<std::shared_ptr<const OrderTokens>> tokens = MakeOrderTokens(
      config, [db = s->db_.get()](std::string_view name) { return db->SharedSecret(name); });
  if (!tokens) return tokens.error();
  s->order_tokens_ = std::move(*tokens);
  Result<std::shared_ptr<const AdmissionTokens>> admission = MakeAdmissionTokens(
      config, [db = s->db_.get()](std::string_view name) { return db->SharedSecret(name); });
  if (!admission) return admission.error();
  s->admission_tokens_ = std::move(*admission);

  Result<redis::RedisAddress> address = redis::ParseRedisUrl(config.redis);
  if (!address) return address.error();
  redis::RedisConnection::Options redis_options = redis::OptionsFor(*address);
  for (auto& command : redis::RedisStockStore::ScriptLoadCommands()) {
    redis_options.on_connect.push_back(std::move(command));
  }
  s->work_ =
      std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
          s->io_.get_executor());
  s->io_thread_ = std::thread([stack = s.get()] { stack->io_.run(); });
  s->redis_ = std::make_unique<redis::RedisPool>(s->io_, redis_options, config.redis_connections);
  redis::RedisStockStore::Options stock_options;
  if (!config.redis_shared_connections) {
    s->per_thread_redis_ = std::make_unique<redis::ThreadLocalRedis>(redis_options);
    stock_options.per_thread = s->per_thread_redis_.get();
  }
  s->stock_ = std::make_unique<redis::RedisStockStore>(*s->redis_, stock_options);
  if (Status st = s->stock_->Ping(); !st.ok()) {
    return Status::Unavailable("redis " + address->host + ":" + std::to_string(address->port) +
                               ": " + st.message());
  }
  if (Status st = s->SeedRedis(config); !st.ok()) return st;
  s->key_lookups_ = std::make_unique<boost::asio::thread_pool>(1);
  redis::RedisIdempotencyStore::Options key_options;
  key_options.max_keys = std::max<std::int64_t>(
      1, (config.idempotency_memory_mib << 20) / redis::RedisIdempotencyStore::kBytesPerKey);
  key_options.find_order = [stack = s.get()](
                               std::string key,
                               std::function<void(Result<std::optional<Order>>)> done) {
    boost::asio::post(*stack->key_lookups_, [stack, key = std::move(key), done = std::move(done)] {
      done(stack->db_->FindOrderByIdempotencyKey(key));
    });
  };
  s->idempotency_ =
      std::make_unique<redis::RedisIdempotencyStore>(*s->redis_, s->io_, std::move(key_options));
  s->waiting_room_ = std::make_unique<redis::RedisWaitingRoom>(*s->redis_);

  const kafka::KafkaOptions kafka_options = KafkaOptionsOf(config);
  if (Status st = kafka::EnsureTopics(kafka_options); !st.ok()) return st;
  auto queue = kafka::KafkaOrderQueue::Create(kafka_options);
  if (!queue) return queue.error();
  s->queue_ = std::move(*queue);
  s->recording_queue_ = std::make_unique<AcceptanceRecordingQueue>(*s->queue_, s->accepted_);
  auto broadcast = kafka::KafkaStatusBroadcast::Create(kafka_options);
  if (!broadcast) return broadcast.error();
  s->broadcast_ = std::move(*broadcast);

  s->funnel_ = std::make_unique<PurchaseFunnel>(*s->stock_, *s->recording_queue_, *s->idempotency_,
                                                *s->broadcast_, s->metrics_,
                                                PurchaseFunnel::Options{config.l1_ttl_s * 1000});
  if (Status st = s->broadcast_->Start(); !st.ok()) return st;
  s->catalog_ = std::make_unique<Catalog>(*s->stock_, *s->db_, *s->funnel_);
  s->orders_ = std::make_unique<InFlightAwareOrders>(*s->db_, *s->stock_, s->accepted_);
  s->description_ =
      "distributed: redis " + address->host + ":" + std::to_string(address->port) + "/" +
      std::to_string(address->db) + ", kafka " + config.kafka +
      (config.topic_prefix.empty() ? "" : " (topic prefix " + config.topic_prefix + ")") +
      ", database " + s->db_->Describe();
  return s;
}

Status DistributedStack::SeedRedis(const Config& config) {
  Result<std::int64_t> in_redis = stock_->ProductCount();
  if (!in_redis) return in_redis.error();
  Result<std::vector<Product>> products = db_->LoadProducts();
  if (!products) return products.error();
  if (products->empty() && *in_redis == 0 && config.mock_products > 0) {
    std::vector<Product> mock = MockCatalog(config.mock_products, config.mock_seed);
    std::int64_t inserted = 0;
    if (Status st = db_->InsertProducts(mock, false, &inserted); !st.ok()) return st;
    spdlog::info("catalog was empty: loaded {} mock products ({}..{}) into {}", inserted,
                 kFirstMockProduct, kFirstMockProduct + config.mock_products - 1, db_->Describe());
    products = db_->LoadProducts();
    if (!products) return products.error();
  }
  if (static_cast<std::size_t>(*in_redis) >= products->size()) return Status::Ok();
  // Redis lacks products the database has: first start, or Redis lost its
  // data. Create the missing ones from the database, with what it says was sold.
  Result<std::vector<SoldUnits>> sold = db_->LoadSoldUnits();
  if (!sold) return sold.error();
  Result<std::int64_t> created = stock_->Seed(*products, *sold);
  if (!created) return created.error();
  if (*created > 0) {
    spdlog::info("redis: created {} products from the database ({} were there already)", *created,
                 static_cast<std::int64_t>(products->size()) - *created);
    if (*in_redis > 0) {
      spdlog::warn(
          "redis had only {} of {} products: it lost data (restart without AOF?); "
          "rebuilt them from the database",
          *in_redis, products->size());
    }
  }
  return Status::Ok();
}

std::vector<http::ReadinessCheck> DistributedStack::ReadinessChecks() {
  std::vector<http::ReadinessCheck> checks;
  checks.push_back({"redis", [this] { return stock_->Ping(); }});
  checks.push_back({"kafka", [this] { return queue_->Health(); }});
  checks.push_back({"database", [this] { return db_->Ping(); }});
  return checks;
}

std::string DistributedStack::Describe() const { return description_; }

void DistributedStack::AttachIoThread(boost::asio::io_context& io) {
  if (per_thread_redis_) per_thread_redis_->AttachThisThread(io);
}

void DistributedStack::DetachIoThread() {
  if (per_thread_redis_) per_thread_redis_->DetachThisThread();
}

void DistributedStack::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // The HTTP server has stopped taking requests (serve.cpp). Every handed-off
  // order gets its delivery report; then the Redis thread stops, so no
  // reservation completes and hands off after it; what completed during the
  // first flush is flushed by the second.
  if (queue_) queue_->Flush();
  if (broadcast_) broadcast_->Stop();
  if (key_lookups_) key_lookups_->join();  // lookups answer before the stores go
  work_.reset();
  io_.stop();
  if (io_thread_.joinable()) io_thread_.join();
  if (queue_) queue_->Flush();
}

DistributedStack::~DistributedStack() {
  Shutdown();
  // The funnel and stores go before the connections they use.
  orders_.reset();
  catalog_.reset();
  funnel_.reset();
  broadcast_.reset();
  recording_queue_.reset();
  queue_.reset();
  idempotency_.reset();
  waiting_room_.reset();
  stock_.reset();
  redis_.reset();
}

}  // namespace flashsale::app
