#include "config.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "http/client_address.hpp"

namespace flashsale::app {

std::string Config::SqlitePath() const {
  constexpr std::string_view kPrefix = "sqlite:";
  if (!database.starts_with(kPrefix)) return {};
  std::string path = database.substr(kPrefix.size());
  if (path.starts_with("//")) path = path.substr(2);  // sqlite:///abs/path
  return path;
}

bool Config::IsPostgres() const {
  return database.starts_with("postgresql://") || database.starts_with("postgres://");
}

void LoadDotEnv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    line = line.substr(first);
    if (line.starts_with("export ")) line = line.substr(7);
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    std::string value = line.substr(eq + 1);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    const std::size_t vfirst = value.find_first_not_of(" \t");
    value = vfirst == std::string::npos ? "" : value.substr(vfirst);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    } else if (const std::size_t hash = value.find(" #"); hash != std::string::npos) {
      value = value.substr(0, hash);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    }
    ::setenv(key.c_str(), value.c_str(), /*overwrite=*/0);
  }
}

std::string RedisFromEnvironment() {
  if (const char* url = std::getenv("REDIS_URL"); url != nullptr && *url != '\0') return url;
  const char* host = std::getenv("REDIS_HOST");
  if (host == nullptr || *host == '\0') return {};
  const char* port = std::getenv("REDIS_PORT");
  const char* db = std::getenv("REDIS_DB");
  const char* password = std::getenv("REDIS_PASSWORD");
  std::string url = "redis://";
  if (password != nullptr && *password != '\0') url += std::string(":") + password + "@";
  url += std::string(host) + ":" + (port != nullptr && *port != '\0' ? port : "6379");
  url += std::string("/") + (db != nullptr && *db != '\0' ? db : "0");
  return url;
}

void AddDatabaseOption(CLI::App& app, Config& c) {
  app.add_option("--database", c.database, "postgresql://... or sqlite:PATH")
      ->envname("DATABASE_URL")
      ->capture_default_str();
}

void AddBackendOptions(CLI::App& app, Config& c) {
  c.redis = RedisFromEnvironment();
  app.add_option("--redis", c.redis, "redis://[:password@]host:port/db (distributed mode)");
  app.add_option("--kafka", c.kafka, "host:port[,host:port] (distributed mode)")
      ->envname("KAFKA_BOOTSTRAP_SERVERS");
  app.add_option("--topic-prefix", c.topic_prefix,
                 "put in front of the Kafka topic names (product_orders, ...)")
      ->envname("FLASHSALE_TOPIC_PREFIX");
  AddDatabaseOption(app, c);
}

void AddConsumeOptions(CLI::App& app, Config& c) {
  app.add_option("--group", c.consumer_group, "Kafka consumer group")
      ->envname("FLASHSALE_CONSUMER_GROUP")
      ->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "orders per database transaction, at most")
      ->envname("FLASHSALE_BATCH_SIZE")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000}))
      ->capture_default_str();
  app.add_option("--workers", c.consumer_workers,
                 "consumers of the group in this process (each: own partitions, thread, "
                 "database connection)")
      ->envname("FLASHSALE_CONSUMER_WORKERS")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{64}))
      ->capture_default_str();
  app.add_option("--kafka-timeout-ms", c.kafka_timeout_ms,
                 "the API instances' hand-off timeout (serve's --kafka-timeout-ms; not lower): "
                 "the stranded-reservation sweep waits this + --stranded-margin-ms")
      ->envname("FLASHSALE_KAFKA_TIMEOUT_MS")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{300'000}))
      ->capture_default_str();
  app.add_option("--stranded-margin-ms", c.stranded_margin_ms,
                 "consume: a reservation never handed off is returned once every partition is "
                 "persisted past its creation + --kafka-timeout-ms (the API's, at least) + this")
      ->envname("FLASHSALE_STRANDED_MARGIN_MS")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3'600'000}))
      ->capture_default_str();
  app.add_flag("--drain", c.drain,
               "persist what the topic holds, then exit (2 s without new orders); "
               "prints the rate");
  app.add_option("--batch-wait-ms", c.batch_wait_ms, "after a short batch, wait this long")
      ->envname("FLASHSALE_BATCH_WAIT_MS")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000}))
      ->capture_default_str();
}

void AddLogOptions(CLI::App& app, Config& c) {
  if (const char* level = std::getenv("LOG_LEVEL"); level != nullptr && *level != '\0') {
    c.log.level = level;
    for (char& ch : c.log.level) ch = static_cast<char>(std::tolower(ch));
  }
  app.add_option("--log-level", c.log.level, "trace, debug, info, warn, error (env LOG_LEVEL)")
      ->check(
          CLI::IsMember({"trace", "debug", "info", "warn", "warning", "error", "critical", "off"},
                        CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--log-dir", c.log.dir, "log folder")->envname("LOG_DIR")->capture_default_str();
  app.add_option("--log-file", c.log.file, "log file name")
      ->envname("LOG_FILE")
      ->capture_default_str();
  app.add_option("--log-max-bytes", c.log.max_bytes,
                 "the log file rotates before it grows past this many bytes")
      ->envname("LOG_MAX_BYTES")
      ->check(CLI::Range(std::int64_t{1024}, std::int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--log-max-files", c.log.max_files,
                 "log files kept, the current one included (the oldest is deleted)")
      ->envname("LOG_MAX_FILES")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1000}))
      ->capture_default_str();
}

