#include "backends/redis/redis_connection.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <utility>

#include "core/numbers.hpp"

namespace flashsale::redis {
namespace {

RedisValue Convert(const redisReply& r) {
  RedisValue v;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      v.type = RedisValue::Type::kString;
      v.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = RedisValue::Type::kStatus;
      v.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = RedisValue::Type::kError;
      v.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = RedisValue::Type::kInteger;
      v.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = RedisValue::Type::kArray;
      v.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) v.elements.push_back(Convert(*r.element[i]));
      break;
    default:  // REDIS_REPLY_NIL
      v.type = RedisValue::Type::kNil;
      break;
  }
  return v;
}

// RESP array of bulk strings, written straight into one right-sized string
// (this runs once per command on the purchase path).
std::string Encode(const std::vector<std::string>& argv) {
  std::size_t size = 16;
  for (const std::string& a : argv) size += a.size() + 24;
  std::string out;
  out.reserve(size);
  out += '*';
  out += std::to_string(argv.size());
  out += "\r\n";
  for (const std::string& a : argv) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out += a;
    out += "\r\n";
  }
  return out;
}

}  // namespace

RedisConnection::RedisConnection(boost::asio::io_context& io, Options options)
    : options_(std::move(options)),
      strand_(boost::asio::make_strand(io)),
      socket_(strand_),
      resolver_(strand_),
      timer_(strand_),
      read_buffer_(16 * 1024),
      reader_(nullptr, &redisReaderFree),
      backoff_(options_.min_backoff) {}

RedisConnection::~RedisConnection() = default;

void RedisConnection::Send(const std::vector<std::string>& argv, Callback done) {
  Request req{Encode(argv), std::move(done), std::chrono::steady_clock::now() + options_.timeout};
  boost::asio::post(strand_, [this, req = std::move(req)]() mutable { Enqueue(std::move(req)); });
}

void RedisConnection::Enqueue(Request req) {
  switch (state_) {
    case State::kConnected:
      queued_.push_back(std::move(req));
      StartWrite();
      return;
    case State::kConnecting:
      queued_.push_back(std::move(req));
      return;
    case State::kDisconnected:
      if (std::chrono::steady_clock::now() < next_connect_at_) {
        req.done(Status::Unavailable("redis: reconnect backing off after an error"));
        return;
      }
      queued_.push_back(std::move(req));
      Connect();
      return;
  }
}

void RedisConnection::Connect() {
  state_ = State::kConnecting;
  reader_.reset(redisReaderCreate());
  FLASHSALE_CHECK(reader_ != nullptr, "redisReaderCreate failed");
  ArmTimer();  // resolve and connect count against the first request's deadline
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(options_.host, ec);
  if (!ec) {
    ConnectTo(boost::asio::ip::tcp::endpoint(address, options_.port));  // numeric: no lookup
    return;
  }
  // A host name (e.g. "redis" in Docker Compose): resolved on every
  // (re)connect, so a moved server is found again. Asynchronously: a lookup
  // can take seconds (a slow or unreachable DNS server), and this strand
  // answers every command of the connection (with per-thread connections it
  // is an HTTP event loop). asio runs getaddrinfo on a thread of its own; the
  // request timer still bounds the wait, and Fail() cancels the lookup.
  const std::uint64_t gen = generation_;
  resolver_.async_resolve(
      options_.host, std::to_string(options_.port),
      boost::asio::bind_executor(
          strand_, [this, gen](const boost::system::error_code& err,
                               const boost::asio::ip::tcp::resolver::results_type& results) {
            if (gen != generation_) return;  // timed out meanwhile: already answered
            if (err || results.empty()) {
              Fail(Status::Unavailable("redis: cannot resolve " + options_.host +
                                       (err ? ": " + err.message() : std::string())),
                   Status::Unknown(""));
              return;
            }
            ConnectTo(results.begin()->endpoint());
          }));
}

