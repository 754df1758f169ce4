// Wire formats of the Kafka topics (SPEC §5): round trips, and a table of
// inputs the strict decoders must refuse. Pure: no servers.
#include "backends/kafka/order_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace flashsale::kafka {
namespace {

constexpr std::string_view kId = "0192a3b4c5d000abc0000001";

Order SampleOrder() {
  Order o;
  o.id = *OrderId::Parse(kId);
  o.user = 42;
  o.product = 7;
  o.quantity = 2;
  o.price = 1250;
  o.created_at = 1'764'000'000'123;
  return o;
}

TEST(OrderCodec, EncodesTheSpecShape) {
  EXPECT_EQ(EncodeOrder(SampleOrder()),
            R"({"order_id":"0192a3b4c5d000abc0000001","item_id":7,"user_id":42,"quantity":2,)"
            R"("price":12.5,"time":1764000000123})");
}

TEST(OrderCodec, RoundTrips) {
  for (Cents price : {0, 5, 100, 1250, 1999, 123456789}) {
    Order o = SampleOrder();
    o.price = price;
    Result<Order> back = DecodeOrder(EncodeOrder(o));
    ASSERT_TRUE(back.has_value()) << back.error().message();
    EXPECT_EQ(back->id, o.id);
    EXPECT_EQ(back->user, o.user);
    EXPECT_EQ(back->product, o.product);
    EXPECT_EQ(back->quantity, o.quantity);
    EXPECT_EQ(back->price, price);
    EXPECT_EQ(back->created_at, o.created_at);
    EXPECT_EQ(back->status, OrderStatus::kPending);
  }
}

// The Idempotency-Key travels with its order to the database (issue 7, 2j).
TEST(OrderCodec, CarriesTheIdempotencyKey) {
  Order o = SampleOrder();
  o.idempotency_key = R"(k "quoted" \ 1)";
  Result<Order> back = DecodeOrder(EncodeOrder(o));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->idempotency_key, o.idempotency_key);
  EXPECT_EQ(DecodeOrder(EncodeOrder(SampleOrder()))->idempotency_key, "");
  EXPECT_FALSE(DecodeOrder(R"({"order_id":"0192a3b4c5d000abc0000001","item_id":7,"user_id":42,)"
                           R"("quantity":2,"price":12.5,"time":1,"idempotency_key":5})")
                   .has_value());
}

// Regression (found by order_codec_fuzz): the decoder accepts any JSON string
// as idempotency_key, control characters too (a message anyone can produce);
// EncodeOrder escaped only '"' and '\\', so such an order (re-encoded for the
// dead-letter topic) became invalid JSON.
TEST(OrderCodec, ReencodesAnyIdempotencyKeyTheDecoderAccepted) {
  Result<Order> o = DecodeOrder(
      R"({"order_id":"0192a3b4c5d000abc0000001","item_id":7,"user_id":42,"quantity":2,)"
      R"("price":12.5,"time":1,"idempotency_key":"a\u0000b\u001f\n\t\"q\"\\ \u00e9\u4e2d"})");
  ASSERT_TRUE(o.has_value()) << o.error().message();
  ASSERT_EQ(o->idempotency_key, std::string("a\0b\x1f\n\t\"q\"\\ \xc3\xa9\xe4\xb8\xad", 16));
  Result<Order> back = DecodeOrder(EncodeOrder(*o));
  ASSERT_TRUE(back.has_value()) << back.error().message() << ": " << EncodeOrder(*o);
  EXPECT_EQ(back->idempotency_key, o->idempotency_key);
}

// pay_by (order lifecycle) travels with its order; messages without it (every
// one written before the lifecycle, and orders of products without a payment
// window) decode as "no payment step".
TEST(OrderCodec, CarriesPayByAndReadsMessagesWithoutIt) {
  Order o = SampleOrder();
  o.pay_by = 1'764'000'900'123;
  const std::string text = EncodeOrder(o);
  EXPECT_EQ(text, R"({"order_id":"0192a3b4c5d000abc0000001","item_id":7,"user_id":42,"quantity":2,)"
                  R"("price":12.5,"time":1764000000123,"pay_by":1764000900123})");
  Result<Order> back = DecodeOrder(text);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->pay_by, o.pay_by);
  o.idempotency_key = "k1";
  back = DecodeOrder(EncodeOrder(o));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->pay_by, o.pay_by);
  EXPECT_EQ(back->idempotency_key, "k1");
  // An old message (no pay_by): none.
  back = DecodeOrder(R"({"order_id":"0192a3b4c5d000abc0000001","item_id":7,"user_id":42,)"
                     R"("quantity":2,"price":12.5,"time":1764000000123})");
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->pay_by, std::nullopt);
  EXPECT_EQ(DecodeOrder(EncodeOrder(SampleOrder()))->pay_by, std::nullopt);
  // Anything but a non-negative integer is refused; so is a duplicate.
  const std::string head = R"({"order_id":"0192a3b4c5d000abc0000001","item_id":7,"user_id":42,)"
                           R"("quantity":2,"price":12.5,"time":1,)";
  for (const char* bad :
       {R"("pay_by":-1})", R"("pay_by":"5"})", R"("pay_by":1.5})", R"("pay_by":null})",
        R"("pay_by":99999999999999999999})", R"("pay_by":1,"pay_by":1})"}) {
    Result<Order> r = DecodeOrder(head + bad);
    EXPECT_FALSE(r.has_value()) << "accepted: " << head + bad;
    if (!r.has_value()) {
      EXPECT_EQ(r.error().code(), Status::Code::kInvalid);
    }
  }
}

