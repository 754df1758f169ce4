#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <functional>
#include <thread>

#include "commands.hpp"
#include "distributed_stack.hpp"
#include "embedded_stack.hpp"
#include "http/server.hpp"
#include "stop_signals.hpp"

#ifndef FLASHSALE_SWAGGER_UI_DIR
#define FLASHSALE_SWAGGER_UI_DIR "swagger-ui"
#endif

namespace flashsale::app {

int TryLockDatabase(const std::string& sqlite_path) {
  const std::string lock_path = sqlite_path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string CheckBackendSelection(const Config& config) {
  if (!config.redis.empty() && config.kafka.empty()) {
    return "Redis is configured (--redis/REDIS_URL) but Kafka is not: set --kafka or "
           "KAFKA_BOOTSTRAP_SERVERS too, or neither for embedded mode";
  }
  if (config.redis.empty() && !config.kafka.empty()) {
    return "Kafka is configured (--kafka/KAFKA_BOOTSTRAP_SERVERS) but Redis is not: set --redis "
           "or REDIS_URL too, or neither for embedded mode";
  }
  return {};
}

namespace {

// The HTTP server over one stack, until SIGINT/SIGTERM. Returns the exit code.
//
// Shutdown order (why): the server first stops accepting and gives in-flight
// requests the grace period, then closes the connections and joins its
// threads; the Api's blocking pool finishes its jobs; but the server's event
// loops and the Api stay alive while
// `shutdown_backends` flushes the hand-offs: a purchase that outlived the
// grace period completes then, and its answer is posted to a stopped (not
// destroyed) event loop, where it is dropped with its connection when the
// server is destroyed, last.
// What the order lifecycle's routes use (http::ApiOptions).
struct LifecycleWiring {
  OrderLifecycle* lifecycle = nullptr;
  std::shared_ptr<const OrderTokens> tokens;
  std::function<void()> on_closed;
};
// What the waiting room's routes use (http::ApiOptions).
struct AdmissionWiring {
  WaitingRoomStore* waiting_room = nullptr;
  std::shared_ptr<const AdmissionTokens> tokens;
};

int ServeUntilSignalled(const Config& config, const sigset_t& signals, PurchaseFunnel& funnel,
                        Catalog& catalog, OrderRepository& orders, FunnelMetrics& metrics,
                        std::vector<http::ReadinessCheck> checks, const std::string& mode,
                        const std::function<void()>& shutdown_backends,
                        const LifecycleWiring& lifecycle, const AdmissionWiring& admission,
                        std::function<void(boost::asio::io_context&)> on_thread_start = {},
                        std::function<void()> on_thread_stop = {}) {
  if (config.admin_token.empty()) {
    spdlog::warn("no ADMIN_TOKEN configured: the admin API answers 403");
  }
  if (config.payment_webhook_secret.empty()) {
    spdlog::warn("no PAYMENT_WEBHOOK_SECRET configured: POST /orders/{{id}}/pay answers 403");
  }
  http::ApiOptions api_options;
  api_options.admin_token = config.admin_token;
  api_options.version = FLASHSALE_VERSION;
  api_options.swagger_ui_dir = FLASHSALE_SWAGGER_UI_DIR;
  api_options.lifecycle = lifecycle.lifecycle;
  api_options.order_tokens = lifecycle.tokens;
  api_options.payment_webhook_secret = config.payment_webhook_secret;
  api_options.on_order_closed = lifecycle.on_closed;
  const auto limit = [](double rate, std::int64_t burst) {
    return RateLimit{rate, burst > 0 ? burst : std::max<std::int64_t>(1, std::llround(rate))};
  };
  api_options.address_limit = limit(config.rate_limit_address, config.rate_limit_address_burst);
  api_options.user_limit = limit(config.rate_limit_user, config.rate_limit_user_burst);
  // Validated by the flag's check: an error here would be a bug.
  api_options.trusted_proxies = http::TrustedProxies::Parse(config.trusted_proxies).value();
  api_options.rate_limit_slots = static_cast<std::size_t>(config.rate_limit_slots);
  if (api_options.address_limit.enabled() || api_options.user_limit.enabled()) {
    spdlog::info("rate limits (this instance): address {}/s burst {}, user {}/s burst {}",
                 config.rate_limit_address, api_options.address_limit.burst, config.rate_limit_user,
                 api_options.user_limit.burst);
  }
  api_options.waiting_room = admission.waiting_room;
  api_options.admission_tokens = admission.tokens;
  api_options.queue_places_per_address = config.queue_places_per_address;
  http::Api api(funnel, catalog, orders, metrics, std::move(checks), std::move(api_options));
  http::ServerOptions options;
  options.host = config.host;
  options.port = static_cast<std::uint16_t>(config.port);
  options.threads =
      config.threads > 0 ? config.threads : static_cast<int>(std::thread::hardware_concurrency());
  options.max_connections = config.max_connections;
  options.idle_timeout_ms = config.idle_timeout_s * 1000;
  options.request_timeout_ms = config.request_timeout_s * 1000;
  options.shutdown_grace_ms = config.shutdown_grace_s * 1000;
  options.on_thread_start = std::move(on_thread_start);
  options.on_thread_stop = std::move(on_thread_stop);
  http::HttpServer server(api, options);
  if (Status st = server.Start(); !st.ok()) {
    spdlog::error("{}", st.ToString());
    shutdown_backends();
    return 1;
  }
  spdlog::info("flashsale {} listening on {}:{} ({} I/O threads, {})", FLASHSALE_VERSION,
               config.host, server.port(), options.threads, mode);
  WaitForStopSignal(signals, "finishing in-flight requests");
  server.Stop();
  api.StopBlockingWork();
  shutdown_backends();
  return 0;
}

int RunEmbeddedServe(const Config& config) {
  const std::string path = config.SqlitePath();
  if (path.empty()) {
    spdlog::error(
        "--database {}: embedded mode needs sqlite:PATH (PostgreSQL needs distributed "
        "mode: --redis and --kafka)",
        config.database);
    return 2;
  }
  {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  const int lock_fd = TryLockDatabase(path);
  if (lock_fd < 0) {
    spdlog::error("another flashsale server holds {} (lock {}.lock)", path, path);
    return 1;
  }
  const sigset_t signals = BlockStopSignals();
  Result<std::unique_ptr<EmbeddedStack>> stack = EmbeddedStack::Open(config);
  if (!stack) {
    spdlog::error("start-up failed: {}", stack.error().ToString());
    return 1;
  }
  EmbeddedStack& s = **stack;
  std::vector<http::ReadinessCheck> checks;
  checks.push_back({"database", [&s] { return s.database().Ping(); }});
  const int rc =
      ServeUntilSignalled(config, signals, s.funnel(), s.catalog(), s.database(), s.metrics(),
                          std::move(checks), "embedded, database " + path, [&s] { s.Shutdown(); },
                          {&s.database(), s.order_tokens(), [&s] { s.closer().Wake(); }},
                          {&s.waiting_room(), s.admission_tokens()});
  spdlog::info(rc == 0 ? "stopped cleanly" : "stopped");
  spdlog::shutdown();
  ::close(lock_fd);
  return rc;
}

int RunDistributedServe(const Config& config) {
  const sigset_t signals = BlockStopSignals();
  Result<std::unique_ptr<DistributedStack>> stack = DistributedStack::Open(config);
  if (!stack) {
    spdlog::error("start-up failed: {}", stack.error().ToString());
    spdlog::shutdown();
    return 1;
  }
  DistributedStack& s = **stack;
  const int rc = ServeUntilSignalled(
      config, signals, s.funnel(), s.catalog(), s.orders(), s.metrics(), s.ReadinessChecks(),
      s.Describe(), [&s] { s.Shutdown(); }, {s.lifecycle(), s.order_tokens(), {}},
      {&s.waiting_room(), s.admission_tokens()},
      [&s](boost::asio::io_context& io) { s.AttachIoThread(io); }, [&s] { s.DetachIoThread(); });
  stack->reset();  // librdkafka logs while it closes: before the logger goes
  spdlog::info(rc == 0 ? "stopped cleanly" : "stopped");
  spdlog::shutdown();
  return rc;
}

}  // namespace

int RunServe(const Config& config) {
  if (std::string err = CheckBackendSelection(config); !err.empty()) {
    spdlog::error("{}", err);
    return 2;
  }
  return config.Distributed() ? RunDistributedServe(config) : RunEmbeddedServe(config);
}

}  // namespace flashsale::app
