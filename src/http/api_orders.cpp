// Api's order lifecycle routes (README "Order lifecycle"):
//   POST /orders/{id}/pay     the shop's payment service, HMAC-signed
//   POST /orders/{id}/cancel  the shop (admin token) or the buyer (cancel_token)
// Checks that need no backend (signature, token, body) run on the I/O thread;
// the decision, a database transaction, on the blocking pool. Answers use the
// seed's envelope {"code", "message", "data", "status"}, with the order (as
// it is after the decision) in "data" and its status in "status".

#include <spdlog/spdlog.h>

#include "http/api.hpp"
#include "http/api_render.hpp"
#include "http/body_specs.hpp"
#include "http/json_body.hpp"

namespace flashsale::http {
namespace {

using render::AppendOrder;
using render::Send;
using render::SendStatusError;
using render::SendValidation;
using render::ThreadReader;

int SendOrderNotFound(std::string& out, bool ka) {
  return Send(out, 404, ErrorBody(404, "订单不存在", "ORDER_NOT_FOUND"), ka);
}

// {"code":..,"message":..,"data":<order>,"status":<status>}
int SendOrderAnswer(std::string& out, int code, std::string_view message, const Order& order,
                    std::string_view status, bool ka) {
  std::string body = "{\"code\":" + std::to_string(code) + ",\"message\":";
  AppendJsonString(body, message);
  body.append(",\"data\":");
  AppendOrder(body, order);
  body.append(",\"status\":");
  AppendJsonString(body, status);
  body.push_back('}');
  return Send(out, code, body, ka);
}

}  // namespace

Api::Handled Api::HandleOrderPay(const HttpRequest& req, std::string_view id, std::string& out,
                                 int& status, DeferredResponder& responder) {
  const bool ka = req.keep_alive;
  // Taken before anything else: a payment that reached us before pay_by is
  // in time, however long it then waits for the database.
  const UnixMillis received_at = NowMillis();
  auto reject = [this](PaymentRejection why) {
    funnel_metrics_.payment_rejected[static_cast<std::size_t>(why)].Inc();
  };
  if (options_.payment_webhook_secret.empty()) {
    status = Send(out, 403,
                  ErrorBody(403, "支付回调未启用：未配置 PAYMENT_WEBHOOK_SECRET", "FORBIDDEN"), ka);
    return Handled::kAnswered;
  }
  if (options_.lifecycle == nullptr) {
    status = SendStatusError(out, Status::Unavailable("no order lifecycle"), ka);
    return Handled::kAnswered;
  }
  const SignatureCheck check = CheckPaymentSignature(
      options_.payment_webhook_secret, req.payment_signature, req.body, received_at / 1000);
  if (check != SignatureCheck::kValid) {
    reject(PaymentRejection::kSignature);
    spdlog::warn("payment for order {} refused: signature {}", id, ToString(check));
    status = Send(out, 401, ErrorBody(401, "签名无效", "INVALID_SIGNATURE"), ka);
    return Handled::kAnswered;
  }
  std::optional<OrderId> order_id = OrderId::Parse(id);
  if (!order_id) {
    reject(PaymentRejection::kNotFound);
    status = SendOrderNotFound(out, ka);
    return Handled::kAnswered;
  }
  BodyValues v;
  std::vector<FieldError> errors;
  ThreadReader().Read(req.body, kPaySpec, v, errors);
  if (!errors.empty()) {
    reject(PaymentRejection::kInvalid);
    status = SendValidation(out, errors, ka);
    return Handled::kAnswered;
  }
  Payment payment{*order_id, std::move(v.strings[0]), *v.ints[1], received_at};
  return RunBlockingJob(
      ka, out, status, responder, [this, payment = std::move(payment), ka, reject](std::string& o) {
        OrderLifecycle& lifecycle = *options_.lifecycle;
        Result<PaymentDecision> d = lifecycle.Pay(payment, std::nullopt);
        if (d && d->outcome == PaymentOutcome::kNotFound) {
          // Not stored: decided from its in-flight copy, if any.
          Result<std::optional<Order>> found = repository_.FindOrder(payment.order);
          if (!found) return SendStatusError(o, found.error(), ka);
          if (*found && (*found)->status == OrderStatus::kPending) {
            d = lifecycle.Pay(payment, *found);
          }
        }
        if (!d) return SendStatusError(o, d.error(), ka);
        switch (d->outcome) {
          case PaymentOutcome::kPaid:
          case PaymentOutcome::kRecorded:
            // Counted once: a repeated call finds the first one's time.
            if (d->order.paid_at == payment.received_at) {
              funnel_metrics_.orders_paid.Inc();
            }
            return SendOrderAnswer(o, 200, "支付成功", d->order, "PAID", ka);
          case PaymentOutcome::kNotFound:
            reject(PaymentRejection::kNotFound);
            return SendOrderNotFound(o, ka);
          case PaymentOutcome::kAmountMismatch:
            reject(PaymentRejection::kAmount);
            return SendOrderAnswer(o, 409, "支付金额与订单金额不符", d->order,
                                   ToString(d->order.status), ka);
          case PaymentOutcome::kWrongStatus:
            reject(PaymentRejection::kWrongStatus);
            return SendOrderAnswer(o, 409, "订单状态不允许支付", d->order,
                                   ToString(d->order.status), ka);
        }
        return SendStatusError(o, Status::Internal("unknown outcome"), ka);
      });
}

Api::Handled Api::HandleOrderCancel(const HttpRequest& req, std::string_view id, std::string& out,
                                    int& status, DeferredResponder& responder) {
  const bool ka = req.keep_alive;
  if (options_.lifecycle == nullptr) {
    status = SendStatusError(out, Status::Unavailable("no order lifecycle"), ka);
    return Handled::kAnswered;
  }
  std::optional<OrderId> order_id = OrderId::Parse(id);
  if (!order_id) {
    status = SendOrderNotFound(out, ka);
    return Handled::kAnswered;
  }
  if (!req.authorization.empty()) {
    // The shop: its admin token, and no body needed.
    if (int s = CheckAdmin(req, out); s != 0) {
      status = s;
      return Handled::kAnswered;
    }
  } else {
    // The buyer: the cancel_token of the ACCEPTED answer. Checked before the
    // order is looked up, so a wrong token tells nothing about the order.
    BodyValues v;
    std::vector<FieldError> errors;
    ThreadReader().Read(req.body, kCancelSpec, v, errors);
    if (!errors.empty()) {
      status = SendValidation(out, errors, ka);
      return Handled::kAnswered;
    }
    if (!options_.order_tokens ||
        !options_.order_tokens->CheckCancelToken(*order_id, v.strings[0])) {
      status = Send(out, 403, ErrorBody(403, "取消凭证无效", "INVALID_CANCEL_TOKEN"), ka);
      return Handled::kAnswered;
    }
  }
  return RunBlockingJob(ka, out, status, responder, [this, id = *order_id, ka](std::string& o) {
    Result<CancelDecision> d = options_.lifecycle->Cancel(id, NowMillis());
    if (!d) return SendStatusError(o, d.error(), ka);
    switch (d->outcome) {
      case CancelOutcome::kCancelled:
        if (options_.on_order_closed) options_.on_order_closed();
        return SendOrderAnswer(o, 200, "订单已取消", d->order, "CANCELLED", ka);
      case CancelOutcome::kWrongStatus:
        return SendOrderAnswer(o, 409, "订单状态不允许取消", d->order, ToString(d->order.status),
                               ka);
      case CancelOutcome::kNotFound: {
        // Not stored yet: still in flight (retry once it lands), or unknown.
        Result<std::optional<Order>> found = repository_.FindOrder(id);
        if (!found) return SendStatusError(o, found.error(), ka);
        if (!*found) return SendOrderNotFound(o, ka);
        return SendOrderAnswer(o, 409, "订单处理中，请稍后重试", **found,
                               ToString((*found)->status), ka);
      }
    }
    return SendStatusError(o, Status::Internal("unknown outcome"), ka);
  });
}

}  // namespace flashsale::http
