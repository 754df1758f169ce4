// The out-of-line half of api_render.hpp: JSON of orders, products and
// purchase bodies, and the error responses (off the purchase path's success
// case).

#include "http/api_render.hpp"

#include "core/numbers.hpp"

namespace flashsale::http::render {
namespace {

void AppendOptionalTime(std::string& out, const std::optional<UnixMillis>& t) {
  if (t) {
    AppendJsonString(out, FormatRfc3339(*t));
  } else {
    out.append("null");
  }
}

}  // namespace

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
  // The lifecycle's times: null when they do not apply (yet).
  out.append(",\"pay_by\":");
  AppendOptionalTime(out, o.pay_by);
  out.append(",\"paid_at\":");
  AppendOptionalTime(out, o.paid_at);
  out.append(",\"closed_at\":");
  AppendOptionalTime(out, o.closed_at);
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
  out.append(",\"payment_window_s\":");
  if (p.payment_window_s) {
    AppendInt(out, *p.payment_window_s);
  } else {
    out.append("null");
  }
  out.append(",\"waiting_room\":");
  if (p.waiting_room) {
    out.append("{\"admit_per_s\":");
    AppendInt(out, p.waiting_room->admit_per_s);
    out.append(",\"pass_ttl_s\":");
    AppendInt(out, p.waiting_room->pass_ttl_s);
    out.push_back('}');
  } else {
    out.append("null");
  }
  out.push_back('}');
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

int SendValidation(std::string& out, const std::vector<FieldError>& errors, bool keep_alive) {
  return Send(out, 422, RenderValidationErrors(errors), keep_alive);
}

int SendStatusError(std::string& out, const Status& s, bool keep_alive, bool handoff) {
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

}  // namespace flashsale::http::render
