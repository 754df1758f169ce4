#include "http/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstring>

#include "core/thread_name.hpp"
#include "funnel/local_sold_out_cache.hpp"
#include "http/http_parser.hpp"
#include "http/response_writer.hpp"
#include "http/router.hpp"

namespace flashsale::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr std::size_t kInitialReadBuffer = 2048;
// A request is at most 8 KiB of headers + 4 KiB of body.
constexpr std::size_t kMaxReadBuffer = 16 * 1024;
// Stop parsing pipelined requests while this much output waits for the socket.
constexpr std::size_t kMaxPendingOutput = 256 * 1024;
}  // namespace

class Connection;

// One I/O thread: its io_context, acceptor, connections and their sweep.
class Worker {
 public:
  Worker(Api& api, const ServerOptions& options, std::atomic<std::int64_t>& connections)
      : api_(api), options_(options), connections_(connections), acceptor_(ctx_), sweep_(ctx_) {}

  Status Bind(const tcp::endpoint& endpoint);
  void Run();
  void BeginShutdown();  // any thread: posted to this worker

  asio::io_context& ctx() { return ctx_; }
  Api& api() { return api_; }
  const ServerOptions& options() const { return options_; }
  std::uint16_t local_port() const { return acceptor_.local_endpoint().port(); }

  // Intrusive list of live connections, touched only on this worker's thread.
  void Link(Connection* c);
  void Unlink(Connection* c);
  bool shutting_down() const { return shutting_down_; }
  void MaybeFinishShutdown();

 private:
  void Accept();
  void ScheduleSweep();
  void Sweep();

  Api& api_;
  const ServerOptions& options_;
  std::atomic<std::int64_t>& connections_;
  asio::io_context ctx_{1};
  tcp::acceptor acceptor_;
  asio::steady_timer sweep_;
  Connection* head_ = nullptr;
  bool shutting_down_ = false;
  std::int64_t shutdown_deadline_ms_ = 0;
};

// One client connection. Lives on its worker's thread; a deferred answer (a
// purchase) arriving from a backend thread is posted back to it.
//
// Exceptions: Dispatch() and the rendering of a deferred answer are the seam
// where an exception escaping the Api, the funnel or a backend called on this
// thread is caught: it is logged, counted (flashsale_internal_errors_total)
// and answered 500, and the connection keeps serving. Worker::Run() catches
// what escapes any other handler on the thread.
class Connection : public std::enable_shared_from_this<Connection>, public DeferredResponder {
 public:
  Connection(Worker& worker, tcp::socket socket) : worker_(worker), socket_(std::move(socket)) {
    in_.resize(kInitialReadBuffer);
    last_activity_ms_ = SteadyMillis();
    // Who the peer is, once per connection (not per request): the rate
    // limits' key and whether its X-Forwarded-For may name the client.
    boost::system::error_code ec;
    const tcp::endpoint remote = socket_.remote_endpoint(ec);
    if (!ec) {
      const asio::ip::address a = remote.address();
      const asio::ip::address_v6 v6 =
          a.is_v4() ? asio::ip::make_address_v6(asio::ip::v4_mapped, a.to_v4()) : a.to_v6();
      const asio::ip::address_v6::bytes_type b = v6.to_bytes();
      std::memcpy(peer_.bytes.data(), b.data(), peer_.bytes.size());
      peer_is_trusted_proxy_ = worker_.api().IsTrustedProxy(peer_);
    }
  }

  void Start() {
    worker_.Link(this);
    worker_.api().request_metrics().connections.Add(1);
    StartRead();
  }

  // Called by the sweep once a second.
  void CheckTimeouts(std::int64_t now_ms) {
    if (state_ == State::kClosed) return;
    if (awaiting()) return;  // our turn, not the client's
    if (write_in_flight_) {
      // A client that stops reading its replies must not hold the connection.
      if (now_ms - write_started_ms_ > worker_.options().request_timeout_ms) Close();
      return;
    }
    if (request_started_ms_ != 0) {
      if (now_ms - request_started_ms_ > worker_.options().request_timeout_ms) {
        Api::RenderError(408, "request took too long to arrive", false, out_);
        CloseAfterWrite();
        Flush();
      }
      return;
    }
    if (now_ms - last_activity_ms_ > worker_.options().idle_timeout_ms) Close();
  }

  // Shutdown: idle connections close now, busy ones after their reply.
  void BeginShutdown() {
    if (state_ == State::kClosed) return;
    if (!awaiting() && !write_in_flight_ && out_.empty()) {
      Close();
    } else {
      CloseAfterWrite();
    }
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    worker_.Unlink(this);
    worker_.api().request_metrics().connections.Add(-1);
    worker_.MaybeFinishShutdown();
  }

