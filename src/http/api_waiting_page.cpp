// GET /waiting-room/{product_id}: the waiting room's page (README "The waiting page").
// The page is one static document (src/http/waiting_room.html, compiled in); it reads the
// product id from its own path and asks the API for everything else, so the handler only
// refuses ids that can never name a product. Whether the product exists, or has a waiting
// room, the page learns from POST /products/{id}/queue, as any client would.

#include "core/numbers.hpp"
#include "http/api.hpp"
#include "http/api_render.hpp"

namespace flashsale::http {

std::string_view WaitingRoomHtml();  // generated from src/http/waiting_room.html

using render::Send;

int Api::HandleWaitingRoomPage(std::string_view id, bool keep_alive, std::string& out) {
  // A page, not an API resource: a malformed id is "no such page" (404) rather than
  // GET /products/{id}'s 422, with the same body as an unknown product.
  std::optional<std::int64_t> product = ParseInt64(id, LeadingZeros::kRefuse);
  if (!product || *product <= 0) {
    return Send(out, 404, ErrorBody(404, "商品不存在", "UNKNOWN_PRODUCT"), keep_alive);
  }
  return Send(out, 200, WaitingRoomHtml(), keep_alive, "text/html; charset=utf-8");
}

}  // namespace flashsale::http
