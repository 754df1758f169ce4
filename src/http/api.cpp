// Api: construction, the Handle() dispatch, running routes on the blocking
// pool, the read routes (products, orders), readyz, metrics and docs. The
// purchase route is in api_purchase.cpp, the admin routes in api_admin.cpp,
// the shared rendering in api_render.hpp.

#include "http/api.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/numbers.hpp"
#include "http/api_render.hpp"
#include "http/json_body.hpp"
#include "http/response_writer.hpp"

namespace flashsale::http {
namespace {

using render::AppendArray;
using render::AppendOrder;
using render::AppendProduct;
using render::PurchaseBody;
using render::Scratch;
using render::Send;
using render::SendStatusError;
using render::SendValidation;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// ---- Api ------------------------------------------------------------------

Api::Api(PurchaseFunnel& funnel, Catalog& catalog, OrderRepository& repository,
         FunnelMetrics& funnel_metrics, std::vector<ReadinessCheck> checks, ApiOptions options)
    : funnel_(funnel),
      catalog_(catalog),
      repository_(repository),
      funnel_metrics_(funnel_metrics),
      checks_(std::move(checks)),
      options_(std::move(options)),
      blocking_(options_.blocking_threads, options_.blocking_queue) {
  if (options_.waiting_room != nullptr) {
    queue_admitter_ = std::make_unique<QueueAdmitter>(*options_.waiting_room, funnel_metrics_);
    queue_admitter_->Start();
  }
  const std::pair<const char*, const char*> kAssets[] = {
      {"swagger-ui.css", "text/css"},
      {"swagger-ui-bundle.js", "application/javascript"},
      {"swagger-ui-standalone-preset.js", "application/javascript"},
      {"favicon-32x32.png", "image/png"},
  };
  for (const auto& [name, type] : kAssets) {
    std::string bytes = ReadFile(options_.swagger_ui_dir + "/" + name);
    if (bytes.empty()) {
      spdlog::warn("swagger-ui asset {} not found in {}: /docs will not render", name,
                   options_.swagger_ui_dir);
      continue;
    }
    assets_[name] = {type, std::move(bytes)};
  }
  for (PurchaseOutcome o :
       {PurchaseOutcome::kAccepted, PurchaseOutcome::kSoldOut, PurchaseOutcome::kInsufficientStock,
        PurchaseOutcome::kLimitExceeded, PurchaseOutcome::kNotStarted, PurchaseOutcome::kEnded,
        PurchaseOutcome::kUnknownProduct, PurchaseOutcome::kPassRequired,
        PurchaseOutcome::kPassInvalid}) {
    fixed_purchase_bodies_[static_cast<std::size_t>(o)] = PurchaseBody(o, {});
  }
  if (options_.address_limit.enabled()) {
    address_limiter_ =
        std::make_unique<RateLimiter>(options_.address_limit, options_.rate_limit_slots);
  }
  if (options_.user_limit.enabled()) {
    user_limiter_ = std::make_unique<RateLimiter>(options_.user_limit, options_.rate_limit_slots);
  }
}

// ---- Rate limits (README "Rate limits") ------------------------------------

namespace {

// The 429 of either limit: the seed's envelope, Retry-After in whole seconds.
int SendRateLimited(std::int64_t retry_after_s, bool keep_alive, std::string& out) {
  static const std::string kBody = ErrorBody(429, "请求过于频繁", "RATE_LIMITED");
  char header[48];
  const int n = std::snprintf(header, sizeof header, "Retry-After: %lld\r\n",
                              static_cast<long long>(retry_after_s));
  return render::Send(out, 429, kBody, keep_alive, kJson,
                      std::string_view(header, static_cast<std::size_t>(n)));
}

}  // namespace

ClientAddress Api::ClientOf(const HttpRequest& req) const {
  return ResolveClient(req.peer, req.peer_is_trusted_proxy, req.forwarded_for,
                       options_.trusted_proxies);
}

int Api::LimitAddress(const HttpRequest& req, std::string& out) {
  if (!address_limiter_) return 0;
  const RateDecision d = address_limiter_->Acquire(ClientOf(req).Hash());
  if (d.allowed) return 0;
  funnel_metrics_.rate_limited[static_cast<std::size_t>(RateLimitKey::kAddress)].Inc();
  return SendRateLimited(d.retry_after_s, req.keep_alive, out);
}

int Api::LimitUser(UserId user, bool keep_alive, std::string& out) {
  if (!user_limiter_) return 0;
  const RateDecision d = user_limiter_->Acquire(static_cast<std::uint64_t>(user));
  if (d.allowed) return 0;
  funnel_metrics_.rate_limited[static_cast<std::size_t>(RateLimitKey::kUser)].Inc();
  return SendRateLimited(d.retry_after_s, keep_alive, out);
}

void Api::RenderError(int status, std::string_view message, bool keep_alive, std::string& out,
                      std::string_view extra_headers) {
  std::string status_name(ReasonPhrase(status));
  for (char& c : status_name) c = c == ' ' ? '_' : static_cast<char>(std::toupper(c));
  Send(out, status, ErrorBody(status, message, status_name), keep_alive, kJson, extra_headers);
}

template <class Render>
Api::Handled Api::RunBlocking(bool keep_alive, std::string& out, int& status,
                              DeferredResponder& responder, Render render) {
  const bool queued =
      blocking_.TrySubmit([owner = responder.Retain(), render = std::move(render)]() mutable {
        DeferredAnswer answer;
        try {
          answer.status = render(answer.response);
        } catch (...) {  // answered by the connection's seam (500, log, metric)
          answer.error = std::current_exception();
        }
        owner->Deliver(std::move(answer));
      });
  if (queued) return Handled::kDeferred;
  status = SendStatusError(out, Status::Unavailable("blocking pool full"), keep_alive);
  return Handled::kAnswered;
}

Api::Handled Api::RunBlockingJob(bool keep_alive, std::string& out, int& status,
                                 DeferredResponder& responder,
                                 std::function<int(std::string&)> render) {
  return RunBlocking(keep_alive, out, status, responder, std::move(render));
}

Api::Handled Api::Handle(const HttpRequest& req, const RouteMatch& match, std::string& out,
                         int& status, DeferredResponder& responder) {
  const bool ka = req.keep_alive;
  if (match.id == RouteId::kUnknown) {
    status = Send(out, 404, ErrorBody(404, "Not Found", "NOT_FOUND"), ka);
    return Handled::kAnswered;
  }
  if (!match.method_allowed) {
    std::string allow = "Allow: " + std::string(match.allow) + "\r\n";
    status = Send(out, 405, ErrorBody(405, "Method Not Allowed", "METHOD_NOT_ALLOWED"), ka, kJson,
                  allow);
    return Handled::kAnswered;
  }
  switch (match.id) {
    case RouteId::kPurchase:
      return HandlePurchase(req, out, status, responder);
    case RouteId::kRoot:
      status = HandleRoot(ka, out);
      return Handled::kAnswered;
    case RouteId::kOrder:
      return RunBlocking(ka, out, status, responder,
                         [this, id = std::string(match.param), ka](std::string& o) {
                           return HandleOrder(id, ka, o);
                         });
    case RouteId::kOrderPay:
      return HandleOrderPay(req, match.param, out, status, responder);
    case RouteId::kOrderCancel:
      return HandleOrderCancel(req, match.param, out, status, responder);
    case RouteId::kUserOrders:
      return RunBlocking(ka, out, status, responder,
                         [this, id = std::string(match.param), ka](std::string& o) {
                           return HandleUserOrders(id, ka, o);
                         });
    case RouteId::kProducts:
      status = HandleProducts(req.query, ka, out);
      return Handled::kAnswered;
    case RouteId::kProduct:
      status = HandleProduct(match.param, ka, out);
      return Handled::kAnswered;
    case RouteId::kQueueJoin:
      return HandleQueueJoin(req, match.param, out, status, responder);
    case RouteId::kQueueStatus:
      return HandleQueueStatus(req, match.param, out, status, responder);
    case RouteId::kWaitingRoomPage:
      status = HandleWaitingRoomPage(match.param, ka, out);
      return Handled::kAnswered;
    case RouteId::kAdminProduct:
      status = HandleAdminPut(req, match.param, out);
      return Handled::kAnswered;
    case RouteId::kAdminRestock:
      status = HandleAdminRestock(req, match.param, out);
      return Handled::kAnswered;
    case RouteId::kHealthz:
      status = Send(out, 200, R"({"status":"ok"})", ka);
      return Handled::kAnswered;
    case RouteId::kReadyz:
      return RunBlocking(ka, out, status, responder,
                         [this, ka](std::string& o) { return HandleReadyz(ka, o); });
    case RouteId::kMetrics:
      status = HandleMetrics(ka, out);
      return Handled::kAnswered;
    case RouteId::kOpenApi:
      status = Send(out, 200, OpenApiJson(), ka);
      return Handled::kAnswered;
    case RouteId::kDocs:
      status = Send(out, 200, DocsHtml(), ka, "text/html; charset=utf-8");
      return Handled::kAnswered;
    case RouteId::kDocsAsset:
      status = HandleDocsAsset(match.param, ka, out);
      return Handled::kAnswered;
    case RouteId::kUnknown:
      break;
  }
  FLASHSALE_CHECK(false, "unrouted RouteId");
}

int Api::HandleRoot(bool ka, std::string& out) {
  std::string& body = Scratch();
  body.append("{\"message\":\"Welcome to the flashsale API (高并发秒杀系统)\",\"version\":");
  AppendJsonString(body, options_.version);
  body.push_back('}');
  return Send(out, 200, body, ka);
}

int Api::HandleOrder(std::string_view id, bool ka, std::string& out) {
  std::optional<OrderId> order_id = OrderId::Parse(id);
  if (!order_id) return Send(out, 404, ErrorBody(404, "订单不存在", "ORDER_NOT_FOUND"), ka);
  Result<std::optional<Order>> found = repository_.FindOrder(*order_id);
  if (!found) return SendStatusError(out, found.error(), ka);
  if (!*found) return Send(out, 404, ErrorBody(404, "订单不存在", "ORDER_NOT_FOUND"), ka);
  std::string& body = Scratch();
  AppendOrder(body, **found);
  return Send(out, 200, body, ka);
}

int Api::HandleUserOrders(std::string_view id, bool ka, std::string& out) {
  std::optional<std::int64_t> user = ParseInt64(id, LeadingZeros::kRefuse);
  if (!user || *user < 0) {
    return SendValidation(
        out, {{"user_id", "Input should be a valid integer >= 0", "int_parsing", "path"}}, ka);
  }
  Result<std::vector<Order>> orders = repository_.OrdersOfUser(*user, 1000);
  if (!orders) return SendStatusError(out, orders.error(), ka);
  std::string& body = Scratch();
  AppendArray(body, *orders, AppendOrder);
  return Send(out, 200, body, ka);
}

int Api::HandleProducts(std::string_view query, bool ka, std::string& out) {
  std::int64_t offset = 0;
  std::int64_t limit = 100;
  std::vector<FieldError> errors;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (name == "offset") {
      std::optional<std::int64_t> v = ParseInt64(value, LeadingZeros::kRefuse);
      if (!v || *v < 0) {
        errors.push_back({"offset", "Input should be an integer >= 0", "int_parsing", "query"});
      } else {
        offset = *v;
      }
    } else if (name == "limit") {
      std::optional<std::int64_t> v = ParseInt64(value, LeadingZeros::kRefuse);
      if (!v || *v < 1 || *v > 1000) {
        errors.push_back(
            {"limit", "Input should be an integer from 1 to 1000", "int_parsing", "query"});
      } else {
        limit = *v;
      }
    }
  }
  if (!errors.empty()) return SendValidation(out, errors, ka);
  Result<std::vector<StockSnapshot>> page = catalog_.List(offset, limit);
  if (!page) return SendStatusError(out, page.error(), ka);
  std::string& body = Scratch();
  AppendArray(body, *page, AppendProduct);
  return Send(out, 200, body, ka);
}

int Api::HandleProduct(std::string_view id, bool ka, std::string& out) {
  std::optional<std::int64_t> product = ParseInt64(id, LeadingZeros::kRefuse);
  if (!product || *product <= 0) {
    return SendValidation(
        out, {{"product_id", "Input should be a valid integer > 0", "int_parsing", "path"}}, ka);
  }
  Result<std::optional<StockSnapshot>> found = catalog_.Get(*product);
  if (!found) return SendStatusError(out, found.error(), ka);
  if (!*found) return Send(out, 404, ErrorBody(404, "商品不存在", "UNKNOWN_PRODUCT"), ka);
  std::string& body = Scratch();
  AppendProduct(body, **found);
  return Send(out, 200, body, ka);
}

int Api::HandleReadyz(bool ka, std::string& out) {
  std::string& body = Scratch();
  bool ready = true;
  std::string checks;
  for (std::size_t i = 0; i < checks_.size(); ++i) {
    Status s = checks_[i].check();
    ready = ready && s.ok();
    if (i > 0) checks.push_back(',');
    AppendJsonString(checks, checks_[i].name);
    checks.push_back(':');
    AppendJsonString(checks, s.ok() ? std::string("ok") : s.message());
  }
  body.append(ready ? "{\"ready\":true,\"checks\":{" : "{\"ready\":false,\"checks\":{");
  body.append(checks);
  body.append("}}");
  return Send(out, ready ? 200 : 503, body, ka);
}

int Api::HandleMetrics(bool ka, std::string& out) {
  std::string& body = Scratch();
  funnel_metrics_.Render(body);
  request_metrics_.Render(body);
  return Send(out, 200, body, ka, "text/plain; version=0.0.4; charset=utf-8");
}

int Api::HandleDocsAsset(std::string_view name, bool ka, std::string& out) {
  auto it = assets_.find(std::string(name));
  if (it == assets_.end()) return Send(out, 404, ErrorBody(404, "Not Found", "NOT_FOUND"), ka);
  return Send(out, 200, it->second.second, ka, it->second.first);
}

}  // namespace flashsale::http
