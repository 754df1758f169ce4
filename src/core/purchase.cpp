#include "core/purchase.hpp"

namespace flashsale {

std::string_view StatusName(PurchaseOutcome o) {
  switch (o) {
    case PurchaseOutcome::kAccepted:
      return "ACCEPTED";
    case PurchaseOutcome::kSoldOut:
      return "SOLD_OUT";
    case PurchaseOutcome::kInsufficientStock:
      return "INSUFFICIENT_STOCK";
    case PurchaseOutcome::kLimitExceeded:
      return "LIMIT_EXCEEDED";
    case PurchaseOutcome::kNotStarted:
      return "NOT_STARTED";
    case PurchaseOutcome::kEnded:
      return "ENDED";
    case PurchaseOutcome::kUnknownProduct:
      return "UNKNOWN_PRODUCT";
    case PurchaseOutcome::kPassRequired:
      return "PASS_REQUIRED";
    case PurchaseOutcome::kPassInvalid:
      return "PASS_INVALID";
    case PurchaseOutcome::kIdempotencyKeyMismatch:
      return "IDEMPOTENCY_KEY_MISMATCH";
  }
  FLASHSALE_CHECK(false, "unknown PurchaseOutcome");
}

std::string_view SeedMessage(PurchaseOutcome o) {
  switch (o) {
    case PurchaseOutcome::kAccepted:
      return "抢购成功，订单正在处理中！";
    case PurchaseOutcome::kSoldOut:
      return "商品已售罄";
    case PurchaseOutcome::kInsufficientStock:
      return "商品库存不足";
    case PurchaseOutcome::kLimitExceeded:
      return "超出限购数量";
    case PurchaseOutcome::kNotStarted:
      return "活动未开始";
    case PurchaseOutcome::kEnded:
      return "活动已结束";
    case PurchaseOutcome::kUnknownProduct:
      return "商品不存在";
    case PurchaseOutcome::kPassRequired:
      return "请先排队，获得购买凭证后再抢购";
    case PurchaseOutcome::kPassInvalid:
      return "购买凭证无效或已过期";
    case PurchaseOutcome::kIdempotencyKeyMismatch:
      return "Idempotency-Key was already used with another body";
  }
  FLASHSALE_CHECK(false, "unknown PurchaseOutcome");
}

std::optional<PurchaseOutcome> PurchaseOutcomeNamed(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(PurchaseOutcome::kIdempotencyKeyMismatch); ++i) {
    const auto o = static_cast<PurchaseOutcome>(i);
    if (StatusName(o) == name) return o;
  }
  return std::nullopt;
}

PurchaseOutcome ToPurchaseOutcome(ReserveOutcome r) {
  switch (r) {
    case ReserveOutcome::kReserved:
      return PurchaseOutcome::kAccepted;
    case ReserveOutcome::kSoldOut:
      return PurchaseOutcome::kSoldOut;
    case ReserveOutcome::kInsufficientStock:
      return PurchaseOutcome::kInsufficientStock;
    case ReserveOutcome::kLimitExceeded:
      return PurchaseOutcome::kLimitExceeded;
    case ReserveOutcome::kNotStarted:
      return PurchaseOutcome::kNotStarted;
    case ReserveOutcome::kEnded:
      return PurchaseOutcome::kEnded;
    case ReserveOutcome::kUnknownProduct:
      return PurchaseOutcome::kUnknownProduct;
    case ReserveOutcome::kPassRequired:
      return PurchaseOutcome::kPassRequired;
  }
  FLASHSALE_CHECK(false, "unknown ReserveOutcome");
}

}  // namespace flashsale
