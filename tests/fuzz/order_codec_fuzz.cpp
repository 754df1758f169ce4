// Fuzz target: the Kafka wire formats of SPEC §5 (src/backends/kafka/
// order_codec.hpp), the bytes `flashsale consume` reads from product_orders
// and every server reads from product_status_change_topic: anyone who can
// produce to the topics controls them.
//
// Invariants checked on every input:
//   * no crash, leak or UB (ASan + UBSan), whatever the bytes;
//   * DecodeOrder and a reused OrderDecoder agree (same answer, same order);
//   * an accepted order satisfies the documented field rules and survives
//     EncodeOrder -> DecodeOrder unchanged;
//   * an accepted status change survives EncodeStatusChange -> DecodeStatusChange.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backends/kafka/order_codec.hpp"
#include "fuzz_check.hpp"

using flashsale::Order;
using flashsale::Result;
using namespace flashsale::kafka;

namespace {

bool SameOrder(const Order& a, const Order& b) {
  return a.id == b.id && a.user == b.user && a.product == b.product && a.quantity == b.quantity &&
         a.price == b.price && a.created_at == b.created_at && a.status == b.status &&
         a.pay_by == b.pay_by && a.idempotency_key == b.idempotency_key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  static OrderDecoder decoder;  // reused across inputs, as in the consumer's loop

  Result<Order> order = DecodeOrder(input);
  Result<Order> again = decoder.Decode(input);
  FUZZ_CHECK(order.has_value() == again.has_value());
  if (order) {
    FUZZ_CHECK(SameOrder(*order, *again));
    FUZZ_CHECK(!order->id.empty());
    FUZZ_CHECK(order->user >= 0 && order->product >= 0);
    FUZZ_CHECK(order->quantity >= 1 && order->price >= 0 && order->created_at >= 0);
    FUZZ_CHECK(!order->pay_by || *order->pay_by >= 0);
    Result<Order> round = DecodeOrder(EncodeOrder(*order));
    FUZZ_CHECK(round.has_value());
    FUZZ_CHECK(SameOrder(*order, *round));
  }

  Result<StatusChangeMessage> change = DecodeStatusChange(input);
  if (change) {
    Result<StatusChangeMessage> round = DecodeStatusChange(
        EncodeStatusChange(change->product, change->change, change->epoch, change->timestamp));
    FUZZ_CHECK(round.has_value());
    FUZZ_CHECK(round->product == change->product && round->change == change->change &&
               round->epoch == change->epoch && round->timestamp == change->timestamp);
  }
  return 0;
}
