// The waiting room's routes (README "Admission control"): POST
// /products/{id}/queue hands out a place, GET /queue/{ticket} tells where it
// stands and, once admitted, hands out the pass that POST /purchase requires
// (checked by CheckPass, here too). Tickets and passes are signed
// (AdmissionTokens), so no lookup is needed to know whose they are; the
// queue's shared state is one store call per request.

#include "core/numbers.hpp"
#include "http/api.hpp"
#include "http/api_render.hpp"
#include "http/body_specs.hpp"
#include "http/json_body.hpp"

namespace flashsale::http {
namespace {

using render::Scratch;
using render::Send;
using render::SendStatusError;
using render::SendValidation;
using render::ThreadReader;

constexpr std::string_view kNoWaitingRoomMessage = "该商品无需排队，可直接抢购";

int SendNoWaitingRoom(std::string& out, bool ka) {
  return Send(out, 409, ErrorBody(409, kNoWaitingRoomMessage, "NO_WAITING_ROOM"), ka);
}

void AppendField(std::string& out, std::string_view name) {
  out.push_back(',');
  AppendJsonString(out, name);
  out.push_back(':');
}

void AppendIntField(std::string& out, std::string_view name, std::int64_t value) {
  AppendField(out, name);
  AppendInt(out, value);
}

void AppendStringField(std::string& out, std::string_view name, std::string_view value) {
  AppendField(out, name);
  AppendJsonString(out, value);
}

// {"code":200,"message":..,"data":true,"status":..: the seed's envelope,
// left open for the route's own fields.
void OpenEnvelope(std::string& out, std::string_view message, std::string_view status) {
  out.append("{\"code\":200,\"message\":");
  AppendJsonString(out, message);
  out.append(",\"data\":true,\"status\":");
  AppendJsonString(out, status);
}

}  // namespace

Api::Handled Api::RunQueueJob(bool ka, std::string& out, int& status, DeferredResponder& responder,
                              std::function<int(std::string&)> render) {
  if (options_.waiting_room->blocking()) {
    return RunBlockingJob(ka, out, status, responder, std::move(render));
  }
  status = render(out);
  return Handled::kAnswered;
}

Api::Handled Api::HandleQueueJoin(const HttpRequest& req, std::string_view id, std::string& out,
                                  int& status, DeferredResponder& responder) {
  const bool ka = req.keep_alive;
  // The purchase's rate limits (the same buckets): a bot cannot take places
  // faster than it could buy (README "Rate limits").
  if (const int limited = LimitAddress(req, out); limited != 0) {
    status = limited;
    return Handled::kAnswered;
  }
  std::optional<std::int64_t> product = ParseInt64(id, LeadingZeros::kRefuse);
  if (!product || *product <= 0) {
    status = SendValidation(
        out, {{"product_id", "Input should be a valid integer > 0", "int_parsing", "path"}}, ka);
    return Handled::kAnswered;
  }
  std::vector<FieldError> errors;
  BodyValues v;
  if (!ThreadReader().Read(req.body, kQueueJoinSpec, v, errors)) {
    status = SendValidation(out, errors, ka);
    return Handled::kAnswered;
  }
  const UserId user = *v.ints[0];
  if (const int limited = LimitUser(user, ka, out); limited != 0) {
    status = limited;
    return Handled::kAnswered;
  }
  if (options_.waiting_room == nullptr || !options_.admission_tokens) {
    status = SendStatusError(out, Status::Unavailable("no waiting room store"), ka);
    return Handled::kAnswered;
  }
  // The resolved client (X-Forwarded-For from a trusted proxy), not the peer.
  std::string address = ClientOf(req).ToString();
  return RunQueueJob(
      ka, out, status, responder,
      [this, product = *product, user, address = std::move(address), ka](std::string& o) {
        return RenderJoined(
            options_.waiting_room->Join(product, user, address, options_.queue_places_per_address,
                                        NowMillis()),
            product, user, ka, o);
      });
}

int Api::RenderJoined(const Result<WaitingRoomStore::Joined>& joined, ProductId product,
                      UserId user, bool ka, std::string& out) {
  if (!joined) return SendStatusError(out, joined.error(), ka);
  using Outcome = WaitingRoomStore::JoinOutcome;
  switch (joined->outcome) {
    case Outcome::kUnknownProduct:
      return Send(out, 404, ErrorBody(404, "商品不存在", "UNKNOWN_PRODUCT"), ka);
    case Outcome::kNoWaitingRoom:
      return SendNoWaitingRoom(out, ka);
    case Outcome::kAddressFull:
      queue_admitter_->Count(joined->state);
      return Send(out, 403, ErrorBody(403, "该地址的排队名额已用完", "QUEUE_PLACES_EXCEEDED"), ka);
    case Outcome::kJoined:
    case Outcome::kAlreadyJoined:
      break;
  }
  queue_admitter_->Count(joined->state);
  queue_admitter_->Touch(product);
  if (joined->outcome == Outcome::kJoined) funnel_metrics_.queue_joined.Inc();
  const QueueTicket ticket{product, user, joined->position, joined->state.generation};
  std::string& body = Scratch();
  OpenEnvelope(body, joined->outcome == Outcome::kJoined ? "排队成功" : "您已在队列中",
               joined->outcome == Outcome::kJoined ? "QUEUED" : "ALREADY_QUEUED");
  AppendStringField(body, "ticket", options_.admission_tokens->Ticket(ticket));
  AppendIntField(body, "product_id", product);
  AppendIntField(body, "user_id", user);
  AppendIntField(body, "position", joined->position);
  AppendIntField(body, "estimated_wait_s",
                 EstimatedWaitS(joined->state, joined->position, NowMillis()));
  body.push_back('}');
  return Send(out, 200, body, ka);
}

Api::Handled Api::HandleQueueStatus(const HttpRequest& req, std::string_view text, std::string& out,
                                    int& status, DeferredResponder& responder) {
  const bool ka = req.keep_alive;
  if (options_.waiting_room == nullptr || !options_.admission_tokens) {
    status = SendStatusError(out, Status::Unavailable("no waiting room store"), ka);
    return Handled::kAnswered;
  }
  std::optional<QueueTicket> ticket = options_.admission_tokens->ParseTicket(text);
  if (!ticket) {
    status = Send(out, 404, ErrorBody(404, "排队凭证无效", "TICKET_INVALID"), ka);
    return Handled::kAnswered;
  }
  return RunQueueJob(ka, out, status, responder,
                     [this, ticket = *ticket, text = std::string(text), ka](std::string& o) {
                       return RenderQueueStatus(ticket, text, ka, o);
                     });
}

int Api::RenderQueueStatus(const QueueTicket& ticket, std::string_view text, bool ka,
                           std::string& out) {
  const UnixMillis now = NowMillis();
  Result<std::optional<QueueState>> advanced = options_.waiting_room->Advance(ticket.product, now);
  if (!advanced) return SendStatusError(out, advanced.error(), ka);
  if (!*advanced) return SendNoWaitingRoom(out, ka);  // removed since, or the product is gone
  const QueueState& s = **advanced;
  queue_admitter_->Count(s);
  queue_admitter_->Touch(ticket.product);
  if (s.generation != ticket.generation || ticket.position > s.joined) {
    return Send(out, 410, ErrorBody(410, "排队已重置，请重新排队", "QUEUE_RESET"), ka);
  }
  const bool admitted = ticket.position <= s.AdmittedCount();
  std::string pass;
  UnixMillis pass_expires_at = 0;
  std::string_view state = "WAITING";
  std::string_view message = "排队中，请稍候";
  if (s.sold_out) {
    state = "SOLD_OUT";
    message = SeedMessage(PurchaseOutcome::kSoldOut);
  } else if (admitted) {
    // The pass lasts pass_ttl_s from the ticket's admission, however often it
    // is asked for: a holder who does not buy in time loses the turn.
    pass_expires_at = AdmittedAt(s, ticket.position) + s.room.pass_ttl_s * 1000;
    if (now < pass_expires_at) {
      state = "ADMITTED";
      message = "轮到您了，请在购买凭证有效期内抢购";
      pass = options_.admission_tokens->Pass(ticket.product, ticket.user, pass_expires_at);
    } else {
      state = "PASS_EXPIRED";
      message = "购买凭证已过期";
    }
  }
  std::string& body = Scratch();
  OpenEnvelope(body, message, state);
  AppendStringField(body, "ticket", text);
  AppendIntField(body, "product_id", ticket.product);
  AppendIntField(body, "user_id", ticket.user);
  AppendIntField(body, "position", ticket.position);
  AppendField(body, "admitted");
  body.append(admitted ? "true" : "false");
  AppendIntField(body, "estimated_wait_s", EstimatedWaitS(s, ticket.position, now));
  AppendIntField(body, "admitted_count", s.AdmittedCount());
  AppendIntField(body, "joined", s.joined);
  if (!pass.empty()) {
    AppendStringField(body, "pass", pass);
    AppendStringField(body, "pass_expires_at", FormatRfc3339(pass_expires_at));
  }
  body.push_back('}');
  return Send(out, 200, body, ka);
}

PassCheck Api::CheckPass(std::string_view pass, UserId user, ProductId product) {
  if (pass.empty()) return PassCheck::kAbsent;
  std::optional<PassRejection> rejected =
      options_.admission_tokens
          ? options_.admission_tokens->CheckPass(pass, user, product, NowMillis())
          : std::optional(PassRejection::kForged);
  if (!rejected) return PassCheck::kValid;
  funnel_metrics_.pass_rejected[static_cast<std::size_t>(*rejected)].Inc();
  return PassCheck::kInvalid;
}

}  // namespace flashsale::http
