// Api's purchase route end to end: POST /purchase validated and handed to the
// funnel (HandlePurchase), its answer rendered on the connection's thread
// (RenderPurchase, via RenderDeferred), and the 500 of a request that threw.
// This is the hot path: no allocation on the success case beyond the
// connection's buffer, all helpers inline (api_render.hpp).

#include <exception>

#include "http/api.hpp"
#include "http/api_render.hpp"
#include "http/body_specs.hpp"
#include "http/json_body.hpp"

namespace flashsale::http {
namespace {

using render::Answer;
using render::AnswerFor;
using render::kBusyMessage;
using render::kRetryAfter;
using render::Scratch;
using render::Send;
using render::SendStatusError;
using render::SendValidation;
using render::ThreadReader;

bool ValidIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > 128) return false;
  for (char c : key) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

}  // namespace

Api::Handled Api::HandlePurchase(const HttpRequest& req, std::string& out, int& status,
                                 DeferredResponder& responder) {
  const bool ka = req.keep_alive;
  // Rate limits first: the address before the body is read, the user once
  // the body is valid; a 429 reserves nothing (README "Rate limits").
  if (const int limited = LimitAddress(req, out); limited != 0) {
    status = limited;
    return Handled::kAnswered;
  }
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
  if (const int limited = LimitUser(purchase.user, ka, out); limited != 0) {
    status = limited;
    return Handled::kAnswered;
  }
  purchase.pass = CheckPass(req.flashsale_pass, purchase.user, purchase.product);
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
  if (reply.outcome == PurchaseOutcome::kPassRequired) {
    funnel_metrics_.pass_rejected[static_cast<std::size_t>(PassRejection::kMissing)].Inc();
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
  if (reply.outcome == PurchaseOutcome::kAccepted && options_.order_tokens) {
    // The buyer's proof for POST /orders/{id}/cancel: only in this answer
    // (and its Idempotency-Key replays, rendered here too).
    body.append("\",\"cancel_token\":\"");
    body.append(options_.order_tokens->CancelToken(reply.order_id));
  }
  body.append("\"}");
  return Send(out, status, body, keep_alive);
}

}  // namespace flashsale::http
