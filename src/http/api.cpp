#include "http/api.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "core/numbers.hpp"
#include "http/body_specs.hpp"
#include "http/json_body.hpp"
#include "http/response_writer.hpp"

namespace flashsale::http {
namespace {

constexpr std::string_view kRetryAfter = "Retry-After: 1\r\n";
constexpr std::string_view kBusyMessage = "服务繁忙，请稍后重试";

// ---- The answer table: every outcome and error -> HTTP status and body ----
// Every route renders outcomes and Status errors through AnswerFor(), so one
// place says what a client sees. A new PurchaseOutcome (e.g. an
// Idempotency-Key mismatch, 422) fails to compile (-Wswitch) until it has
// its row here.
struct Answer {
  int http_status;
  int body_code;          // "code" in the body (the seed's: 400 for a refused purchase)
  std::string_view name;  // "status" in the body; empty: StatusName(outcome)
  bool retry_after;       // 503: the client may retry (Retry-After: 1)
};

constexpr Answer AnswerFor(PurchaseOutcome o) {
  switch (o) {
    case PurchaseOutcome::kAccepted:
      return {200, 200, {}, false};
    case PurchaseOutcome::kSoldOut:
    case PurchaseOutcome::kInsufficientStock:
    case PurchaseOutcome::kLimitExceeded:
    case PurchaseOutcome::kNotStarted:
    case PurchaseOutcome::kEnded:
      return {200, 400, {}, false};  // business refusals are 200s (SPEC §4)
    case PurchaseOutcome::kUnknownProduct:
      return {404, 404, {}, false};
    case PurchaseOutcome::kIdempotencyKeyMismatch:  // FastAPI's validation shape, header field
      return {422, 422, "idempotency_key_mismatch", false};
  }
  return {500, 500, "INTERNAL", false};
}

// `handoff`: the error ended a purchase's hand-off, where kUnknown means the
// order may exist (UNKNOWN, with its id); elsewhere it is just UNAVAILABLE.
constexpr Answer AnswerFor(Status::Code c, bool handoff = false) {
  switch (c) {
    case Status::Code::kNotFound:
      return {404, 404, "NOT_FOUND", false};
    case Status::Code::kConflict:
      return {409, 409, "STOCK_BELOW_SOLD", false};
    case Status::Code::kInvalid:  // rendered in FastAPI's validation shape
      return {422, 422, "value_error", false};
    case Status::Code::kInternal:
      return {500, 500, "INTERNAL", false};
    case Status::Code::kUnknown:
      return {503, 503, handoff ? "UNKNOWN" : "UNAVAILABLE", true};
    case Status::Code::kOk:  // not an error: callers never ask
    case Status::Code::kUnavailable:
    case Status::Code::kNotDelivered:
      break;
  }
  return {503, 503, "UNAVAILABLE", true};
}

JsonBodyReader& ThreadReader() {
  thread_local JsonBodyReader reader;
  return reader;
}

// Scratch buffer for bodies built per request; keeps its capacity per thread.
std::string& Scratch() {
  thread_local std::string scratch;
  scratch.clear();
  return scratch;
}

void AppendOptionalTime(std::string& out, const std::optional<UnixMillis>& t) {
  if (t) {
    AppendJsonString(out, FormatRfc3339(*t));
  } else {
    out.append("null");
  }
}

void AppendOrder(std::string& out, const Order& o) {
  out.append("{\"order_id\":");
  AppendJsonString(out, o.id.view());
  out.append(",\"user_id\":");
  AppendInt(out, o.user);
  out.append(",\"product_id\":");
  AppendInt(out, o.product);
  out.append(",\"amount\":");
  AppendInt(out, o.quantity);
  out.append(",\"price\":");
  out.append(FormatPrice(o.price));
  out.append(",\"status\":\"");
  out.append(ToString(o.status));
  out.append("\",\"created_at\":");
  AppendJsonString(out, FormatRfc3339(o.created_at));
  out.push_back('}');
}

void AppendProduct(std::string& out, const StockSnapshot& s) {
  const Product& p = s.product;
  out.append("{\"product_id\":");
  AppendInt(out, p.id);
  out.append(",\"price\":");
  out.append(FormatPrice(p.price));
  out.append(",\"stock\":");
  AppendInt(out, p.stock);
  out.append(",\"remaining\":");
  AppendInt(out, s.remaining);
  out.append(s.sold_out ? ",\"sold_out\":true" : ",\"sold_out\":false");
  out.append(",\"starts_at\":");
  AppendOptionalTime(out, p.starts_at);
  out.append(",\"ends_at\":");
  AppendOptionalTime(out, p.ends_at);
  out.append(",\"limit_per_user\":");
  AppendInt(out, p.limit_per_user);
  out.push_back('}');
}

// Appends `[item,item,...]`, each rendered by `append`.
template <class Items, class AppendItem>
void AppendArray(std::string& out, const Items& items, AppendItem append) {
  out.push_back('[');
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    append(out, items[i]);
  }
  out.push_back(']');
}

std::string PurchaseBody(PurchaseOutcome outcome, std::string_view order_id) {
  const bool accepted = outcome == PurchaseOutcome::kAccepted;
  std::string out = "{\"code\":" + std::to_string(AnswerFor(outcome).body_code);
  out.append(",\"message\":");
  AppendJsonString(out, SeedMessage(outcome));
  out.append(accepted ? ",\"data\":true" : ",\"data\":false");
  out.append(",\"status\":\"");
  out.append(StatusName(outcome));
  out.push_back('"');
  if (!order_id.empty()) {
    out.append(",\"order_id\":");
    AppendJsonString(out, order_id);
  }
  out.push_back('}');
  return out;
}

int Send(std::string& out, int status, std::string_view body, bool keep_alive,
         std::string_view content_type = kJson, std::string_view extra = {}) {
  AppendResponse(out, {status, content_type, extra, keep_alive}, body);
  return status;
}

int SendValidation(std::string& out, const std::vector<FieldError>& errors, bool keep_alive) {
  return Send(out, 422, RenderValidationErrors(errors), keep_alive);
}

// An error Status as its row of the answer table says. 503s carry the fixed
// busy message (backend details stay in the log), the others the Status's.
int SendStatusError(std::string& out, const Status& s, bool keep_alive, bool handoff = false) {
  const Answer a = AnswerFor(s.code(), handoff);
  if (s.code() == Status::Code::kInvalid) {
    return SendValidation(out, {{"", s.message(), std::string(a.name)}}, keep_alive);
  }
  if (a.retry_after) {
    return Send(out, a.http_status, ErrorBody(a.body_code, kBusyMessage, a.name), keep_alive, kJson,
                kRetryAfter);
  }
  return Send(out, a.http_status, ErrorBody(a.body_code, s.message(), a.name), keep_alive);
}

bool ValidIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > 128) return false;
  for (char c : key) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// ---- RequestMetrics -------------------------------------------------------