  Connection* prev = nullptr;
  Connection* next = nullptr;

 private:
  // Lifecycle. Invariants:
  // - requests are parsed and dispatched only in kOpen;
  // - kAwaiting*: exactly one dispatched request waits for its deferred
  //   answer; nothing after it is parsed until it is answered, so answers
  //   are written in request order (pipelining) and the read buffer's
  //   unparsed tail is not moved (the request's views point into it);
  // - kClosing, kAwaitingThenClose: the client or the server asked to close;
  //   no new request is parsed, and the connection closes once its output
  //   (and, first, the awaited answer) is written;
  // - kClosed is final: socket closed, unlinked from the worker; late
  //   completions find it and do nothing.
  enum class State { kOpen, kAwaiting, kAwaitingThenClose, kClosing, kClosed };

  bool awaiting() const {
    return state_ == State::kAwaiting || state_ == State::kAwaitingThenClose;
  }
  // Close once what is pending was answered and written.
  void CloseAfterWrite() {
    if (state_ == State::kOpen) {
      state_ = State::kClosing;
    } else if (state_ == State::kAwaiting) {
      state_ = State::kAwaitingThenClose;
    }
  }
  // The awaited request got its answer.
  void Answered() {
    if (state_ == State::kAwaiting) {
      state_ = State::kOpen;
    } else if (state_ == State::kAwaitingThenClose) {
      state_ = State::kClosing;
    }
  }

