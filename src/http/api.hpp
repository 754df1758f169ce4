#pragma once
// Api: every route of SPEC §4 except the socket work. Synchronous routes write
// their whole response in Handle(); POST /purchase is validated, run through
// the funnel and rendered here too, but its answer may come later from a
// backend thread: Handle() then says kDeferred and the answer reaches the
// connection through its DeferredResponder. Routes whose backend call may
// block (GET /orders/{id}, GET /users/{id}/orders, /readyz: database reads,
// Redis, Kafka metadata) run on a small bounded worker pool instead of the
// I/O thread and are deferred the same way. Also owns the per-route request
// metrics (http/request_metrics.hpp).
//
// The methods live by concern: api.cpp (construction, Handle() dispatch, the
// blocking pool, read routes, readyz, metrics, docs), api_purchase.cpp (POST
// /purchase and deferred/500 rendering), api_admin.cpp (admin routes);
// api_render.hpp holds the answer table and rendering they share.
//
// Thread safety: all methods may be called from any I/O thread concurrently.

#include <array>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/admission.hpp"
#include "core/metrics.hpp"
#include "core/order_lifecycle.hpp"
#include "core/order_repository.hpp"
#include "core/rate_limiter.hpp"
#include "core/signatures.hpp"
#include "funnel/catalog.hpp"
#include "funnel/purchase_funnel.hpp"
#include "funnel/queue_admitter.hpp"
#include "http/blocking_pool.hpp"
#include "http/client_address.hpp"
#include "http/http_parser.hpp"
#include "http/request_metrics.hpp"
#include "http/router.hpp"

namespace flashsale::http {

std::string_view OpenApiJson();  // generated from src/http/openapi.json
std::string_view DocsHtml();     // generated from src/http/docs.html

struct ReadinessCheck {
  std::string name;               // "journal", "redis", ...
  std::function<Status()> check;  // OK when the backend answers
};

struct ApiOptions {
  std::string admin_token;  // empty: admin routes answer 403
  std::string version;
  std::string swagger_ui_dir;        // swagger-ui-dist assets; missing files answer 404
  int blocking_threads = 2;          // the worker pool for routes that may block
  std::size_t blocking_queue = 256;  // beyond this many waiting, such routes answer 503
  // The order lifecycle (README "Order lifecycle"). `lifecycle` null: the pay
  // and cancel routes answer 503 (a stack without one).
  OrderLifecycle* lifecycle = nullptr;
  // Cancel tokens: handed out in ACCEPTED answers, checked by POST
  // /orders/{id}/cancel. Null: no cancel_token in answers, buyers cannot cancel.
  std::shared_ptr<const OrderTokens> order_tokens;
  std::string payment_webhook_secret;  // empty: POST /orders/{id}/pay answers 403
  // Called after an order was cancelled (the embedded closer gives its units
  // back at once instead of at its next pass). Any thread; must not block.
  std::function<void()> on_order_closed;
  // The waiting room (README "Admission control"). `waiting_room` null: the
  // queue routes answer 503. `admission_tokens` signs tickets and passes;
  // null: the queue routes answer 503 and every pass is PASS_INVALID.
  WaitingRoomStore* waiting_room = nullptr;
  std::shared_ptr<const AdmissionTokens> admission_tokens;
  std::int64_t queue_places_per_address = 0;  // 0: no cap
  // Rate limits (README "Rate limits"): per client address and per user_id,
  // each off while its rate is 0. Per instance. `trusted_proxies`: peers whose
  // X-Forwarded-For names the client. `rate_limit_slots`: each limiter's
  // table size (bounds its memory: 16 bytes a slot).
  RateLimit address_limit;
  RateLimit user_limit;
  TrustedProxies trusted_proxies;
  std::size_t rate_limit_slots = RateLimiter::kDefaultCapacity;
};

// What a deferred route hands back to the connection's thread.
struct DeferredAnswer {
  PurchaseReply purchase;    // POST /purchase
  std::string response;      // routes run on the blocking pool: the whole response
  int status = 0;            // ... and its HTTP status
  std::exception_ptr error;  // the pool job threw: rethrown on the connection's thread
};

// The socket layer's side of a deferred response; implemented by the
// connection that called Api::Handle().
class DeferredResponder {
 public:
  virtual ~DeferredResponder() = default;
  // Keeps the connection alive until its answer was delivered.
  virtual std::shared_ptr<DeferredResponder> Retain() = 0;
  // Any thread, exactly once per Handle() that returned kDeferred, possibly
  // before Handle() returned. The connection then calls Api::RenderDeferred()
  // on its own thread. Must not block.
  virtual void Deliver(DeferredAnswer answer) = 0;
};

class Api {
 public:
  enum class Handled {
    kAnswered,  // the whole response was appended to `out`; `status` is its code
    kDeferred,  // nothing was appended; `responder.Deliver()` follows
  };

  Api(PurchaseFunnel& funnel, Catalog& catalog, OrderRepository& repository,
      FunnelMetrics& funnel_metrics, std::vector<ReadinessCheck> checks, ApiOptions options);

  // Handles `req` (routed as `match`). May throw when a backend has a bug;
  // the caller answers that with RenderInternalError().
  Handled Handle(const HttpRequest& req, const RouteMatch& match, std::string& out, int& status,
                 DeferredResponder& responder);

  // Appends the response to a deferred request routed as `route`; returns
  // its HTTP status. Called on the connection's thread.
  int RenderDeferred(RouteId route, const DeferredAnswer& answer, bool keep_alive,
                     std::string& out);

  // 500 for a request whose handling threw (a bug, caught by the connection).
  static int RenderInternalError(bool keep_alive, std::string& out);

