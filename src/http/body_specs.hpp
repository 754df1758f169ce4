#pragma once
// The request bodies of SPEC §4, as strict field specs for JsonBodyReader.
// One definition, used by the Api and by the fuzzers.

#include "core/domain.hpp"
#include "http/json_body.hpp"

namespace flashsale::http {

// POST /purchase
inline constexpr FieldSpec kPurchaseSpec[] = {
    {"user_id", FieldType::kInt, true, 0},
    {"product_id", FieldType::kInt, true, 1},
    {"amount", FieldType::kInt, true, 1},
};
// The longest payment window a product may have: a week (pay_by stays far
// from any overflow, and an order's in-flight marker outlives it).
inline constexpr std::int64_t kMaxPaymentWindowS = 7 * 24 * 3600;

// The members of a product's "waiting_room" object; indexes: admit_per_s, pass_ttl_s.
inline constexpr FieldSpec kWaitingRoomSpec[] = {
    {"admit_per_s", FieldType::kInt, true, 1, kMaxAdmitPerS},
    {"pass_ttl_s", FieldType::kInt, true, 1, kMaxPassTtlS},
};
// PUT /admin/products/{id}; indexes: stock, price, starts_at, ends_at,
// limit_per_user, payment_window_s, waiting_room (null or absent: none).
inline constexpr FieldSpec kProductSpec[] = {
    {"stock", FieldType::kInt, true, 0},
    {"price", FieldType::kPrice, true, std::nullopt},
    {"starts_at", FieldType::kTimestampOrNull, false, std::nullopt},
    {"ends_at", FieldType::kTimestampOrNull, false, std::nullopt},
    {"limit_per_user", FieldType::kInt, false, 1},
    {"payment_window_s", FieldType::kIntOrNull, false, 1, kMaxPaymentWindowS},
    {"waiting_room", FieldType::kObjectOrNull, false, std::nullopt, std::nullopt, kWaitingRoomSpec},
};
// POST /orders/{id}/pay (signed by the payment service); indexes: payment_ref, amount.
inline constexpr FieldSpec kPaySpec[] = {
    {"payment_ref", FieldType::kString, true, std::nullopt, 128},
    {"amount", FieldType::kPrice, true, std::nullopt},
};
// POST /orders/{id}/cancel by the buyer (the shop sends its admin token and no body).
inline constexpr FieldSpec kCancelSpec[] = {
    {"cancel_token", FieldType::kString, true, std::nullopt, 64},
};
// POST /products/{id}/queue (the waiting room's join)
inline constexpr FieldSpec kQueueJoinSpec[] = {
    {"user_id", FieldType::kInt, true, 0},
};
// POST /admin/products/{id}/restock
inline constexpr FieldSpec kRestockSpec[] = {
    {"amount", FieldType::kInt, true, 1},
};

}  // namespace flashsale::http
