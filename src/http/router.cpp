#include "http/router.hpp"

namespace flashsale::http {
namespace {

constexpr std::array<RouteSpec, 19> kRoutes = {{
    {RouteId::kPurchase, Method::kPost, "/purchase", "purchase"},
    {RouteId::kRoot, Method::kGet, "/", "root"},
    {RouteId::kOrder, Method::kGet, "/orders/{order_id}", "order"},
    {RouteId::kOrderPay, Method::kPost, "/orders/{order_id}/pay", "order_pay"},
    {RouteId::kOrderCancel, Method::kPost, "/orders/{order_id}/cancel", "order_cancel"},
    {RouteId::kUserOrders, Method::kGet, "/users/{user_id}/orders", "user_orders"},
    {RouteId::kProducts, Method::kGet, "/products", "products"},
    {RouteId::kProduct, Method::kGet, "/products/{product_id}", "product"},
    {RouteId::kQueueJoin, Method::kPost, "/products/{product_id}/queue", "queue_join"},
    {RouteId::kQueueStatus, Method::kGet, "/queue/{ticket}", "queue_status"},
    {RouteId::kWaitingRoomPage, Method::kGet, "/waiting-room/{product_id}", "waiting_room"},
    {RouteId::kAdminProduct, Method::kPut, "/admin/products/{product_id}", "admin_product"},
    {RouteId::kAdminRestock, Method::kPost, "/admin/products/{product_id}/restock",
     "admin_restock"},
    {RouteId::kHealthz, Method::kGet, "/healthz", "healthz"},
    {RouteId::kReadyz, Method::kGet, "/readyz", "readyz"},
    {RouteId::kMetrics, Method::kGet, "/metrics", "metrics"},
    {RouteId::kOpenApi, Method::kGet, "/openapi.json", "openapi"},
    {RouteId::kDocs, Method::kGet, "/docs", "docs"},
    {RouteId::kDocsAsset, Method::kGet, "/docs/{asset}", "docs_asset"},
}};

// Matches `path` against `pattern`; a {param} matches one non-empty segment.
bool Matches(std::string_view pattern, std::string_view path, std::string_view& param) {
  const std::size_t open = pattern.find('{');
  if (open == std::string_view::npos) return pattern == path;
  const std::size_t close = pattern.find('}', open);
  const std::string_view prefix = pattern.substr(0, open);
  const std::string_view suffix = pattern.substr(close + 1);
  if (path.size() <= prefix.size() + suffix.size()) return false;
  if (!path.starts_with(prefix) || !path.ends_with(suffix)) return false;
  std::string_view middle = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  if (middle.find('/') != std::string_view::npos) return false;
  param = middle;
  return true;
}

}  // namespace

std::span<const RouteSpec> Routes() { return kRoutes; }

std::string_view RouteName(RouteId id) {
  for (const RouteSpec& r : kRoutes) {
    if (r.id == id) return r.name;
  }
  return "unknown";
}

RouteMatch MatchRoute(Method method, std::string_view path) {
  RouteMatch m;
  for (const RouteSpec& r : kRoutes) {
    std::string_view param;
    if (!Matches(r.pattern, path, param)) continue;
    // Every path has exactly one method (what /openapi.json documents).
    m.id = r.id;
    m.param = param;
    m.method_allowed = method == r.method;
    m.allow = r.method == Method::kGet ? "GET" : r.method == Method::kPost ? "POST" : "PUT";
    return m;
  }
  return m;
}

}  // namespace flashsale::http