  // Runs the blocking work already queued and stops the pool: call after the
  // server stopped and before it is destroyed (the answers are posted to it).
  void StopBlockingWork() {
    blocking_.Stop();
    if (queue_admitter_) queue_admitter_->Stop();
  }

  // Responses the connection writes on its own (parse errors, timeouts).
  static void RenderError(int status, std::string_view message, bool keep_alive, std::string& out,
                          std::string_view extra_headers = {});

  RequestMetrics& request_metrics() { return request_metrics_; }

  // Whether a TCP peer may name the client in X-Forwarded-For (the
  // connection asks once, at accept).
  [[nodiscard]] bool IsTrustedProxy(const ClientAddress& peer) const {
    return options_.trusted_proxies.Contains(peer);
  }
  // The client of `req` (ResolveClient over the connection's peer).
  [[nodiscard]] ClientAddress ClientOf(const HttpRequest& req) const;
  // The rate limits: 0 when allowed (or that limit is off); else a 429 with
  // Retry-After was appended to `out` and its status is returned. Take a
  // token: call once per request.
  int LimitAddress(const HttpRequest& req, std::string& out);
  int LimitUser(UserId user, bool keep_alive, std::string& out);

 private:
  Handled HandlePurchase(const HttpRequest& req, std::string& out, int& status,
                         DeferredResponder& responder);
  int RenderPurchase(const PurchaseReply& reply, bool keep_alive, std::string& out);
  // Runs `render(out)` (appends a whole response, returns its status) on the
  // blocking pool; 503 at once when the pool's queue is full.
  // RunBlocking for the route files that do not see its template.
  Handled RunBlockingJob(bool keep_alive, std::string& out, int& status,
                         DeferredResponder& responder, std::function<int(std::string&)> render);
  template <class Render>
  Handled RunBlocking(bool keep_alive, std::string& out, int& status, DeferredResponder& responder,
                      Render render);
  int HandleRoot(bool keep_alive, std::string& out);
  int HandleOrder(std::string_view id, bool keep_alive, std::string& out);
  int HandleUserOrders(std::string_view id, bool keep_alive, std::string& out);
  int HandleProducts(std::string_view query, bool keep_alive, std::string& out);
  int HandleProduct(std::string_view id, bool keep_alive, std::string& out);
  // POST /orders/{id}/pay and /cancel (api_orders.cpp): the checks that need
  // no backend on the I/O thread, the decision on the blocking pool.
  Handled HandleOrderPay(const HttpRequest& req, std::string_view id, std::string& out, int& status,
                         DeferredResponder& responder);
  Handled HandleOrderCancel(const HttpRequest& req, std::string_view id, std::string& out,
                            int& status, DeferredResponder& responder);
  // The waiting room (api_queue.cpp): POST /products/{id}/queue, GET
  // /queue/{ticket}, and its page GET /waiting-room/{id}.
  Handled HandleQueueJoin(const HttpRequest& req, std::string_view id, std::string& out,
                          int& status, DeferredResponder& responder);
  Handled HandleQueueStatus(const HttpRequest& req, std::string_view ticket, std::string& out,
                            int& status, DeferredResponder& responder);
  int HandleWaitingRoomPage(std::string_view id, bool keep_alive, std::string& out);
  // Runs `render` inline when the waiting-room store answers from memory, on
  // the blocking pool when it may wait on the network.
  Handled RunQueueJob(bool keep_alive, std::string& out, int& status, DeferredResponder& responder,
                      std::function<int(std::string&)> render);
  int RenderJoined(const Result<WaitingRoomStore::Joined>& joined, ProductId product, UserId user,
                   bool keep_alive, std::string& out);
  int RenderQueueStatus(const QueueTicket& ticket, std::string_view text, bool keep_alive,
                        std::string& out);
  // The pass of a purchase for `user` and `product` (header X-Flashsale-Pass).
  PassCheck CheckPass(std::string_view pass, UserId user, ProductId product);
  int HandleAdminPut(const HttpRequest& req, std::string_view id, std::string& out);
  int HandleAdminRestock(const HttpRequest& req, std::string_view id, std::string& out);
  int HandleReadyz(bool keep_alive, std::string& out);
  int HandleMetrics(bool keep_alive, std::string& out);
  int HandleDocsAsset(std::string_view name, bool keep_alive, std::string& out);
  // 0 when authorized, else the status already written.
  int CheckAdmin(const HttpRequest& req, std::string& out);

  PurchaseFunnel& funnel_;
  Catalog& catalog_;
  OrderRepository& repository_;
  FunnelMetrics& funnel_metrics_;
  const std::vector<ReadinessCheck> checks_;
  const ApiOptions options_;
  RequestMetrics request_metrics_;
  // Keeps the waiting rooms in use here moving; null without a waiting-room store.
  std::unique_ptr<QueueAdmitter> queue_admitter_;
  // Constant after construction.
  std::unordered_map<std::string, std::pair<std::string, std::string>>
      assets_;  // name -> type, bytes
  // Fixed purchase bodies (no order id), by outcome: the sold-out path is a
  // copy. One per PurchaseOutcome below kIdempotencyKeyMismatch.
  std::array<std::string, static_cast<std::size_t>(PurchaseOutcome::kIdempotencyKeyMismatch)>
      fixed_purchase_bodies_;
  // Null while their limit is off. Thread-safe (RateLimiter).
  std::unique_ptr<RateLimiter> address_limiter_;
  std::unique_ptr<RateLimiter> user_limiter_;
  // Last: its threads are joined before the members their jobs use go away.
  BlockingPool blocking_;
};

}  // namespace flashsale::http