void RedisConnection::ConnectTo(const boost::asio::ip::tcp::endpoint& endpoint) {
  const std::uint64_t gen = generation_;
  socket_.async_connect(
      endpoint,
      boost::asio::bind_executor(strand_, [this, gen](const boost::system::error_code& err) {
        if (gen != generation_) return;
        if (err) {
          Fail(Status::Unavailable("redis: connect to " + options_.host + ":" +
                                   std::to_string(options_.port) + ": " + err.message()),
               Status::Unknown("redis: connect failed"));
          return;
        }
        socket_.set_option(boost::asio::ip::tcp::no_delay(true));
        state_ = State::kConnected;
        backoff_ = options_.min_backoff;
        // The hand-shake goes out first, ahead of everything queued.
        for (auto it = options_.on_connect.rbegin(); it != options_.on_connect.rend(); ++it) {
          const std::string command = (*it)[0];
          queued_.push_front(
              Request{Encode(*it),
                      [this, gen, command](Result<RedisValue> r) {
                        if (gen != generation_ || !r.has_value() || !r->IsError()) return;
                        Fail(Status::Unavailable("redis: " + command + " on connect: " + r->str),
                             Status::Unknown("redis: " + command + " on connect failed"));
                      },
                      std::chrono::steady_clock::now() + options_.timeout});
        }
        StartRead();
        StartWrite();
      }));
}

void RedisConnection::StartWrite() {
  if (writing_ || queued_.empty() || state_ != State::kConnected) return;
  if (options_.max_batches_in_flight > 0 &&
      batches_in_flight_.size() >= static_cast<std::size_t>(options_.max_batches_in_flight)) {
    return;  // the reply that completes the oldest batch writes the next
  }
  // Everything queued goes out in one write: one syscall for many commands.
  write_buffer_.clear();
  std::uint64_t n = 0;
  while (!queued_.empty()) {
    write_buffer_ += queued_.front().encoded;
    queued_.front().encoded.clear();
    in_flight_.push_back(std::move(queued_.front()));
    queued_.pop_front();
    ++n;
  }
  batches_in_flight_.push_back(n);
  writing_ = true;
  ++batches_written_;
  commands_written_ += n;
  ArmTimer();
  const std::uint64_t gen = generation_;
  boost::asio::async_write(
      socket_, boost::asio::buffer(write_buffer_),
      boost::asio::bind_executor(strand_,
                                 [this, gen](const boost::system::error_code& err, std::size_t) {
                                   if (gen != generation_) return;
                                   writing_ = false;
                                   if (err) {
                                     Fail(Status::Unavailable("redis: write: " + err.message()),
                                          Status::Unknown("redis: write failed: " + err.message()));
                                     return;
                                   }
                                   StartWrite();
                                 }));
}

void RedisConnection::StartRead() {
  const std::uint64_t gen = generation_;
  socket_.async_read_some(
      boost::asio::buffer(read_buffer_),
      boost::asio::bind_executor(
          strand_, [this, gen](const boost::system::error_code& err, std::size_t n) {
            if (gen != generation_) return;
            if (err) {
              Fail(Status::Unavailable("redis: read: " + err.message()),
                   Status::Unknown("redis: connection lost before the reply: " + err.message()));
              return;
            }
            if (redisReaderFeed(reader_.get(), read_buffer_.data(), n) != REDIS_OK) {
              Fail(Status::Unavailable("redis: protocol error"),
                   Status::Unknown("redis: protocol error"));
              return;
            }
            for (;;) {
              void* raw = nullptr;
              if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
                Fail(Status::Unavailable("redis: protocol error"),
                     Status::Unknown("redis: protocol error"));
                return;
              }
              if (raw == nullptr) break;
              auto* reply = static_cast<redisReply*>(raw);
              RedisValue value = Convert(*reply);
              freeReplyObject(reply);
              if (in_flight_.empty()) {
                Fail(Status::Unavailable("redis: unexpected reply"), Status::Unknown(""));
                return;
              }
              Callback done = std::move(in_flight_.front().done);
              in_flight_.pop_front();
              if (--batches_in_flight_.front() == 0) batches_in_flight_.pop_front();
              done(std::move(value));
              if (gen != generation_) return;  // a callback cannot close us, but stay safe
            }
            ArmTimer();
            StartRead();
            StartWrite();  // a batch may have completed: send what gathered meanwhile
          }));
}

// One timer for the oldest outstanding request: requests share one timeout, so
// the oldest (FIFO front) always has the earliest deadline.
void RedisConnection::ArmTimer() {
  const Request* oldest = !in_flight_.empty() ? &in_flight_.front()
                          : !queued_.empty()  ? &queued_.front()
                                              : nullptr;
  if (oldest == nullptr) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(oldest->deadline);
  const std::uint64_t gen = generation_;
  timer_.async_wait(
      boost::asio::bind_executor(strand_, [this, gen](const boost::system::error_code& err) {
        if (err || gen != generation_) return;
        OnTimer();
      }));
}