TEST(OrderCodec, AcceptsOtherKeyOrderWhitespaceAndUnknownKeys) {
  OrderDecoder decoder;
  Result<Order> o = decoder.Decode(
      R"( { "time": 5, "price": 12.50, "quantity": 1, "user_id": 0, "item_id": 3,)"
      R"( "extra": {"nested": [1, "x"]}, "order_id": "0192a3b4c5d000abc0000001" } )");
  ASSERT_TRUE(o.has_value()) << o.error().message();
  EXPECT_EQ(o->price, 1250);
  EXPECT_EQ(o->product, 3);
  // The decoder is reusable.
  EXPECT_TRUE(decoder.Decode(EncodeOrder(SampleOrder())).has_value());
  EXPECT_FALSE(decoder.Decode("{").has_value());
  EXPECT_TRUE(decoder.Decode(EncodeOrder(SampleOrder())).has_value());
}

TEST(OrderCodec, RefusesMalformedInput) {
  const std::string id = std::string(kId);
  auto with = [&](const std::string& fields) { return "{" + fields + "}"; };
  const std::string good_tail = R"("item_id":7,"user_id":42,"quantity":2,"price":12.5,"time":1)";
  const std::vector<std::string> bad = {
      "",
      "not json",
      "[]",
      "42",
      "\"str\"",
      "null",
      "{",
      with(R"("order_id":")" + id + R"(",)" + good_tail) + "x",  // trailing bytes
      with(R"("order_id":")" + id + R"(",)" + good_tail + ","),  // trailing comma
      with(good_tail),                                           // no order_id
      with(R"("order_id":"nothex",)" + good_tail),
      with(R"("order_id":"0192A3B4C5D000ABC0000001",)" + good_tail),  // upper case
      with(R"("order_id":1,)" + good_tail),
      with(R"("order_id":")" + id + R"(","order_id":")" + id + R"(",)" + good_tail),  // dup
      with(R"("order_id":")" + id + R"(","user_id":42,"quantity":2,"price":1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":"7","user_id":42,"quantity":2,"price":1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":-7,"user_id":42,"quantity":2,"price":1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7.0,"user_id":42,"quantity":2,"price":1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":99999999999999999999,"user_id":42,"quantity":2,"price":1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":-1,"quantity":2,"price":1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":42,"quantity":0,"price":1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":42,"quantity":null,"price":1,"time":1)"),
      with(R"("order_id":")" + id + R"(","item_id":7,"user_id":42,"quantity":2,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":42,"quantity":2,"price":"1","time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":42,"quantity":2,"price":1.234,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":42,"quantity":2,"price":-1,"time":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":42,"quantity":2,"price":1e3,"time":1)"),
      with(R"("order_id":")" + id + R"(","item_id":7,"user_id":42,"quantity":2,"price":1)"),
      with(R"("order_id":")" + id +
           R"(","item_id":7,"user_id":42,"quantity":2,"price":1,"time":true)"),
      with(R"("order_id":")" + id +
           R"(","item_id":[7],"user_id":42,"quantity":2,"price":1,"time":1)"),
      "{\"order_id\":\"" + id + "\xff\"," + good_tail + "}",    // invalid UTF-8
      with(R"(/*c*/"order_id":")" + id + R"(",)" + good_tail),  // comments
  };
  OrderDecoder decoder;
  for (const std::string& text : bad) {
    Result<Order> o = decoder.Decode(text);
    EXPECT_FALSE(o.has_value()) << "accepted: " << text;
    if (!o.has_value()) {
      EXPECT_EQ(o.error().code(), Status::Code::kInvalid) << text;
      EXPECT_FALSE(o.error().message().empty()) << text;
    }
  }
}

TEST(StatusChangeCodec, RoundTrips) {
  const std::string text = EncodeStatusChange(9, ProductStatusChange::kSoldOut, 3, 1000);
  EXPECT_EQ(text, R"({"item_id":9,"status":"SOLD_OUT","timestamp":1000,"restock_epoch":3})");
  Result<StatusChangeMessage> m = DecodeStatusChange(text);
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->product, 9);
  EXPECT_EQ(m->change, ProductStatusChange::kSoldOut);
  EXPECT_EQ(m->epoch, 3);
  EXPECT_EQ(m->timestamp, 1000);
  m = DecodeStatusChange(EncodeStatusChange(1, ProductStatusChange::kRestocked, 0, 5));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->change, ProductStatusChange::kRestocked);
  // The seed's shape, without restock_epoch.
  m = DecodeStatusChange(R"({"item_id": 4, "status": "SOLD_OUT", "timestamp": 17})");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->epoch, 0);
}

TEST(StatusChangeCodec, RefusesMalformedInput) {
  for (const char* text :
       {"", "x", "[]", R"({"status":"SOLD_OUT"})", R"({"item_id":1})",
        R"({"item_id":1,"status":"GONE"})", R"({"item_id":-1,"status":"SOLD_OUT"})",
        R"({"item_id":1,"status":"SOLD_OUT","restock_epoch":"2"})",
        R"({"item_id":1,"status":"SOLD_OUT","timestamp":1.5})"}) {
    EXPECT_FALSE(DecodeStatusChange(text).has_value()) << "accepted: " << text;
  }
}

}  // namespace
}  // namespace flashsale::kafka
