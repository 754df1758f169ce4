#pragma once
// Rendering shared by the Api's route files (api.cpp, api_purchase.cpp,
// api_admin.cpp): the answer table that maps every outcome and error to its
// HTTP status and body, the JSON of orders, products and arrays, and the
// helpers that append a whole response to a connection's output buffer.
//
// Internal to the http library: only the Api's own .cpp files include it.
// Thread safety: everything here is either constexpr, a pure function of its
// arguments writing into a caller's buffer, or per-thread state
// (ThreadReader(), Scratch()); all of it may be called from any thread
// concurrently. A Scratch() buffer is valid only until the same thread calls
// Scratch() again.
//
// What the purchase path calls per request (Send, Scratch, ThreadReader,
// AnswerFor) is inline here, so moving it out of api.cpp adds no call.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/domain.hpp"
#include "core/purchase.hpp"
#include "core/status.hpp"
#include "core/stock_store.hpp"
#include "http/json_body.hpp"
#include "http/response_writer.hpp"

namespace flashsale::http::render {

inline constexpr std::string_view kRetryAfter = "Retry-After: 1\r\n";
inline constexpr std::string_view kBusyMessage = "服务繁忙，请稍后重试";

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
    case PurchaseOutcome::kPassRequired:  // the waiting room's turn was not shown
    case PurchaseOutcome::kPassInvalid:
      return {403, 403, {}, false};
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

// This thread's request body reader (keeps its buffers across requests).
inline JsonBodyReader& ThreadReader() {
  thread_local JsonBodyReader reader;
  return reader;
}

// Scratch buffer for bodies built per request; keeps its capacity per thread.
// Returned cleared.
inline std::string& Scratch() {
  thread_local std::string scratch;
  scratch.clear();
  return scratch;
}

void AppendOrder(std::string& out, const Order& o);
void AppendProduct(std::string& out, const StockSnapshot& s);

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

// The purchase body of `outcome` (with `order_id` when not empty).
std::string PurchaseBody(PurchaseOutcome outcome, std::string_view order_id);

// Appends a whole response to `out`; returns `status`.
inline int Send(std::string& out, int status, std::string_view body, bool keep_alive,
                std::string_view content_type = kJson, std::string_view extra = {}) {
  AppendResponse(out, {status, content_type, extra, keep_alive}, body);
  return status;
}

// 422 in FastAPI's validation shape.
int SendValidation(std::string& out, const std::vector<FieldError>& errors, bool keep_alive);

// An error Status as its row of the answer table says. 503s carry the fixed
// busy message (backend details stay in the log), the others the Status's.
int SendStatusError(std::string& out, const Status& s, bool keep_alive, bool handoff = false);

}  // namespace flashsale::http::render
