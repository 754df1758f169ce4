#pragma once
// Catalog files for `flashsale seed` (SPEC §5): a JSON array of
// {product_id, price, stock, starts_at?, ends_at?, limit_per_user?}, or CSV
// with a header row of the same names. Errors name the entry and the field.

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