  void StartRead() {
    if (state_ == State::kClosed || read_in_flight_) return;
    if (in_len_ == in_.size()) {
      if (in_.size() >= kMaxReadBuffer) {
        // Unreachable for valid requests (the parser answers 431/413 first).
        Api::RenderError(400, "request too large", false, out_);
        CloseAfterWrite();
        Flush();
        return;
      }
      in_.resize(std::min(in_.size() * 2, kMaxReadBuffer));
    }
    read_in_flight_ = true;
    socket_.async_read_some(
        asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          self->read_in_flight_ = false;
          if (ec) {
            // EOF or reset: finish what is in flight, then go.
            if (!self->awaiting() && !self->write_in_flight_)
              self->Close();
            else
              self->CloseAfterWrite();
            return;
          }
          self->last_activity_ms_ = SteadyMillis();
          if (self->request_started_ms_ == 0) self->request_started_ms_ = self->last_activity_ms_;
          self->in_len_ += n;
          self->Process();
        });
  }

  // Parses and answers every complete request in the buffer, in order.
  void Process() {
    while (state_ == State::kOpen && out_.size() < kMaxPendingOutput) {
      if (in_pos_ == in_len_) {
        in_pos_ = in_len_ = 0;
        request_started_ms_ = 0;
        break;
      }
      const std::string_view data(in_.data() + in_pos_, in_len_ - in_pos_);
      ParseResult parsed = ParseRequest(data, request_);
      if (parsed.status == ParseStatus::kIncomplete) break;
      if (parsed.status == ParseStatus::kError) {
        Api::RenderError(parsed.error_status, parsed.error_message, false, out_);
        worker_.api().request_metrics().Record(RouteId::kUnknown, parsed.error_status, 0);
        CloseAfterWrite();
        break;
      }
      in_pos_ += parsed.consumed;
      request_.peer = peer_;  // the parser reset the request
      request_.peer_is_trusted_proxy = peer_is_trusted_proxy_;
      request_started_ms_ = in_pos_ == in_len_ ? 0 : SteadyMillis();
      Dispatch(parsed);
      if (!request_.keep_alive) CloseAfterWrite();
    }
    // Keep the unparsed tail at the front of the buffer.
    if (in_pos_ > 0 && !awaiting()) {
      std::memmove(in_.data(), in_.data() + in_pos_, in_len_ - in_pos_);
      in_len_ -= in_pos_;
      in_pos_ = 0;
    }
    Flush();
    if (state_ == State::kOpen && out_.size() < kMaxPendingOutput) StartRead();
  }

  std::shared_ptr<DeferredResponder> Retain() override { return shared_from_this(); }

  void Deliver(DeferredAnswer answer) override {
    if (current_ == this) {  // answered inline, still inside Dispatch()
      CompleteDeferred(answer);
      return;
    }
    asio::post(socket_.get_executor(), [self = shared_from_this(), answer = std::move(answer)] {
      self->CompleteDeferred(answer);
      self->Process();
    });
  }

  void Dispatch(const ParseResult&) {
    const RouteMatch match = MatchRoute(request_.method, request_.path);
    const std::int64_t started = MonotonicNanos();
    int status = 0;
    Api& api = worker_.api();
    const std::size_t response_start = out_.size();
    // Set before Handle(): a deferred answer may be delivered inline.
    FLASHSALE_CHECK(state_ == State::kOpen, "dispatch outside kOpen");
    state_ = State::kAwaiting;
    answering_ = {match.id, request_.keep_alive, request_.version_minor == 0 && request_.keep_alive,
                  started};
    current_ = this;
    Api::Handled handled = Api::Handled::kAnswered;
    try {
      handled = api.Handle(request_, match, out_, status, *this);
    } catch (...) {
      current_ = nullptr;
      ReportException(match.id);
      if (!awaiting()) return;  // answered inline before the throw
      // Whatever the route had appended is cut off; it gets a whole 500. A
      // deferred answer that still arrives later is dropped (CompleteDeferred).
      Answered();
      out_.resize(response_start);
      AnswerInternalError(match.id, response_start);
      return;
    }
    current_ = nullptr;
    if (handled == Api::Handled::kDeferred) return;  // Deliver() ran or will run
    Answered();
    if (answering_.http10_keep_alive) AddKeepAliveHeader(out_, response_start);
    api.request_metrics().Record(match.id, status, MonotonicNanos() - started);
  }

  // On this connection's thread.
  void CompleteDeferred(const DeferredAnswer& answer) {
    if (state_ == State::kClosed) return;  // the client went; nobody to answer
    if (!awaiting()) {
      // Only after its request threw and was answered 500 already. (Were the
      // connection awaiting its next request by then, this stale answer would
      // be taken for that one: only a backend that throws after handing its
      // callback on can cause it, and it is logged where it threw.)
      spdlog::error("late answer to a request that failed dropped ({})",
                    RouteName(answering_.route));
      return;
    }
    Answered();
    Api& api = worker_.api();
    const std::size_t response_start = out_.size();
    int status = 0;
    try {
      status = api.RenderDeferred(answering_.route, answer, answering_.keep_alive, out_);
    } catch (...) {
      ReportException(answering_.route);
      out_.resize(response_start);
      AnswerInternalError(answering_.route, response_start);
      return;
    }
    if (answering_.http10_keep_alive) AddKeepAliveHeader(out_, response_start);
    api.request_metrics().Record(answering_.route, status,
                                 MonotonicNanos() - answering_.started_ns);
  }

  // REQUIRES: inside a catch block.
  void ReportException(RouteId route) {
    InternalErrors().Inc();
    try {
      throw;
    } catch (const std::exception& e) {
      spdlog::error("request {} ({}) failed: {}", RouteName(route), request_.target, e.what());
    } catch (...) {
      spdlog::error("request {} ({}) failed: unknown exception", RouteName(route), request_.target);
    }
  }

  void AnswerInternalError(RouteId route, std::size_t response_start) {
    const int status = Api::RenderInternalError(answering_.keep_alive, out_);
    if (answering_.http10_keep_alive) AddKeepAliveHeader(out_, response_start);
    worker_.api().request_metrics().Record(route, status, MonotonicNanos() - answering_.started_ns);
  }

  void Flush() {
    if (state_ == State::kClosed || write_in_flight_) return;
    if (out_.empty()) {
      if (state_ == State::kClosing) Close();
      return;
    }
    writing_.swap(out_);
    write_in_flight_ = true;
    write_started_ms_ = SteadyMillis();
    asio::async_write(
        socket_, asio::buffer(writing_),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
          self->write_in_flight_ = false;
          self->writing_.clear();
          self->last_activity_ms_ = SteadyMillis();
          if (ec) {
            self->Close();
            return;
          }
          if (self->worker_.shutting_down() && !self->awaiting()) self->CloseAfterWrite();
          self->Process();
        });
  }

  static thread_local Connection* current_;

  Worker& worker_;
  tcp::socket socket_;
  std::string in_;  // read buffer; [in_pos_, in_len_) is unparsed
  std::size_t in_pos_ = 0;
  std::size_t in_len_ = 0;
  std::string out_;      // replies not yet handed to the socket
  std::string writing_;  // replies being written
  HttpRequest request_;
  ClientAddress peer_;  // the TCP peer (IPv4-mapped for IPv4); zero if unknown
  bool peer_is_trusted_proxy_ = false;
  State state_ = State::kOpen;
  // The two asio operations this connection may have outstanding. They are
  // independent of each other and of state_: the next requests are read while
  // earlier answers are written (pipelining). At most one of each.
  bool read_in_flight_ = false;
  bool write_in_flight_ = false;
  // The request being answered (the last one dispatched).
  struct Answering {
    RouteId route = RouteId::kUnknown;
    bool keep_alive = true;
    bool http10_keep_alive = false;  // HTTP/1.0 keep-alive: the answer says so explicitly
    std::int64_t started_ns = 0;
  } answering_;
  std::int64_t last_activity_ms_ = 0;
  std::int64_t write_started_ms_ = 0;
  std::int64_t request_started_ms_ = 0;  // first byte of an unfinished request, 0 if none
};