void RedisConnection::OnTimer() {
  const auto now = std::chrono::steady_clock::now();
  const Request* oldest = !in_flight_.empty() ? &in_flight_.front()
                          : !queued_.empty()  ? &queued_.front()
                                              : nullptr;
  if (oldest == nullptr) return;
  if (oldest->deadline > now) {
    ArmTimer();
    return;
  }
  Fail(Status::Unavailable("redis: timed out before the command was sent"),
       Status::Unknown("redis: no reply within " + std::to_string(options_.timeout.count()) +
                       " ms"));
}

void RedisConnection::Fail(const Status& unwritten, const Status& written) {
  ++generation_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  resolver_.cancel();
  timer_.cancel();
  state_ = State::kDisconnected;
  writing_ = false;
  next_connect_at_ = std::chrono::steady_clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  std::deque<Request> in_flight = std::move(in_flight_);
  std::deque<Request> queued = std::move(queued_);
  batches_in_flight_.clear();
  in_flight_.clear();
  queued_.clear();
  for (Request& r : in_flight) r.done(written);
  for (Request& r : queued) r.done(unwritten);
}

namespace {
// The connection of this thread and who attached it (several ThreadLocalRedis
// may exist in one process, e.g. in tests).
struct ThreadConnection {
  const ThreadLocalRedis* owner = nullptr;
  std::unique_ptr<RedisConnection> connection;
};
thread_local ThreadConnection tls_connection;
}  // namespace

ThreadLocalRedis::~ThreadLocalRedis() {
  // Threads detach themselves; one that did not (and is gone) left nothing
  // to free here, since its thread_local state went with it.
}

void ThreadLocalRedis::AttachThisThread(boost::asio::io_context& io) {
  FLASHSALE_CHECK(tls_connection.connection == nullptr, "thread already has a Redis connection");
  tls_connection.owner = this;
  tls_connection.connection = std::make_unique<RedisConnection>(io, options_);
}

void ThreadLocalRedis::DetachThisThread() {
  if (tls_connection.owner != this) return;
  tls_connection.connection.reset();
  tls_connection.owner = nullptr;
}

RedisConnection* ThreadLocalRedis::Current() const {
  return tls_connection.owner == this ? tls_connection.connection.get() : nullptr;
}

RedisPool::RedisPool(boost::asio::io_context& io, const RedisConnection::Options& options,
                     int connections) {
  FLASHSALE_CHECK(connections > 0, "RedisPool needs a connection");
  for (int i = 0; i < connections; ++i) {
    connections_.push_back(std::make_unique<RedisConnection>(io, options));
  }
}

void RedisPool::Send(const std::vector<std::string>& argv, Callback done) {
  const std::uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
  connections_[i % connections_.size()]->Send(argv, std::move(done));
}

std::uint64_t RedisPool::CommandsWritten() const {
  std::uint64_t n = 0;
  for (const auto& c : connections_) n += c->CommandsWritten();
  return n;
}

std::uint64_t RedisPool::BatchesWritten() const {
  std::uint64_t n = 0;
  for (const auto& c : connections_) n += c->BatchesWritten();
  return n;
}

Result<RedisAddress> ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) return Status::Invalid("redis URL must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisAddress out;
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
    // [user]:password; a user other than "default" is not supported (no ACL users here).
    if (const std::size_t colon = auth.find(':'); colon != std::string_view::npos) {
      out.password = std::string(auth.substr(colon + 1));
    } else {
      out.password = std::string(auth);
    }
  }
  std::string_view hostport = rest;
  if (const std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      const std::optional<std::int64_t> n = ParseInt64(db);
      if (!n || *n < 0 || *n > 1000) {
        return Status::Invalid("redis URL: bad database number '" + std::string(db) + "'");
      }
      out.db = static_cast<int>(*n);
    }
  }
  if (const std::size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = hostport.substr(colon + 1);
    const std::optional<std::int64_t> n = ParseInt64(port);
    if (!n || *n < 1 || *n > 65535) {
      return Status::Invalid("redis URL: bad port '" + std::string(port) + "'");
    }
    out.port = static_cast<std::uint16_t>(*n);
    hostport = hostport.substr(0, colon);
  }
  if (!hostport.empty()) out.host = std::string(hostport);
  if (out.host == "localhost") out.host = "127.0.0.1";
  return out;
}

RedisConnection::Options OptionsFor(const RedisAddress& address) {
  RedisConnection::Options o;
  o.host = address.host;
  o.port = address.port;
  if (!address.password.empty()) o.on_connect.push_back({"AUTH", address.password});
  if (address.db != 0) o.on_connect.push_back({"SELECT", std::to_string(address.db)});
  return o;
}

}  // namespace flashsale::redis
