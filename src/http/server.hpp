#pragma once
// HttpServer: the lean HTTP/1.1 front end on Boost.Asio. One io_context and
// one thread per worker (default: one per core), each with its own
// SO_REUSEPORT acceptor, so the kernel spreads connections and a connection
// lives on one thread for life (no locks on its state). Connections reuse
// their read and write buffers, parse pipelined requests in a loop and write
// all their replies together.
//
// Limits (SPEC §4): idle keep-alive connections close after idle_timeout;
// a request whose header or body takes longer than request_timeout to arrive
// is answered 408 and closed; beyond max_connections new ones are refused.
//
// Thread safety: Start/Stop/Port from the owner thread only.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.hpp"
#include "http/api.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace flashsale::http {

struct ServerOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8000;
  int threads = 1;
  std::int64_t max_connections = 100'000;
  std::int64_t idle_timeout_ms = 60'000;
  std::int64_t request_timeout_ms = 10'000;
  std::int64_t shutdown_grace_ms = 10'000;  // in-flight requests get this long on Stop()
  // Run on each worker thread just before its event loop starts, and just
  // after it ended (e.g. a backend connection per I/O thread, on that
  // thread's io_context). Either may be empty.
  std::function<void(boost::asio::io_context&)> on_thread_start;
  std::function<void()> on_thread_stop;
};

class Worker;

class HttpServer {
 public:
  HttpServer(Api& api, ServerOptions options);
  ~HttpServer();

  // Binds and starts the worker threads. Unavailable if the address is taken.
  Status Start();
  // Graceful: stop accepting, let in-flight requests finish (bounded by
  // shutdown_grace_ms), close every connection, join the threads. The event
  // loops live on until the destructor: a deferred answer (a purchase whose
  // hand-off outlived the grace period) delivered after Stop() is posted to a
  // stopped loop and dropped with its connection, so flush the backends
  // between Stop() and destruction.
  void Stop();
  [[nodiscard]] std::uint16_t port() const { return bound_port_; }

 private:
  Api& api_;
  const ServerOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<std::int64_t> connections_{0};
  std::uint16_t bound_port_ = 0;
  bool stopped_ = false;
};

}  // namespace flashsale::http
