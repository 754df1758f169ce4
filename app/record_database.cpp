#include "record_database.hpp"

#include <algorithm>
#include <filesystem>

#include "backends/embedded/sqlite_database.hpp"
#include "backends/postgres/pg_database.hpp"

namespace flashsale::app {
namespace {

// Forwards to a concrete database; both have the same method names.
template <class Db>
class RecordDatabaseOf final : public RecordDatabase {
 public:
  RecordDatabaseOf(std::unique_ptr<Db> db, std::string description)
      : db_(std::move(db)), description_(std::move(description)) {}

  Status UpsertProduct(const Product& p) override { return db_->UpsertProduct(p); }
  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override {
    return db_->PersistBatch(orders);
  }
  Result<std::optional<Order>> FindOrder(const OrderId& id) override { return db_->FindOrder(id); }
  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override {
    return db_->OrdersOfUser(user, limit);
  }
  Result<std::vector<Product>> LoadProducts() override { return db_->LoadProducts(); }
  Result<std::vector<SoldUnits>> LoadSoldUnits() override { return db_->LoadSoldUnits(); }
  Result<std::vector<Order>> LoadAllOrders() override { return db_->LoadAllOrders(); }
  Result<std::vector<Order>> LoadUnreturnedClosed() override { return db_->LoadUnreturnedClosed(); }
  Result<std::optional<Order>> FindOrderByIdempotencyKey(std::string_view key) override {
    return db_->FindOrderByIdempotencyKey(key);
  }
  Status InsertProducts(const std::vector<Product>& products, bool overwrite,
                        std::int64_t* inserted) override {
    return db_->InsertProducts(products, overwrite, inserted);
  }
  Result<PaymentDecision> Pay(const Payment& payment,
                              const std::optional<Order>& in_flight) override {
    return db_->Pay(payment, in_flight);
  }
  Result<CancelDecision> Cancel(const OrderId& id, UnixMillis now) override {
    return db_->Cancel(id, now);
  }
  Result<std::int64_t> ExpireDue(UnixMillis now, std::int64_t max) override {
    return db_->ExpireDue(now, max);
  }
  Result<std::optional<UnixMillis>> NextPayBy() override { return db_->NextPayBy(); }
  Result<std::int64_t> ReturnClosedUnits(std::int64_t max, const GiveBack& give_back) override {
    return db_->ReturnClosedUnits(max, give_back);
  }
  Result<std::string> SharedSecret(std::string_view name) override {
    return db_->SharedSecret(name);
  }
  Status Ping() override { return db_->Ping(); }
  [[nodiscard]] std::string Describe() const override { return description_; }

 private:
  std::unique_ptr<Db> db_;
  const std::string description_;
};

// The URL without its password, for logs.
std::string Redacted(const std::string& url) {
  const std::size_t scheme = url.find("://");
  const std::size_t at = url.rfind('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const std::size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

}  // namespace

Result<std::unique_ptr<RecordDatabase>> RecordDatabase::Open(const Config& config) {
  if (config.IsPostgres()) {
    postgres::PgDatabase::Options o;
    o.url = config.database;
    // One connection per consumer worker, plus room for the other callers.
    o.pool_size = std::max(o.pool_size, static_cast<int>(config.consumer_workers) + 1);
    auto db = postgres::PgDatabase::Open(o);
    if (!db) return db.error();
    return std::unique_ptr<RecordDatabase>(
        new RecordDatabaseOf<postgres::PgDatabase>(std::move(*db), Redacted(config.database)));
  }
  const std::string path = config.SqlitePath();
  if (path.empty()) {
    return Status::Invalid("--database " + config.database +
                           ": expected postgresql://... or sqlite:PATH");
  }
  {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  auto db = embedded::SqliteDatabase::Open({path, config.journal_sync == "normal"
                                                      ? embedded::JournalSync::kNormal
                                                      : embedded::JournalSync::kFull});
  if (!db) return db.error();
  return std::unique_ptr<RecordDatabase>(
      new RecordDatabaseOf<embedded::SqliteDatabase>(std::move(*db), "sqlite:" + path));
}

}  // namespace flashsale::app