std::size_t RequestMetrics::StatusSlot(int status) {
  for (std::size_t i = 0; i + 1 < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) return i;
  }
  return kStatuses.size() - 1;  // other
}

void RequestMetrics::Record(RouteId route, int status, std::int64_t nanos) {
  const auto r = static_cast<std::size_t>(route);
  counts_[r][StatusSlot(status)].Inc();
  durations_[r].ObserveNanos(nanos);
}

void RequestMetrics::Render(std::string& out) const {
  out.append("# HELP flashsale_requests_total HTTP requests by route and status code.\n");
  out.append("# TYPE flashsale_requests_total counter\n");
  for (std::size_t r = 0; r < kRouteCount; ++r) {
    for (std::size_t s = 0; s < kStatuses.size(); ++s) {
      const std::int64_t v = counts_[r][s].Value();
      if (v == 0) continue;
      out.append("flashsale_requests_total{route=\"");
      out.append(RouteName(static_cast<RouteId>(r)));
      out.append("\",status=\"");
      out.append(kStatuses[s] == 0 ? "other" : std::to_string(kStatuses[s]));
      out.append("\"} ");
      out.append(std::to_string(v));
      out.push_back('\n');
    }
  }
  out.append("# HELP flashsale_request_duration_seconds HTTP request latency by route.\n");
  out.append("# TYPE flashsale_request_duration_seconds histogram\n");
  for (std::size_t r = 0; r < kRouteCount; ++r) {
    const std::string labels = "route=\"" + std::string(RouteName(static_cast<RouteId>(r))) + "\"";
    durations_[r].Render(out, "flashsale_request_duration_seconds", labels);
  }
  out.append(
      "# HELP flashsale_internal_errors_total Exceptions caught instead of ending the process "
      "(bugs; each was logged and answered 500 where a client waited).\n");
  out.append("# TYPE flashsale_internal_errors_total counter\n");
  out.append("flashsale_internal_errors_total " + std::to_string(InternalErrors().Value()) + "\n");
  out.append("# HELP flashsale_connections Open client connections.\n");
  out.append("# TYPE flashsale_connections gauge\n");
  out.append("flashsale_connections " + std::to_string(connections.Value()) + "\n");
}

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
        PurchaseOutcome::kUnknownProduct}) {
    fixed_purchase_bodies_[static_cast<std::size_t>(o)] = PurchaseBody(o, {});
  }
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

