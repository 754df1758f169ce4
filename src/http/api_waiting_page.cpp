// GET /waiting-room/{product_id}: the waiting room's page (README "Admission control").

#include "http/api.hpp"
#include "http/api_render.hpp"

namespace flashsale::http {

int Api::HandleWaitingRoomPage(std::string_view, bool keep_alive, std::string& out) {
  RenderError(404, "Not Found", keep_alive, out);
  return 404;
}

}  // namespace flashsale::http
