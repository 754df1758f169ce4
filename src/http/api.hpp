#pragma once
// Api: every route of SPEC §4 except the socket work. Synchronous routes write
// their whole response here; POST /purchase is validated here, run through the
// funnel by the connection (it may complete later, on another thread) and
// rendered here again. Also owns the per-route request metrics.
//
// Thread safety: all methods may be called from any I/O thread concurrently.

#include <array>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/metrics.hpp"
#include "core/order_repository.hpp"
#include "funnel/catalog.hpp"
#include "funnel/purchase_funnel.hpp"
#include "http/http_parser.hpp"
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
  std::string swagger_ui_dir;  // swagger-ui-dist assets; missing files answer 404
};

// Per-route request counters (by HTTP status) and latency histograms.
class RequestMetrics {
 public:
  static constexpr std::array<int, 17> kStatuses = {200, 201, 400, 401, 403, 404, 405, 408, 409,
                                                    413, 422, 431, 500, 501, 503, 505, 0};
  void Record(RouteId route, int status, std::int64_t nanos);
  void Render(std::string& out) const;
  Gauge connections;

 private:
  static std::size_t StatusSlot(int status);
  std::array<std::array<Counter, kStatuses.size()>, kRouteCount> counts_{};
  std::array<Histogram, kRouteCount> durations_{};
};

class Api {
 public:
  Api(PurchaseFunnel& funnel, Catalog& catalog, OrderRepository& repository,
      FunnelMetrics& funnel_metrics, std::vector<ReadinessCheck> checks, ApiOptions options);

  // Handles `req` (routed as `match`). Returns true when it is a valid
  // purchase: `purchase` is then filled and nothing was written; the caller
  // runs it through the funnel and calls RenderPurchase(). Otherwise the whole
  // response was appended to `out` and `status` says its code.
  bool Handle(const HttpRequest& req, const RouteMatch& match, std::string& out, int& status,
              PurchaseRequest& purchase);

  // Appends the response to a purchase; returns its HTTP status.
  int RenderPurchase(const PurchaseReply& reply, bool keep_alive, std::string& out);

  // Responses the connection writes on its own (parse errors, timeouts).
  static void RenderError(int status, std::string_view message, bool keep_alive, std::string& out,
                          std::string_view extra_headers = {});

  PurchaseFunnel& funnel() { return funnel_; }
  RequestMetrics& request_metrics() { return request_metrics_; }

 private:
  int HandleRoot(bool keep_alive, std::string& out);
  int HandleOrder(std::string_view id, bool keep_alive, std::string& out);
  int HandleUserOrders(std::string_view id, bool keep_alive, std::string& out);
  int HandleProducts(std::string_view query, bool keep_alive, std::string& out);
  int HandleProduct(std::string_view id, bool keep_alive, std::string& out);
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
  // Constant after construction.
  std::unordered_map<std::string, std::pair<std::string, std::string>>
      assets_;  // name -> type, bytes
  // Fixed purchase bodies (no order id), by outcome: the sold-out path is a copy.
  std::array<std::string, 7> fixed_purchase_bodies_;
};

}  // namespace flashsale::http
