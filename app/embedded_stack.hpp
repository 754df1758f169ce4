#pragma once
// EmbeddedStack: the whole flash sale in one process (SPEC §2, embedded):
// in-memory stock rebuilt from SQLite at start-up, the group-committed SQLite
// journal, an in-process consumer, and the funnel over them.
//
// Start-up order (why): the database is opened first; stock and per-user
// records are rebuilt from its orders (PENDING and CONFIRMED count as sold),
// so a kill -9 never loses an acknowledged order or lets it be sold twice;
// PENDING orders are handed to the consumer again.

#include <memory>
#include <thread>

#include "backends/embedded/local_status_broadcast.hpp"
#include "backends/embedded/memory_idempotency_store.hpp"
#include "backends/embedded/memory_stock_store.hpp"
#include "backends/embedded/memory_waiting_room.hpp"
#include "backends/embedded/sqlite_database.hpp"
#include "backends/embedded/sqlite_order_journal.hpp"
#include "config.hpp"
#include "consumer/order_closer.hpp"
#include "consumer/order_consumer.hpp"
#include "core/mutex.hpp"
#include "core/signatures.hpp"
#include "funnel/catalog.hpp"
#include "funnel/purchase_funnel.hpp"

namespace flashsale::app {

class EmbeddedStack {
 public:
  // Opens the database (creating it), loads the mock catalog into an empty
  // one, rebuilds the stores and starts the journal and the consumer.
  static Result<std::unique_ptr<EmbeddedStack>> Open(const Config& config);
  ~EmbeddedStack();

  // Graceful: answer every handed-off order, persist them all, stop threads.
  void Shutdown();

  PurchaseFunnel& funnel() { return *funnel_; }
  Catalog& catalog() { return *catalog_; }
  embedded::SqliteDatabase& database() { return *db_; }
  FunnelMetrics& metrics() { return metrics_; }
  OrderCloser& closer() { return *closer_; }
  std::shared_ptr<const OrderTokens> order_tokens() const { return order_tokens_; }
  WaitingRoomStore& waiting_room() { return waiting_room_; }
  std::shared_ptr<const AdmissionTokens> admission_tokens() const { return admission_tokens_; }

 private:
  EmbeddedStack() = default;
  // Checkpoints the WAL every 100 ms on its own thread, off the commit path.
  static OrderConsumer::Options ConsumerOptions();
  void RunCheckpointer();

  FunnelMetrics metrics_;
  std::unique_ptr<embedded::SqliteDatabase> db_;
  embedded::MemoryStockStore stock_;
  embedded::MemoryWaitingRoom waiting_room_{stock_};  // in memory: reset by a restart
  std::unique_ptr<embedded::MemoryIdempotencyStore> idempotency_;  // asks db_
  embedded::LocalStatusBroadcast broadcast_;
  embedded::JournalOrderSource source_;
  std::unique_ptr<embedded::SqliteOrderJournal> journal_;
  std::unique_ptr<PurchaseFunnel> funnel_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<OrderConsumer> consumer_;
  std::unique_ptr<OrderCloser> closer_;
  std::shared_ptr<const OrderTokens> order_tokens_;
  std::shared_ptr<const AdmissionTokens> admission_tokens_;
  bool shut_down_ = false;
  Mutex checkpoint_mu_;
  CondVar checkpoint_cv_;
  bool stop_checkpointer_ GUARDED_BY(checkpoint_mu_) = false;
  std::thread checkpointer_;
};

}  // namespace flashsale::app