Api::Handled Api::HandlePurchase(const HttpRequest& req, std::string& out, int& status,
                                 DeferredResponder& responder) {
  const bool ka = req.keep_alive;
  const bool bad_key = req.has_idempotency_key && !ValidIdempotencyKey(req.idempotency_key);
  std::vector<FieldError> errors;
  BodyValues v;
  if (!ThreadReader().Read(req.body, kPurchaseSpec, v, errors) || bad_key) {
    if (bad_key) {
      errors.push_back({"Idempotency-Key", "must be 1 to 128 printable ASCII characters",
                        "string_pattern_mismatch", "header"});
    }
    status = SendValidation(out, errors, ka);
    return Handled::kAnswered;
  }
  PurchaseRequest purchase;
  purchase.user = *v.ints[0];
  purchase.product = *v.ints[1];
  purchase.amount = *v.ints[2];
  purchase.idempotency_key = req.has_idempotency_key ? req.idempotency_key : std::string_view{};
  // The callback holds only the connection (fits std::function's inline
  // storage: no allocation here); the reply is rendered on its thread.
  funnel_.Buy(purchase, [owner = responder.Retain()](const PurchaseReply& reply) {
    owner->Deliver(DeferredAnswer{reply});
  });
  return Handled::kDeferred;
}

int Api::RenderDeferred(RouteId route, const DeferredAnswer& answer, bool keep_alive,
                        std::string& out) {
  if (answer.error) std::rethrow_exception(answer.error);
  if (route == RouteId::kPurchase) return RenderPurchase(answer.purchase, keep_alive, out);
  out.append(answer.response);
  return answer.status;
}

int Api::RenderInternalError(bool keep_alive, std::string& out) {
  return SendStatusError(out, Status::Internal("internal error"), keep_alive);
}

int Api::RenderPurchase(const PurchaseReply& reply, bool keep_alive, std::string& out) {
  if (reply.status.ok() && reply.outcome == PurchaseOutcome::kIdempotencyKeyMismatch) {
    return SendValidation(out,
                          {{"Idempotency-Key", std::string(SeedMessage(reply.outcome)),
                            std::string(AnswerFor(reply.outcome).name), "header"}},
                          keep_alive);
  }
  if (!reply.status.ok()) {
    // Any other backend error of a purchase is a 503 for the client: nothing
    // was sold, or (kUnknown) the order may exist and the answer names it.
    const Status::Code code =
        reply.status.IsUnknown() ? Status::Code::kUnknown : Status::Code::kUnavailable;
    const Answer a = AnswerFor(code, /*handoff=*/true);
    std::string& body = Scratch();
    body = ErrorBody(a.body_code, kBusyMessage, a.name);
    if (reply.status.IsUnknown() && !reply.order_id.empty()) {
      body.pop_back();
      body.append(",\"order_id\":");
      AppendJsonString(body, reply.order_id.view());
      body.push_back('}');
    }
    return Send(out, a.http_status, body, keep_alive, kJson, kRetryAfter);
  }
  const int status = AnswerFor(reply.outcome).http_status;
  if (reply.order_id.empty()) {
    return Send(out, status, fixed_purchase_bodies_[static_cast<std::size_t>(reply.outcome)],
                keep_alive);
  }
  std::string& body = Scratch();
  body = fixed_purchase_bodies_[static_cast<std::size_t>(reply.outcome)];
  body.pop_back();
  body.append(",\"order_id\":\"");
  body.append(reply.order_id.view());
  body.append("\"}");
  return Send(out, status, body, keep_alive);
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

int Api::CheckAdmin(const HttpRequest& req, std::string& out) {
  const bool ka = req.keep_alive;
  if (options_.admin_token.empty()) {
    return Send(out, 403,
                ErrorBody(403, "admin API disabled: no ADMIN_TOKEN configured", "FORBIDDEN"), ka);
  }
  if (req.authorization.empty()) {
    return Send(out, 401, ErrorBody(401, "missing bearer token", "UNAUTHORIZED"), ka, kJson,
                "WWW-Authenticate: Bearer\r\n");
  }
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view given = req.authorization;
  if (!given.starts_with(kBearer)) {
    return Send(out, 401, ErrorBody(401, "expected a bearer token", "UNAUTHORIZED"), ka, kJson,
                "WWW-Authenticate: Bearer\r\n");
  }
  given.remove_prefix(kBearer.size());
  // Constant-time comparison: the token's length is not secret, its bytes are.
  const std::string& token = options_.admin_token;
  unsigned diff = given.size() == token.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned>(given[i] ^ token[i % token.size()]);
  }
  if (diff != 0) return Send(out, 403, ErrorBody(403, "wrong admin token", "FORBIDDEN"), ka);
  return 0;
}

