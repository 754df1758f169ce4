#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "commands.hpp"
#include "embedded_stack.hpp"
#include "http/server.hpp"

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
  if (!config.redis.empty()) {
    return "distributed mode (Redis + Kafka) is not available in this build yet; unset --redis "
           "and --kafka to run embedded";
  }
  return {};
}

int RunServe(const Config& config) {
  if (std::string err = CheckBackendSelection(config); !err.empty()) {
    spdlog::error("{}", err);
    return 2;
  }
  const std::string path = config.SqlitePath();
  if (path.empty()) {
    spdlog::error("--database {}: embedded mode needs sqlite:PATH", config.database);
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

  // Signals are taken by this thread only (sigwait below), never by workers.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Result<std::unique_ptr<EmbeddedStack>> stack = EmbeddedStack::Open(config);
  if (!stack) {
    spdlog::error("start-up failed: {}", stack.error().ToString());
    return 1;
  }
  if (config.admin_token.empty()) {
    spdlog::warn("no ADMIN_TOKEN configured: the admin API answers 403");
  }
  EmbeddedStack& s = **stack;
  std::vector<http::ReadinessCheck> checks;
  checks.push_back({"database", [&s] {
                      Result<std::optional<Order>> r = s.database().FindOrder(OrderId());
                      return r ? Status::Ok() : r.error();
                    }});
  http::Api api(s.funnel(), s.catalog(), s.database(), s.metrics(), std::move(checks),
                {config.admin_token, FLASHSALE_VERSION, FLASHSALE_SWAGGER_UI_DIR});
  http::ServerOptions options;
  options.host = config.host;
  options.port = static_cast<std::uint16_t>(config.port);
  options.threads =
      config.threads > 0 ? config.threads : static_cast<int>(std::thread::hardware_concurrency());
  options.max_connections = config.max_connections;
  options.idle_timeout_ms = config.idle_timeout_s * 1000;
  options.request_timeout_ms = config.request_timeout_s * 1000;
  http::HttpServer server(api, options);
  if (Status st = server.Start(); !st.ok()) {
    spdlog::error("{}", st.ToString());
    return 1;
  }
  spdlog::info("flashsale {} listening on {}:{} ({} I/O threads, embedded, database {})",
               FLASHSALE_VERSION, config.host, server.port(), options.threads, path);

  siginfo_t info{};
  while (sigwaitinfo(&signals, &info) < 0) {
  }
  spdlog::warn("received {} from pid {}: stopping (finishing in-flight requests)",
               info.si_signo == SIGINT ? "SIGINT" : "SIGTERM", info.si_pid);
  server.Stop();
  s.Shutdown();
  spdlog::info("stopped cleanly");
  spdlog::shutdown();
  ::close(lock_fd);
  return 0;
}

}  // namespace flashsale::app
