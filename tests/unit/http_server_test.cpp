// http_server_test: the real HttpServer and Api over a loopback socket, with
// the embedded stores and fakes that misbehave on purpose.
//
// Concurrency model: the server runs its own I/O thread(s); the test is a
// blocking client on the main thread that writes one request and reads one
// response (Content-Length framed) at a time. Every read has a deadline, so a
// server that hangs fails the test instead of stalling it.

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <atomic>
#include <boost/asio.hpp>

#include <stdexcept>
#include <string>

#include "backends/embedded/local_status_broadcast.hpp"
#include "backends/embedded/memory_idempotency_store.hpp"
#include "backends/embedded/memory_stock_store.hpp"
#include "fake_order_repository.hpp"
#include "funnel/catalog.hpp"
#include "funnel/purchase_funnel.hpp"
#include "http/api.hpp"
#include "http/server.hpp"
#include "recording_order_queue.hpp"

namespace flashsale {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr ProductId kPhone = 10'000'001;

// The embedded stock store; Reserve() throws while `throw_on_reserve` is set
// (a bug in a backend, on the I/O thread that called it).
class ThrowingStockStore final : public StockStore {
 public:
  bool throw_on_reserve = false;  // set by the test thread while no request is in flight
  embedded::MemoryStockStore inner;

  void Reserve(const Reservation& r, ReserveCallback done) override {
    if (throw_on_reserve) throw std::runtime_error("stock store bug");
    inner.Reserve(r, std::move(done));
  }
  void Release(const Reservation& r, ReleaseCallback done) override {
    inner.Release(r, std::move(done));
  }
  Result<PutResult> Put(const Product& p, const PersistProduct& persist) override {
    return inner.Put(p, persist);
  }
  Result<PutResult> Restock(ProductId id, std::int64_t amount,
                            const PersistProduct& persist) override {
    return inner.Restock(id, amount, persist);
  }
  Result<std::optional<StockSnapshot>> Get(ProductId id) override { return inner.Get(id); }
  Result<std::vector<StockSnapshot>> List(std::int64_t offset, std::int64_t limit) override {
    return inner.List(offset, limit);
  }
  Result<std::int64_t> ProductCount() override { return inner.ProductCount(); }
};

// A queue whose HandOff() throws while `throw_on_handoff` is set: the
// exception leaves from inside the stock store's completion callback.
class ThrowingOrderQueue final : public OrderQueue {
 public:
  bool throw_on_handoff = false;  // set by the test thread while no request is in flight
  testutil::RecordingOrderQueue inner;

  void HandOff(Order order, HandOffCallback done) override {
    if (throw_on_handoff) throw std::runtime_error("order queue bug");
    inner.HandOff(std::move(order), std::move(done));
  }
  void Flush() override { inner.Flush(); }
};

// The fake database; FindOrder() throws while `throw_on_find` is set (a bug
// in a read that runs on the Api's blocking pool).
class ThrowingRepository final : public OrderRepository {
 public:
  std::atomic<bool> throw_on_find{false};
  testutil::FakeOrderRepository inner;

