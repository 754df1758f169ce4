#include "embedded_stack.hpp"

#include <spdlog/spdlog.h>

#include "core/thread_name.hpp"
#include "mock_catalog.hpp"

namespace flashsale::app {

Result<std::unique_ptr<EmbeddedStack>> EmbeddedStack::Open(const Config& config) {
  std::unique_ptr<EmbeddedStack> s(new EmbeddedStack());
  const std::string path = config.SqlitePath();
  if (path.empty()) {
    return Status::Invalid(
        "--database " + config.database +
        ": embedded mode needs sqlite:PATH (PostgreSQL comes with distributed mode)");
  }
  embedded::SqliteDatabase::Options db_options;
  db_options.path = path;
  db_options.sync = config.journal_sync == "normal" ? embedded::JournalSync::kNormal
                                                    : embedded::JournalSync::kFull;
  auto db = embedded::SqliteDatabase::Open(db_options);
  if (!db) return db.error();
  s->db_ = std::move(*db);

  Result<std::vector<Product>> products = s->db_->LoadProducts();
  if (!products) return products.error();
  if (products->empty() && config.mock_products > 0) {
    std::vector<Product> mock = MockCatalog(config.mock_products, config.mock_seed);
    std::int64_t inserted = 0;
    if (Status st = s->db_->InsertProducts(mock, false, &inserted); !st.ok()) return st;
    spdlog::info("catalog was empty: loaded {} mock products ({}..{})", inserted, kFirstMockProduct,
                 kFirstMockProduct + config.mock_products - 1);
    products = s->db_->LoadProducts();
    if (!products) return products.error();
  }
  const std::int64_t rebuild_started = SteadyMillis();
  s->stock_.LoadProducts(*products);
  Result<std::int64_t> held = s->db_->ForEachHeldOrder(
      [&stock = s->stock_](const embedded::SoldUnits& sold) { stock.AddSoldUnits(sold); });
  if (!held) return held.error();
  s->stock_.FinishLoad();
  // The rebuild counted held orders only, so the units of every closed order
  // are back already: none may be given back a second time by the closer.
  Result<std::int64_t> forgotten = s->db_->ForgetUnreturnedUnits();
  if (!forgotten) return forgotten.error();
  if (*forgotten > 0) {
    spdlog::info("{} closed orders' units were returned by the rebuild", *forgotten);
  }
  Result<std::shared_ptr<const OrderTokens>> tokens = MakeOrderTokens(
      config, [db = s->db_.get()](std::string_view name) { return db->SharedSecret(name); });
  if (!tokens) return tokens.error();
  s->order_tokens_ = std::move(*tokens);
  Result<std::shared_ptr<const AdmissionTokens>> admission = MakeAdmissionTokens(
      config, [db = s->db_.get()](std::string_view name) { return db->SharedSecret(name); });
  if (!admission) return admission.error();
  s->admission_tokens_ = std::move(*admission);

  embedded::MemoryIdempotencyStore::Options key_options;
  key_options.max_bytes = config.idempotency_memory_mib << 20;
  key_options.find_order = [db = s->db_.get()](std::string_view key) {
    return db->FindOrderByIdempotencyKey(key);
  };
  s->idempotency_ = std::make_unique<embedded::MemoryIdempotencyStore>(std::move(key_options));
  const UnixMillis since = NowMillis() - embedded::MemoryIdempotencyStore::kTtlMs;
  Result<std::vector<Order>> keyed = s->db_->LoadKeyedOrders(since);
  if (!keyed) return keyed.error();
  for (const Order& o : *keyed) {
    PurchaseReply reply;
    reply.outcome =
        o.status == OrderStatus::kFailed ? PurchaseOutcome::kSoldOut : PurchaseOutcome::kAccepted;
    reply.order_id = o.id;
    s->idempotency_->Preload(o.idempotency_key, {o.user, o.product, o.quantity}, reply,
                             o.created_at);
  }
  Result<std::vector<Order>> pending = s->db_->LoadPending();
  if (!pending) return pending.error();
  s->metrics_.queue_depth.Set(static_cast<std::int64_t>(pending->size()));
  spdlog::info("rebuilt from {} in {} ms: {} products, {} held orders, {} pending orders", path,
               SteadyMillis() - rebuild_started, products->size(), *held, pending->size());
  s->source_.Prime(std::move(*pending));

  s->journal_ = std::make_unique<embedded::SqliteOrderJournal>(*s->db_, s->source_);
  s->funnel_ = std::make_unique<PurchaseFunnel>(s->stock_, *s->journal_, *s->idempotency_,
                                                s->broadcast_, s->metrics_,
                                                PurchaseFunnel::Options{config.l1_ttl_s * 1000});
  s->catalog_ = std::make_unique<Catalog>(s->stock_, *s->db_, *s->funnel_);
  s->consumer_ =
      std::make_unique<OrderConsumer>(s->source_, *s->db_, s->metrics_, ConsumerOptions());
  s->consumer_->Start();
  OrderCloser::Options closer_options;
  if (const char* fault = std::getenv("FLASHSALE_FAULT")) {
    closer_options.fault = OrderCloser::FaultPointNamed(fault);
  }
  s->closer_ =
      std::make_unique<OrderCloser>(*s->db_, s->stock_, s->broadcast_, s->metrics_, closer_options);
  s->closer_->Start();
  s->checkpointer_ = std::thread([stack = s.get()] { stack->RunCheckpointer(); });
  return s;
}

OrderConsumer::Options EmbeddedStack::ConsumerOptions() {
  // The consumer settles journalled orders into orders, whose per-user index
  // takes them at random places: a transaction writes one page per index page
  // it touches, so larger batches share pages and write less per order. The
  // journal has a file of its own, so a long settle never holds up the ack
  // path. A batch waits up to a second to fill (the orders wait in memory and
  // in the journal, readable as PENDING). Figures in bench/README.md
  // ("Embedded storage settings").
  OrderConsumer::Options options;
  options.max_batch = 100'000;
  options.batch_interval_ms = 1000;
  return options;
}

void EmbeddedStack::RunCheckpointer() {
  NameThisThread("checkpointer");
  MutexLock lock(&checkpoint_mu_);
  for (;;) {
    const auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    while (!stop_checkpointer_ && std::chrono::steady_clock::now() < next) {
      checkpoint_cv_.WaitUntil(&checkpoint_mu_, next);
    }
    if (stop_checkpointer_) return;
    lock.Unlock();
    if (Result<std::int64_t> r = db_->Checkpoint(); !r) spdlog::warn("{}", r.error().ToString());
    lock.Lock();
  }
}

void EmbeddedStack::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (closer_) closer_->Stop();
  if (journal_) journal_->Stop();        // every handed-off order answered and journalled
  if (consumer_) consumer_->Stop(true);  // and persisted
  {
    MutexLock lock(&checkpoint_mu_);
    stop_checkpointer_ = true;
  }
  checkpoint_cv_.SignalAll();
  if (checkpointer_.joinable()) checkpointer_.join();
  if (db_) (void)db_->Checkpoint();
}

EmbeddedStack::~EmbeddedStack() { Shutdown(); }

}  // namespace flashsale::app
