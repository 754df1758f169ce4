#pragma once
// The route table: every route of SPEC §4, once. /openapi.json documents
// exactly these (a test compares them). Stateless; thread-safe.

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "http/http_parser.hpp"

namespace flashsale::http {

enum class RouteId : std::uint8_t {
  kRoot,
  kPurchase,
  kOrder,
  kOrderPay,
  kOrderCancel,
  kUserOrders,
  kProducts,
  kProduct,
  kQueueJoin,
  kQueueStatus,
  kWaitingRoomPage,
  kAdminProduct,
  kAdminRestock,
  kHealthz,
  kReadyz,
  kMetrics,
  kOpenApi,
  kDocs,
  kDocsAsset,
  kUnknown,  // no route: 404
};
inline constexpr std::size_t kRouteCount = static_cast<std::size_t>(RouteId::kUnknown) + 1;

struct RouteSpec {
  RouteId id;
  Method method;
  std::string_view pattern;  // "/orders/{order_id}": one {param} segment at most
  std::string_view name;     // metrics label
};

// Every route, in match order.
std::span<const RouteSpec> Routes();
std::string_view RouteName(RouteId id);

struct RouteMatch {
  RouteId id = RouteId::kUnknown;
  bool method_allowed = false;
  std::string_view param;  // the {param} segment
  std::string_view allow;  // the one method of the path, for 405's Allow
};

RouteMatch MatchRoute(Method method, std::string_view path);

}  // namespace flashsale::http
