#pragma once
// Catalog files for `flashsale seed` (SPEC §5; both modes): a JSON
// array of {product_id, price, stock, starts_at?, ends_at?, limit_per_user?,
// payment_window_s?, waiting_room?: {admit_per_s, pass_ttl_s} | null}, or CSV
// with a header row of the same names, where the waiting room is two optional
// columns waiting_room_admit_per_s and waiting_room_pass_ttl_s (both filled or
// both empty). Errors name the entry (JSON) or line (CSV) and the field.

#include <string>
#include <vector>

#include "core/domain.hpp"
#include "core/status.hpp"

namespace flashsale::app {

Result<std::vector<Product>> ParseCatalogJson(std::string_view text);
Result<std::vector<Product>> ParseCatalogCsv(std::string_view text);
// By extension (.csv) or content (starts with '[').
Result<std::vector<Product>> ReadCatalogFile(const std::string& path);

}  // namespace flashsale::app
