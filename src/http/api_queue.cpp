// The waiting room's routes (README "Admission control").

#include "http/api.hpp"
#include "http/api_render.hpp"

namespace flashsale::http {

Api::Handled Api::HandleQueueJoin(const HttpRequest& req, std::string_view, std::string& out,
                                  int& status, DeferredResponder&) {
  RenderError(404, "Not Found", req.keep_alive, out);
  status = 404;
  return Handled::kAnswered;
}

Api::Handled Api::HandleQueueStatus(const HttpRequest& req, std::string_view, std::string& out,
                                    int& status, DeferredResponder&) {
  RenderError(404, "Not Found", req.keep_alive, out);
  status = 404;
  return Handled::kAnswered;
}

}  // namespace flashsale::http