namespace {

// `configured` when set, else the secret `name` kept in the database of record.
template <class Tokens>
Result<std::shared_ptr<const Tokens>> TokensFromSecret(
    const std::string& configured, std::string_view name,
    const std::function<Result<std::string>(std::string_view name)>& kept_secret) {
  if (!configured.empty()) return std::make_shared<const Tokens>(configured);
  Result<std::string> kept = kept_secret(name);
  if (!kept) return kept.error();
  return std::make_shared<const Tokens>(*kept);
}

}  // namespace

Result<std::shared_ptr<const OrderTokens>> MakeOrderTokens(
    const Config& config,
    const std::function<Result<std::string>(std::string_view name)>& kept_secret) {
  return TokensFromSecret<OrderTokens>(config.order_token_secret, "order_token_secret",
                                       kept_secret);
}

Result<std::shared_ptr<const AdmissionTokens>> MakeAdmissionTokens(
    const Config& config,
    const std::function<Result<std::string>(std::string_view name)>& kept_secret) {
  return TokensFromSecret<AdmissionTokens>(config.waiting_room_secret, "waiting_room_secret",
                                           kept_secret);
}

void AddRateLimitOptions(CLI::App& app, Config& c) {
  const auto rate = CLI::Range(0.0, 1'000'000.0);
  const auto burst = CLI::Range(std::int64_t{1}, std::int64_t{1'000'000});
  CLI::Option* address =
      app.add_option("--rate-limit-address", c.rate_limit_address,
                     "POST /purchase (and queue joins) per client address: requests/s this "
                     "instance allows (0: no limit; over it: 429 with Retry-After)")
          ->envname("FLASHSALE_RATE_LIMIT_ADDRESS")
          ->check(rate)
          ->capture_default_str();
  app.add_option("--rate-limit-address-burst", c.rate_limit_address_burst,
                 "requests one address may send at once (default: the rate, at least 1)")
      ->envname("FLASHSALE_RATE_LIMIT_ADDRESS_BURST")
      ->check(burst)
      ->needs(address);
  CLI::Option* user = app.add_option("--rate-limit-user", c.rate_limit_user,
                                     "POST /purchase per user_id: requests/s this instance "
                                     "allows (0: no limit)")
                          ->envname("FLASHSALE_RATE_LIMIT_USER")
                          ->check(rate)
                          ->capture_default_str();
  app.add_option("--rate-limit-user-burst", c.rate_limit_user_burst,
                 "requests one user may send at once (default: the rate, at least 1)")
      ->envname("FLASHSALE_RATE_LIMIT_USER_BURST")
      ->check(burst)
      ->needs(user);
  app.add_option("--trusted-proxies", c.trusted_proxies,
                 "CIDR list of load balancers whose X-Forwarded-For names the client, e.g. "
                 "127.0.0.1,10.0.0.0/8,::1 (unset: the TCP peer is the client)")
      ->envname("FLASHSALE_TRUSTED_PROXIES")
      ->check(
          [](const std::string& list) -> std::string {
            Result<http::TrustedProxies> parsed = http::TrustedProxies::Parse(list);
            return parsed ? std::string() : parsed.error().message();
          },
          "CIDR,...");
  app.add_option("--rate-limit-slots", c.rate_limit_slots,
                 "buckets each rate limit keeps at most (16 bytes each, touched as used); "
                 "beyond, the stalest is forgotten")
      ->envname("FLASHSALE_RATE_LIMIT_SLOTS")
      ->check(CLI::Range(std::int64_t{1024}, std::int64_t{1} << 30))
      ->capture_default_str();
}

