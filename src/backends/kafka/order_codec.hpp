#pragma once
// SPEC §5 wire formats of the Kafka topics:
//   product_orders:              {"order_id","item_id","user_id","quantity","price","time"}
//                                (+ "idempotency_key" when the purchase had one,
//                                 + "pay_by" when the product has a payment window)
//   product_status_change_topic: {"item_id","status","timestamp","restock_epoch"}
// Encoders write compact JSON by hand (no allocation beyond the result).
// Decoders are strict SAX parsers (Boost.JSON basic_parser: full JSON syntax
// checking, no DOM): Invalid with a reason on anything malformed. Unknown keys
// are ignored (forward compatibility); duplicate known keys are refused.
// Free functions are thread-safe; a *Decoder object is thread-compatible
// (one per thread, reused across messages to avoid re-allocating its stack).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/domain.hpp"
#include "core/status.hpp"
#include "core/status_broadcast.hpp"

namespace flashsale::kafka {

// price: a JSON number (FormatPrice); time: ms since the epoch.
std::string EncodeOrder(const Order& o);
// REQUIRES nothing of `json`. Fields: order_id (OrderId::Parse), item_id >= 0,
// user_id >= 0, quantity >= 1, price (ParsePrice: >= 0, at most 2 decimals),
// time >= 0, all required and integers except price; optional: idempotency_key
// (string), pay_by (integer >= 0, ms since the epoch; absent = no payment
// step, as in every message written before the order lifecycle). Status is
// PENDING.
Result<Order> DecodeOrder(std::string_view json);

struct StatusChangeMessage {
  ProductId product = 0;
  ProductStatusChange change = ProductStatusChange::kSoldOut;
  std::int64_t epoch = 0;  // restock_epoch; 0 when absent (the seed's messages)
  UnixMillis timestamp = 0;
};
std::string EncodeStatusChange(ProductId id, ProductStatusChange c, std::int64_t epoch,
                               UnixMillis ts);
// item_id and status required; timestamp and restock_epoch optional (>= 0).
Result<StatusChangeMessage> DecodeStatusChange(std::string_view json);

// Reusable order decoder for the consumer's hot loop (same rules as DecodeOrder).
class OrderDecoder {
 public:
  OrderDecoder();
  ~OrderDecoder();
  OrderDecoder(const OrderDecoder&) = delete;
  OrderDecoder& operator=(const OrderDecoder&) = delete;
  Result<Order> Decode(std::string_view json);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flashsale::kafka