thread_local Connection* Connection::current_ = nullptr;

Status Worker::Bind(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) {
    const int one = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec.assign(errno, boost::system::system_category());
    }
  }
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("cannot listen on " + endpoint.address().to_string() + ":" +
                               std::to_string(endpoint.port()) + ": " + ec.message());
  }
  return Status::Ok();
}

void Worker::Run() {
  NameThisThread("http-io");
  if (options_.on_thread_start) options_.on_thread_start(ctx_);
  Accept();
  ScheduleSweep();
  // Last guard of this thread: a handler that throws outside a connection's
  // seam (e.g. a backend's own callback on this io_context) is logged and
  // counted, and the loop goes on (io_context allows run() again).
  for (;;) {
    try {
      ctx_.run();
      break;
    } catch (const std::exception& e) {
      InternalErrors().Inc();
      spdlog::error("exception escaped a handler on an HTTP I/O thread: {}", e.what());
    } catch (...) {
      InternalErrors().Inc();
      spdlog::error("unknown exception escaped a handler on an HTTP I/O thread");
    }
  }
  if (options_.on_thread_stop) options_.on_thread_stop();
}

void Worker::Accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || shutting_down_) return;
    if (!ec) {
      if (connections_.fetch_add(1) >= options_.max_connections) {
        connections_.fetch_sub(1);
        boost::system::error_code ignored;
        socket.close(ignored);  // over --max-connections: refuse
      } else {
        socket.set_option(tcp::no_delay(true));
        auto c = std::make_shared<Connection>(*this, std::move(socket));
        c->Start();
      }
    } else if (ec == asio::error::no_descriptors) {
      spdlog::warn("accept: out of file descriptors (raise ulimit -n)");
    }
    Accept();
  });
}

void Worker::Link(Connection* c) {
  c->next = head_;
  if (head_ != nullptr) head_->prev = c;
  head_ = c;
}

void Worker::Unlink(Connection* c) {
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (head_ == c) head_ = c->next;
  c->prev = c->next = nullptr;
  connections_.fetch_sub(1);
}

void Worker::ScheduleSweep() {
  sweep_.expires_after(std::chrono::seconds(1));
  sweep_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    Sweep();
  });
}

void Worker::Sweep() {
  const std::int64_t now = SteadyMillis();
  if (shutting_down_ && now > shutdown_deadline_ms_) {
    spdlog::warn("shutdown grace period over: closing connections still busy");
    for (Connection* c = head_; c != nullptr;) {
      Connection* next = c->next;
      c->Close();
      c = next;
    }
    ctx_.stop();
    return;
  }
  for (Connection* c = head_; c != nullptr;) {
    Connection* next = c->next;  // CheckTimeouts may unlink c
    c->CheckTimeouts(now);
    c = next;
  }
  ScheduleSweep();
}

void Worker::BeginShutdown() {
  asio::post(ctx_, [this] {
    shutting_down_ = true;
    shutdown_deadline_ms_ = SteadyMillis() + options_.shutdown_grace_ms;
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (Connection* c = head_; c != nullptr;) {
      Connection* next = c->next;
      c->BeginShutdown();
      c = next;
    }
    MaybeFinishShutdown();
  });
}

void Worker::MaybeFinishShutdown() {
  if (!shutting_down_ || head_ != nullptr) return;
  sweep_.cancel();
  ctx_.stop();
}

HttpServer::HttpServer(Api& api, ServerOptions options) : api_(api), options_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (ec) return Status::Invalid("bad --host " + options_.host + ": " + ec.message());
  std::uint16_t port = options_.port;
  for (int i = 0; i < std::max(options_.threads, 1); ++i) {
    auto worker = std::make_unique<Worker>(api_, options_, connections_);
    if (Status s = worker->Bind(tcp::endpoint(address, port)); !s.ok()) return s;
    if (port == 0) port = worker->local_port();  // the others join the same port
    workers_.push_back(std::move(worker));
  }
  bound_port_ = port;
  for (auto& w : workers_) threads_.emplace_back([worker = w.get()] { worker->Run(); });
  return Status::Ok();
}

void HttpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& w : workers_) w->BeginShutdown();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace flashsale::http
