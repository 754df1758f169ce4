#pragma once
// The request bodies of SPEC §4, as strict field specs for JsonBodyReader.
// One definition, used by the Api and by the fuzzers.

#include "http/json_body.hpp"

namespace flashsale::http {

// POST /purchase
inline constexpr FieldSpec kPurchaseSpec[] = {
    {"user_id", FieldType::kInt, true, 0},
    {"product_id", FieldType::kInt, true, 1},
    {"amount", FieldType::kInt, true, 1},
};
// PUT /admin/products/{id}; indexes: stock, price, starts_at, ends_at, limit_per_user.
inline constexpr FieldSpec kProductSpec[] = {
    {"stock", FieldType::kInt, true, 0},
    {"price", FieldType::kPrice, true, std::nullopt},
    {"starts_at", FieldType::kTimestampOrNull, false, std::nullopt},
    {"ends_at", FieldType::kTimestampOrNull, false, std::nullopt},
    {"limit_per_user", FieldType::kInt, false, 1},
};
// POST /admin/products/{id}/restock
inline constexpr FieldSpec kRestockSpec[] = {
    {"amount", FieldType::kInt, true, 1},
};

}  // namespace flashsale::http