  Status UpsertProduct(const Product& p) override { return inner.UpsertProduct(p); }
  Result<PersistSummary> PersistBatch(std::span<const Order> orders) override {
    return inner.PersistBatch(orders);
  }
  Result<std::optional<Order>> FindOrder(const OrderId& id) override {
    if (throw_on_find) throw std::runtime_error("database bug");
    return inner.FindOrder(id);
  }
  Result<std::vector<Order>> OrdersOfUser(UserId user, std::int64_t limit) override {
    return inner.OrdersOfUser(user, limit);
  }
};

struct Response {
  int status = 0;
  std::string body;
};

// A blocking HTTP/1.1 client on one keep-alive connection.
class Client {
 public:
  explicit Client(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    // Every read gives up after 5 s: a server that hangs fails the test.
    const timeval timeout{5, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }

  static std::string Request(std::string_view method, std::string_view path,
                             std::string_view body = {}) {
    return std::string(method) + " " + std::string(path) +
           " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
           "Content-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  }

  Response Send(std::string_view method, std::string_view path, std::string_view body = {}) {
    Write(Request(method, path, body));
    return Read();
  }

  void Write(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  Response Read() {
    for (;;) {
      const std::size_t header_end = buffer_.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        const std::string head = buffer_.substr(0, header_end);
        std::size_t length = 0;
        const std::size_t cl = head.find("Content-Length: ");
        if (cl != std::string::npos) length = std::stoul(head.substr(cl + 16));
        if (buffer_.size() >= header_end + 4 + length) {
          Response r;
          r.status = std::stoi(head.substr(9, 3));
          r.body = buffer_.substr(header_end + 4, length);
          buffer_.erase(0, header_end + 4 + length);
          return r;
        }
      }
      char chunk[4096];
      // Plain recv(): asio's blocking read would wait past SO_RCVTIMEO.
      const ssize_t n = ::recv(socket_.native_handle(), chunk, sizeof chunk, 0);
      if (n <= 0) {  // closed, or SO_RCVTIMEO ran out
        ADD_FAILURE() << "no complete response (recv " << n << "); got: " << buffer_;
        return {};
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  std::string buffer_;
};

// The funnel, the Api and a one-thread HttpServer on an ephemeral port.
struct ServerHarness {
  ServerHarness()
      : funnel(stock, queue, idempotency, broadcast, metrics, {}),
        catalog(stock, repository, funnel),
        api(funnel, catalog, repository, metrics, {}, {"", "test", "/nonexistent"}),
        server(api, Options()) {
    Product p;
    p.id = kPhone;
    p.price = 99'900;
    p.stock = 100;
    p.limit_per_user = 100;
    stock.inner.Load({p}, {});
    EXPECT_TRUE(server.Start().ok());
  }
  ~ServerHarness() {
    server.Stop();
    api.StopBlockingWork();
  }

  static http::ServerOptions Options() {
    http::ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.shutdown_grace_ms = 1000;
    return o;
  }

  ThrowingStockStore stock;
  ThrowingOrderQueue queue;
  embedded::MemoryIdempotencyStore idempotency;
  embedded::LocalStatusBroadcast broadcast;
  FunnelMetrics metrics;
  ThrowingRepository repository;
  PurchaseFunnel funnel;
  Catalog catalog;
  http::Api api;
  http::HttpServer server;
};

std::string PurchaseBody(UserId user) {
  return R"({"user_id":)" + std::to_string(user) + R"(,"product_id":)" + std::to_string(kPhone) +
         R"(,"amount":1})";
}

std::int64_t InternalErrors(Client& client) {
  const Response metrics = client.Send("GET", "/metrics");
  const std::string name = "\nflashsale_internal_errors_total ";
  const std::size_t at = metrics.body.find(name);
  if (at == std::string::npos) return -1;
  return std::stoll(metrics.body.substr(at + name.size()));
}

TEST(HttpServerFaults, StockStoreThrowingOnTheIoThreadIsA500AndTheServerKeepsServing) {
  ServerHarness h;
  Client client(h.server.port());
  const std::int64_t errors_before = InternalErrors(client);  // the counter is process-wide
  EXPECT_EQ(client.Send("POST", "/purchase", PurchaseBody(1)).status, 200);

  h.stock.throw_on_reserve = true;
  const Response failed = client.Send("POST", "/purchase", PurchaseBody(2));
  EXPECT_EQ(failed.status, 500);
  EXPECT_NE(failed.body.find("INTERNAL"), std::string::npos) << failed.body;
  h.stock.throw_on_reserve = false;

  // Same connection, same I/O thread: still served.
  const Response next = client.Send("POST", "/purchase", PurchaseBody(3));
  EXPECT_EQ(next.status, 200);
  EXPECT_NE(next.body.find("ACCEPTED"), std::string::npos) << next.body;
  EXPECT_EQ(InternalErrors(client), errors_before + 1);
  // And a new connection too.
  Client other(h.server.port());
  EXPECT_EQ(other.Send("GET", "/healthz").status, 200);
}

TEST(HttpServerFaults, QueueThrowingInsideTheReserveCallbackIsA500AndTheServerKeepsServing) {
  ServerHarness h;
  Client client(h.server.port());
  const std::int64_t errors_before = InternalErrors(client);
  h.queue.throw_on_handoff = true;
  const Response failed = client.Send("POST", "/purchase", PurchaseBody(1));
  EXPECT_EQ(failed.status, 500);
  h.queue.throw_on_handoff = false;

  EXPECT_EQ(client.Send("POST", "/purchase", PurchaseBody(2)).status, 200);
  EXPECT_EQ(InternalErrors(client), errors_before + 1);
}

TEST(HttpServerFaults, ABlockingReadThatThrowsIsA500AndTheServerKeepsServing) {
  ServerHarness h;
  Client client(h.server.port());
  const std::int64_t errors_before = InternalErrors(client);
  const std::string order = "/orders/00000000000000000000000a";
  EXPECT_EQ(client.Send("GET", order).status, 404);
  h.repository.throw_on_find = true;
  const Response failed = client.Send("GET", order);
  EXPECT_EQ(failed.status, 500);
  EXPECT_NE(failed.body.find("INTERNAL"), std::string::npos) << failed.body;
  h.repository.throw_on_find = false;
  EXPECT_EQ(client.Send("GET", order).status, 404);
  EXPECT_EQ(client.Send("POST", "/purchase", PurchaseBody(1)).status, 200);
  EXPECT_EQ(InternalErrors(client), errors_before + 1);
}

TEST(HttpServer, PipelinedAnswersStayInOrderAroundRoutesRunOnTheBlockingPool) {
  ServerHarness h;
  Client client(h.server.port());
  // One write: a pool route, a purchase, a pool route, an inline route.
  client.Write(Client::Request("GET", "/readyz") +
               Client::Request("POST", "/purchase", PurchaseBody(1)) +
               Client::Request("GET", "/users/1/orders") + Client::Request("GET", "/healthz"));
  const Response ready = client.Read();
  EXPECT_EQ(ready.status, 200);
  EXPECT_NE(ready.body.find("\"ready\":true"), std::string::npos) << ready.body;
  const Response bought = client.Read();
  EXPECT_EQ(bought.status, 200);
  EXPECT_NE(bought.body.find("ACCEPTED"), std::string::npos) << bought.body;
  const Response orders = client.Read();
  EXPECT_EQ(orders.status, 200);
  EXPECT_EQ(orders.body.front(), '[') << orders.body;
  const Response health = client.Read();
  EXPECT_EQ(health.status, 200);
  EXPECT_NE(health.body.find("\"ok\""), std::string::npos) << health.body;
}

}  // namespace
}  // namespace flashsale
