// Api's admin routes: the bearer-token check (CheckAdmin) and PUT
// /admin/products/{id} and POST /admin/products/{id}/restock, which change the
// catalog and answer with the product as it now is.

#include <spdlog/spdlog.h>

#include "core/numbers.hpp"
#include "http/api.hpp"
#include "http/api_render.hpp"
#include "http/body_specs.hpp"
#include "http/json_body.hpp"

namespace flashsale::http {
namespace {

using render::AppendProduct;
using render::Scratch;
using render::Send;
using render::SendStatusError;
using render::SendValidation;
using render::ThreadReader;

}  // namespace

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

namespace {
// The {id} of /admin/products/{id}: a positive integer, or a path error in `errors`.
std::optional<std::int64_t> PathProductId(std::string_view id, std::vector<FieldError>& errors) {
  std::optional<std::int64_t> product_id = ParseInt64(id, LeadingZeros::kRefuse);
  if (!product_id || *product_id <= 0) {
    errors.push_back({"product_id", "Input should be a valid integer > 0", "int_parsing", "path"});
  }
  return product_id;
}
}  // namespace

int Api::HandleAdminPut(const HttpRequest& req, std::string_view id, std::string& out) {
  const bool ka = req.keep_alive;
  if (int s = CheckAdmin(req, out); s != 0) return s;
  std::vector<FieldError> errors;
  const std::optional<std::int64_t> product_id = PathProductId(id, errors);
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
  p.payment_window_s = v.ints[5];
  if (v.object_given) {
    p.waiting_room = WaitingRoom{.admit_per_s = *v.members[0], .pass_ttl_s = *v.members[1]};
  }
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
  std::vector<FieldError> errors;
  const std::optional<std::int64_t> product_id = PathProductId(id, errors);
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

}  // namespace flashsale::http
