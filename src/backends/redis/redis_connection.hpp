#pragma once
// RedisConnection: one pipelined connection to a Redis server over a Boost.Asio
// TCP socket. Commands are encoded here (RESP arrays of bulk strings) and
// replies parsed with hiredis' redisReader; hiredis does no I/O here.
//
// Pipelining: every command queued while the socket is idle (or while a write
// is in progress) goes out in ONE async_write; replies are matched to the
// callbacks in FIFO order (Redis answers in order on one connection).
//
// Failures, answered as a non-OK Status in the callback:
//   * no reply within Options::timeout -> Status::Unknown (the command may have
//     run); the connection is then closed, since FIFO matching is lost, and
//     every other in-flight command is answered Unknown too;
//   * connect/read/write error -> Status::Unavailable for commands never
//     written, Status::Unknown for commands written but not answered;
//   * after an error the next request reconnects, but not before a backoff
//     (Options::min_backoff doubling up to max_backoff, reset on success);
//     requests arriving during the backoff are answered Unavailable at once.
//   A Redis error reply (-ERR ...) is NOT a failure of the connection: it is an
//   OK result holding a RedisValue of type kError.
//
// Thread safety: Send() and BatchesWritten() may be called from any thread.
// All socket work runs on a strand of the given io_context, and callbacks run
// there too: they must not block (never wait on another Send() inside one).
// REQUIRES: the io_context has stopped running (or its run() returned) before
// the connection is destroyed; handlers still queued then are never invoked.

#include <hiredis/hiredis.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.hpp"

namespace flashsale::redis {

// A parsed reply, detached from hiredis' memory.
struct RedisValue {
  enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string str;                   // kString, kStatus, kError
  std::int64_t integer = 0;          // kInteger
  std::vector<RedisValue> elements;  // kArray

  [[nodiscard]] bool IsError() const { return type == Type::kError; }
};

// Anything that sends commands: one connection or a pool of them.
class RedisCommander {
 public:
  using Callback = std::function<void(Result<RedisValue>)>;
  virtual ~RedisCommander() = default;
  // Queues one command (argv[0] is the command name; encoded before Send
  // returns, so `argv` is not kept); `done` runs exactly once, on an I/O thread
  // of the connection: it must not block.
  virtual void Send(const std::vector<std::string>& argv, Callback done) = 0;
};

class RedisConnection final : public RedisCommander {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::chrono::milliseconds timeout{1000};  // per request, from Send() to its reply
    std::chrono::milliseconds min_backoff{50};
    std::chrono::milliseconds max_backoff{1000};
    // Writes (batches of pipelined commands) awaiting their replies before the
    // next write waits: while Redis works on one batch, everything sent
    // meanwhile is gathered into the next. Under load that turns thousands of
    // tiny writes (each one a read, an event-loop turn and an AOF write in
    // Redis) into a few large ones; when idle, a command still goes out at once.
    // 0 = no limit (every command written as soon as the socket is free).
    int max_batches_in_flight = 2;
    // Sent first on every new connection, before anything queued (AUTH,
    // SELECT, SCRIPT LOAD ...). An error reply fails the connection.
    std::vector<std::vector<std::string>> on_connect;
  };

  RedisConnection(boost::asio::io_context& io, Options options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Queues one command (argv[0] is the command name); `done` runs exactly once
  // on the connection's strand.
  void Send(const std::vector<std::string>& argv, Callback done) override;

  // Number of async_write calls issued so far (each carries one or more
  // commands): with concurrent callers this stays well below the commands sent.
  [[nodiscard]] std::uint64_t BatchesWritten() const { return batches_written_.load(); }
  [[nodiscard]] std::uint64_t CommandsWritten() const { return commands_written_.load(); }

 private:
  struct Request {
    std::string encoded;
    Callback done;
    std::chrono::steady_clock::time_point deadline;
  };
  enum class State { kDisconnected, kConnecting, kConnected };

  // All below run on strand_.
  void Enqueue(Request req);
  void Connect();
  void ConnectTo(const boost::asio::ip::tcp::endpoint& endpoint);
  void StartWrite();
  void StartRead();
  void ArmTimer();
  void OnTimer();
  // Closes the socket and answers everything pending; sets the backoff.
  void Fail(const Status& unwritten, const Status& written);

  // Constant after construction.
  const Options options_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;

  // State below is touched only on strand_.
  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::resolver resolver_;  // host names only; cancelled by Fail()
  boost::asio::steady_timer timer_;
  State state_ = State::kDisconnected;
  std::uint64_t generation_ = 0;  // bumped on every close: stale handlers ignore themselves
  bool writing_ = false;
  std::deque<Request> queued_;     // not yet written
  std::deque<Request> in_flight_;  // written (or being written), awaiting replies, FIFO
  // Commands of each written batch still awaiting replies, oldest first (sum =
  // in_flight_.size()); its length is what max_batches_in_flight bounds.
  std::deque<std::size_t> batches_in_flight_;
  std::string write_buffer_;
  std::vector<char> read_buffer_;
  std::unique_ptr<redisReader, void (*)(redisReader*)> reader_;
  std::chrono::steady_clock::time_point next_connect_at_{};
  std::chrono::milliseconds backoff_;

  std::atomic<std::uint64_t> batches_written_{0};
  std::atomic<std::uint64_t> commands_written_{0};
};

// A few connections used round robin: commands of concurrent requests are
// pipelined on each, and one slow reply does not hold up every request.
// Thread safety: Send() from any thread.
class RedisPool final : public RedisCommander {
 public:
  RedisPool(boost::asio::io_context& io, const RedisConnection::Options& options, int connections);
  void Send(const std::vector<std::string>& argv, Callback done) override;
  [[nodiscard]] std::uint64_t CommandsWritten() const;
  [[nodiscard]] std::uint64_t BatchesWritten() const;

 private:
  std::vector<std::unique_ptr<RedisConnection>> connections_;
  std::atomic<std::uint64_t> next_{0};
};

// One RedisConnection per I/O thread that attaches itself, on that thread's own
// io_context: a command sent from such a thread is written, and its reply read
// and answered, by the same event loop, with no hand-over to another thread
// (the purchase path: HTTP worker -> Redis -> Kafka hand-off, all on one
// thread). Blocking calls must not use it: the thread waiting would be the one
// that has to read the reply.
// Thread safety: Attach/Detach on the thread concerned; Current() from any thread.
class ThreadLocalRedis {
 public:
  explicit ThreadLocalRedis(RedisConnection::Options options) : options_(std::move(options)) {}
  ~ThreadLocalRedis();
  ThreadLocalRedis(const ThreadLocalRedis&) = delete;
  ThreadLocalRedis& operator=(const ThreadLocalRedis&) = delete;

  // On the I/O thread, before `io` runs: creates its connection (connected on
  // first use).
  void AttachThisThread(boost::asio::io_context& io);
  // On the same thread, after `io` stopped running: drops its connection.
  void DetachThisThread();
  // The calling thread's connection, or nullptr if it has none.
  [[nodiscard]] RedisConnection* Current() const;

 private:
  const RedisConnection::Options options_;
};

// Where a redis:// URL points: redis://[[user]:password@]host[:port][/db].
struct RedisAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string password;
  int db = 0;
};
Result<RedisAddress> ParseRedisUrl(std::string_view url);
// Connection options for `address`: AUTH and SELECT on connect when needed.
RedisConnection::Options OptionsFor(const RedisAddress& address);

}  // namespace flashsale::redis
