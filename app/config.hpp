#pragma once
// Configuration of every subcommand (SPEC §3): flags override environment
// variables, which override a .env file in the working directory, which
// overrides defaults. Parsed and validated once at start-up.

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/admission.hpp"
#include "core/signatures.hpp"
#include "core/status.hpp"

namespace flashsale::app {

struct LogConfig {
  std::string level = "info";
  std::string dir = "logs";
  std::string file = "app.log";
  // The file rotates when the next line would take it past max_bytes: app.log
  // becomes app.1.log, ...; max_files in all (app.log included), the oldest
  // deleted, so the logs take at most about max_bytes * max_files of disk.
  std::int64_t max_bytes = 100 * 1024 * 1024;
  std::int64_t max_files = 5;
};

struct Config {
  std::string host = "0.0.0.0";
  int port = 8000;
  int threads = 0;  // 0: number of cores
  std::string redis;
  std::string kafka;
  std::string database = "sqlite:data/flashsale.db";
  std::string admin_token;
  // Order lifecycle: the payment service's webhook secret (empty: POST
  // /orders/{id}/pay answers 403), and the secret cancel tokens are derived
  // with (empty: generated once and kept in the database of record, so every
  // instance and every restart agree).
  std::string payment_webhook_secret;
  std::string order_token_secret;
  // Admission control (README "Admission control"): the secret waiting-room
  // tickets and passes are signed with (empty: generated once and kept in the
  // database of record, like the cancel tokens' secret), and how many places
  // one client address may hold in one product's queue (0: no cap).
  std::string waiting_room_secret;
  std::int64_t queue_places_per_address = 5;
  std::optional<std::uint64_t> mock_seed;
  std::int64_t mock_products = 10'000;
  std::string journal_sync = "full";
  std::int64_t max_connections = 100'000;
  std::int64_t idle_timeout_s = 60;
  std::int64_t request_timeout_s = 10;
  std::int64_t shutdown_grace_s = 10;  // SIGTERM: in-flight requests get this long
  std::int64_t l1_ttl_s = 600;
  std::int64_t idempotency_memory_mib = 256;  // cap of the Idempotency-Key store
  // Rate limits (README "Rate limits"), per instance: requests/s and burst
  // per client address and per user_id (rate 0: off; burst 0: the rate,
  // at least 1). The X-Forwarded-For of peers in `trusted_proxies` (CIDR
  // list) names the client. Each limiter's table has `rate_limit_slots`.
  double rate_limit_address = 0;
  std::int64_t rate_limit_address_burst = 0;
  double rate_limit_user = 0;
  std::int64_t rate_limit_user_burst = 0;
  std::string trusted_proxies;
  std::int64_t rate_limit_slots = std::int64_t{1} << 21;
  // Distributed mode.
  std::string topic_prefix;   // put in front of the three topic names
  int redis_connections = 1;  // pipelined connections to Redis per server
  // Reservations through the shared pool too (default: each HTTP I/O thread
  // has its own Redis connection for them, on its own event loop).
  bool redis_shared_connections = false;
  std::int64_t kafka_timeout_ms = 5000;  // a hand-off not delivered by then is refused (503)
  // Producer batching: fewer, larger produce requests. Under load a purchase
  // waits for its batch anyway; 2 ms measured the best trade between CPU per
  // order and the wait at low load (bench/results-distributed-2026-11-25.md).
  int kafka_linger_ms = 2;
  // KEY=VALUE librdkafka properties of the order producer, over its defaults.
  std::vector<std::string> kafka_producer_config;
  std::string consumer_group = "flash_customers_group";
  std::int64_t batch_size = 5000;  // consume: orders per database transaction, at most
  // consume: members of the consumer group in this process, each with its own
  // partitions, thread and database connection (the database's round trips
  // and commits of one overlap the others').
  std::int64_t consumer_workers = 2;
  std::int64_t batch_wait_ms = 20;  // consume: after a short batch, wait for more
  // consume: added to --kafka-timeout-ms to make the hand-off timeout of the
  // stranded-reservation sweep (the gap between a reservation and its
  // produce call, a request on the wire at the deadline, clock skew).
  std::int64_t stranded_margin_ms = 2000;
  std::int64_t repair_grace_s = 600;  // audit --repair: leave younger reservations alone
  bool drain = false;                 // consume: exit once the topic stays empty for 2 s
  LogConfig log;

  // The SQLite path of --database; empty when it is not sqlite:.
  [[nodiscard]] std::string SqlitePath() const;
  // --database is postgresql:// or postgres://.
  [[nodiscard]] bool IsPostgres() const;
  [[nodiscard]] bool Distributed() const { return !redis.empty() && !kafka.empty(); }
};

// The cancel tokens' secret: --order-token-secret / ORDER_TOKEN_SECRET, or
// else the one `kept_secret` keeps in the database of record (generated on
// first use), so every instance and restart derive the same tokens.
Result<std::shared_ptr<const OrderTokens>> MakeOrderTokens(
    const Config& config,
    const std::function<Result<std::string>(std::string_view name)>& kept_secret);

// The waiting room's signing secret: --waiting-room-secret /
// WAITING_ROOM_SECRET, or else the one kept in the database of record.
Result<std::shared_ptr<const AdmissionTokens>> MakeAdmissionTokens(
    const Config& config,
    const std::function<Result<std::string>(std::string_view name)>& kept_secret);

// Reads ./.env into the environment without overriding variables already set
// (python-dotenv's default).
void LoadDotEnv(const std::string& path = ".env");

// Redis settings from REDIS_URL or REDIS_HOST/PORT/DB/PASSWORD (the seed's names).
std::string RedisFromEnvironment();

// Options shared by subcommands.
void AddDatabaseOption(CLI::App& app, Config& c);
void AddBackendOptions(CLI::App& app, Config& c);
void AddLogOptions(CLI::App& app, Config& c);
void AddServeOptions(CLI::App& app, Config& c);
void AddRateLimitOptions(CLI::App& app, Config& c);  // part of serve's
void AddConsumeOptions(CLI::App& app, Config& c);

// Sets up spdlog: stderr and LOG_DIR/LOG_FILE (rotated by size), asynchronous
// so I/O threads never wait for the disk.
void SetUpLogging(const LogConfig& log);

}  // namespace flashsale::app