void AddServeOptions(CLI::App& app, Config& c) {
  app.add_option("--host", c.host, "listen address")->envname("HOST")->capture_default_str();
  app.add_option("--port", c.port, "listen port (0: any free port)")
      ->envname("PORT")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--threads", c.threads, "I/O threads (default: number of cores)")
      ->envname("FLASHSALE_THREADS")
      ->check(CLI::Range(0, 256));
  app.add_option("--admin-token", c.admin_token, "bearer token of the admin API")
      ->envname("ADMIN_TOKEN");
  app.add_option("--payment-webhook-secret", c.payment_webhook_secret,
                 "HMAC-SHA256 secret of POST /orders/{id}/pay (unset: the route answers 403)")
      ->envname("PAYMENT_WEBHOOK_SECRET");
  app.add_option("--order-token-secret", c.order_token_secret,
                 "secret of the buyers' cancel tokens (unset: generated once, kept in the "
                 "database)")
      ->envname("ORDER_TOKEN_SECRET");
  app.add_option("--waiting-room-secret", c.waiting_room_secret,
                 "HMAC-SHA256 secret of waiting-room tickets and passes (unset: generated once, "
                 "kept in the database; every instance must share it)")
      ->envname("WAITING_ROOM_SECRET");
  app.add_option("--queue-places-per-address", c.queue_places_per_address,
                 "places one client address may hold in one product's waiting room (0: no cap)")
      ->envname("QUEUE_PLACES_PER_ADDRESS")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000}))
      ->capture_default_str();
  app.add_option("--mock-seed", c.mock_seed, "random seed of the mock catalog")
      ->envname("FLASHSALE_MOCK_SEED");
  app.add_option("--mock-products", c.mock_products,
                 "mock products loaded into an empty catalog (0: none)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--journal-sync", c.journal_sync, "full (fsync per group commit) or normal")
      ->envname("FLASHSALE_JOURNAL_SYNC")
      ->check(CLI::IsMember({"full", "normal"}))
      ->capture_default_str();
  app.add_option("--max-connections", c.max_connections, "connections beyond this are refused")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--idle-timeout", c.idle_timeout_s, "seconds before an idle connection closes")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86'400}))
      ->capture_default_str();
  app.add_option("--request-timeout", c.request_timeout_s,
                 "seconds a request's header and body may take to arrive")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3'600}))
      ->capture_default_str();
  app.add_option("--shutdown-grace", c.shutdown_grace_s,
                 "seconds in-flight requests get to be answered after SIGTERM/SIGINT")
      ->envname("FLASHSALE_SHUTDOWN_GRACE")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3'600}))
      ->capture_default_str();
  app.add_option("--l1-ttl", c.l1_ttl_s, "seconds the local sold-out cache remembers")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86'400}))
      ->capture_default_str();
  app.add_option("--idempotency-memory-mib", c.idempotency_memory_mib,
                 "memory the Idempotency-Key answers may take (MiB); over it the oldest "
                 "refusals are forgotten first, then the oldest accepted answers (still answered "
                 "from their orders)")
      ->envname("FLASHSALE_IDEMPOTENCY_MEMORY_MIB")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30))
      ->capture_default_str();
  AddRateLimitOptions(app, c);
  app.add_option("--redis-connections", c.redis_connections,
                 "pipelined Redis connections shared by admin calls, idempotency keys and "
                 "(with --redis-shared-connections) reservations (distributed mode)")
      ->envname("FLASHSALE_REDIS_CONNECTIONS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_flag("--redis-shared-connections", c.redis_shared_connections,
               "reservations use the shared connections too, instead of one Redis connection "
               "per I/O thread on that thread's event loop (distributed mode)")
      ->envname("FLASHSALE_REDIS_SHARED_CONNECTIONS");
  app.add_option("--kafka-timeout-ms", c.kafka_timeout_ms,
                 "a hand-off Kafka has not confirmed by then is refused with 503 (distributed)")
      ->envname("FLASHSALE_KAFKA_TIMEOUT_MS")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{300'000}))
      ->capture_default_str();
  app.add_option("--kafka-linger-ms", c.kafka_linger_ms,
                 "how long the Kafka producer gathers orders into one request (distributed)")
      ->envname("FLASHSALE_KAFKA_LINGER_MS")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--kafka-producer-config", c.kafka_producer_config,
                 "KEY=VALUE librdkafka property of the order producer, over flashsale's "
                 "defaults (repeatable; env: comma-separated), e.g. "
                 "queue.buffering.max.messages=100000 (distributed)")
      ->envname("FLASHSALE_KAFKA_PRODUCER_CONFIG")
      ->delimiter(',')
      ->check(
          [](const std::string& kv) -> std::string {
            const std::size_t eq = kv.find('=');
            return eq == std::string::npos || eq == 0 ? "expected KEY=VALUE, got '" + kv + "'"
                                                      : std::string();
          },
          "KEY=VALUE");
  AddBackendOptions(app, c);
  AddLogOptions(app, c);
}

void SetUpLogging(const LogConfig& log) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!log.dir.empty() && !log.file.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(log.dir, ec);
    try {
      // spdlog's max_files counts the rotated files only.
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          (std::filesystem::path(log.dir) / log.file).string(),
          static_cast<std::size_t>(log.max_bytes), static_cast<std::size_t>(log.max_files - 1)));
    } catch (const spdlog::spdlog_ex& e) {
      std::fprintf(stderr, "flashsale: cannot open log file: %s\n", e.what());
    }
  }
  spdlog::init_thread_pool(16384, 1);
  // overrun_oldest: under a log storm, drop old lines rather than block a request.
  auto logger = std::make_shared<spdlog::async_logger>(
      "flashsale", sinks.begin(), sinks.end(), spdlog::thread_pool(),
      spdlog::async_overflow_policy::overrun_oldest);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log.level == "warning" ? "warn" : log.level));
  spdlog::flush_on(spdlog::level::warn);
  spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace flashsale::app