int Api::HandleAdminPut(const HttpRequest& req, std::string_view id, std::string& out) {
  const bool ka = req.keep_alive;
  if (int s = CheckAdmin(req, out); s != 0) return s;
  std::optional<std::int64_t> product_id = ParseInt64(id, LeadingZeros::kRefuse);
  std::vector<FieldError> errors;
  if (!product_id || *product_id <= 0) {
    errors.push_back({"product_id", "Input should be a valid integer > 0", "int_parsing", "path"});
  }
  BodyValues v;
  ThreadReader().Read(req.body, kProductSpec, v, errors);
  if (errors.empty() && v.ints[2] && v.ints[3] && *v.ints[3] <= *v.ints[2]) {
    errors.push_back({"ends_at", "ends_at must be after starts_at", "value_error"});
  }
  if (!errors.empty()) return SendValidation(out, errors, ka);
  Product p;
  p.id = *product_id;
  p.stock = *v.ints[0];
  p.price = *v.ints[1];
  p.starts_at = v.ints[2];
  p.ends_at = v.ints[3];
  p.limit_per_user = v.ints[4].value_or(1);
  Result<PutResult> put = catalog_.Put(p);
  if (!put) return SendStatusError(out, put.error(), ka);
  spdlog::info("admin: product {} {} (stock {}, limit {})", p.id,
               put->created ? "created" : "replaced", p.stock, p.limit_per_user);
  Result<std::optional<StockSnapshot>> now = catalog_.Get(p.id);
  if (!now || !*now) return SendStatusError(out, Status::Internal("product vanished"), ka);
  std::string& body = Scratch();
  AppendProduct(body, **now);
  return Send(out, put->created ? 201 : 200, body, ka);
}

int Api::HandleAdminRestock(const HttpRequest& req, std::string_view id, std::string& out) {
  const bool ka = req.keep_alive;
  if (int s = CheckAdmin(req, out); s != 0) return s;
  std::optional<std::int64_t> product_id = ParseInt64(id, LeadingZeros::kRefuse);
  std::vector<FieldError> errors;
  if (!product_id || *product_id <= 0) {
    errors.push_back({"product_id", "Input should be a valid integer > 0", "int_parsing", "path"});
  }
  BodyValues v;
  ThreadReader().Read(req.body, kRestockSpec, v, errors);
  if (!errors.empty()) return SendValidation(out, errors, ka);
  Result<PutResult> restocked = catalog_.Restock(*product_id, *v.ints[0]);
  if (!restocked) {
    if (restocked.error().code() == Status::Code::kNotFound) {
      return Send(out, 404, ErrorBody(404, "商品不存在", "UNKNOWN_PRODUCT"), ka);
    }
    return SendStatusError(out, restocked.error(), ka);
  }
  spdlog::info("admin: product {} restocked by {}", *product_id, *v.ints[0]);
  Result<std::optional<StockSnapshot>> now = catalog_.Get(*product_id);
  if (!now || !*now) return SendStatusError(out, Status::Internal("product vanished"), ka);
  std::string& body = Scratch();
  AppendProduct(body, **now);
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
