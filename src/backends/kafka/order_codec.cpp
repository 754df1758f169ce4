#include "backends/kafka/order_codec.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <optional>

#include "core/numbers.hpp"

namespace flashsale::kafka {
namespace {

namespace json = boost::json;

// One JSON value at depth 1 of the top-level object, as the handlers saw it.
enum class Kind { kNone, kString, kInt, kNumber, kOther };

// SAX handler collecting the top-level scalar fields of one object. A field is
// identified by its index in the caller's key table; values of unknown keys
// (and anything nested) are skipped.
template <std::size_t N>
struct FlatObjectHandler {
  static constexpr std::size_t max_object_size = 64;
  static constexpr std::size_t max_array_size = 1024;
  static constexpr std::size_t max_key_size = 256;
  static constexpr std::size_t max_string_size = 4096;

  struct Field {
    Kind kind = Kind::kNone;
    std::int64_t i = 0;
    std::string text;  // string value, or the number's text
  };
  const std::array<std::string_view, N>* keys = nullptr;
  std::array<Field, N> fields{};
  int depth = 0;
  int current = -1;  // index of the key being read at depth 1, -1 when unknown
  bool top_is_object = false;
  const char* error = nullptr;
  std::string key;  // key being assembled (escapes may split it into parts)
  std::string str;  // string value being assembled

  void Reset() {
    for (Field& f : fields) f.kind = Kind::kNone;
    depth = 0;
    current = -1;
    top_is_object = false;
    error = nullptr;
  }
  bool Fail(const char* why, json::error_code& ec) {
    error = why;
    ec = json::error::extra_data;  // any error: stops the parser
    return false;
  }
  // A scalar value at depth 1 for the current key.
  bool Set(Kind kind, std::int64_t i, std::string_view text, json::error_code& ec) {
    if (depth == 0) return Fail("not a JSON object", ec);
    if (depth != 1 || current < 0) return true;
    Field& f = fields[static_cast<std::size_t>(current)];
    if (f.kind != Kind::kNone) return Fail("duplicate field", ec);
    f.kind = kind;
    f.i = i;
    f.text.assign(text);
    return true;
  }
  bool Nested(json::error_code& ec) {
    if (depth == 0) return Fail("not a JSON object", ec);
    if (depth == 1 && current >= 0) {
      Field& f = fields[static_cast<std::size_t>(current)];
      if (f.kind != Kind::kNone) return Fail("duplicate field", ec);
      f.kind = Kind::kOther;
    }
    return true;
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code& ec) {
    if (depth == 0) {
      top_is_object = true;
    } else if (!Nested(ec)) {
      return false;
    }
    ++depth;
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth;
    return true;
  }
  bool on_array_begin(json::error_code& ec) {
    if (!Nested(ec)) return false;
    ++depth;
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth;
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t n, json::error_code&) {
    if (n == s.size()) key.clear();
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t n, json::error_code&) {
    if (depth != 1) return true;
    std::string_view k(s.data(), s.size());
    if (n != s.size()) {  // had parts
      key.append(s.data(), s.size());
      k = key;
    }
    current = -1;
    for (std::size_t i = 0; i < N; ++i) {
      if ((*keys)[i] == k) current = static_cast<int>(i);
    }
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t n, json::error_code&) {
    if (n == s.size()) str.clear();
    str.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t n, json::error_code& ec) {
    if (n != s.size()) {
      str.append(s.data(), s.size());
      return Set(Kind::kString, 0, str, ec);
    }
    return Set(Kind::kString, 0, {s.data(), s.size()}, ec);
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t v, json::string_view s, json::error_code& ec) {
    return Set(Kind::kInt, v, {s.data(), s.size()}, ec);
  }
  bool on_uint64(std::uint64_t, json::string_view s, json::error_code& ec) {
    return Set(Kind::kNumber, 0, {s.data(), s.size()}, ec);  // > INT64_MAX: not an id
  }
  bool on_double(double, json::string_view s, json::error_code& ec) {
    return Set(Kind::kNumber, 0, {s.data(), s.size()}, ec);
  }
  bool on_bool(bool, json::error_code& ec) { return Set(Kind::kOther, 0, {}, ec); }
  bool on_null(json::error_code& ec) { return Set(Kind::kOther, 0, {}, ec); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

// Parses `text` with `parser`; a reason on failure.
template <class Parser>
const char* ParseFlat(Parser& parser, std::string_view text) {
  parser.reset();
  parser.handler().Reset();
  json::error_code ec;
  const std::size_t n = parser.write_some(false, text.data(), text.size(), ec);
  if (parser.handler().error != nullptr) return parser.handler().error;
  if (ec || n != text.size()) return "not valid JSON";
  if (!parser.handler().top_is_object) return "not a JSON object";
  return nullptr;
}

// idempotency_key: optional (absent when the purchase had none), so the
// database can answer an Idempotency-Key its store let go (issue 7, 2j).
// pay_by: optional (absent when the product has no payment window; messages
// written before the order lifecycle have none), fixed by the reservation.
constexpr std::array<std::string_view, 8> kOrderKeys = {
    "order_id", "item_id", "user_id", "quantity", "price", "time", "idempotency_key", "pay_by"};
using OrderHandler = FlatObjectHandler<kOrderKeys.size()>;

constexpr std::array<std::string_view, 4> kStatusKeys = {"item_id", "status", "timestamp",
                                                         "restock_epoch"};
using StatusHandler = FlatObjectHandler<kStatusKeys.size()>;

// A required (or optional) non-negative integer field; the reason when bad.
template <class Field>
std::optional<std::string> IntField(const Field& f, std::string_view name, std::int64_t min,
                                    std::int64_t& out, bool required = true) {
  if (f.kind == Kind::kNone) {
    if (required) return "missing field " + std::string(name);
    return std::nullopt;
  }
  if (f.kind != Kind::kInt) return "field " + std::string(name) + " is not an integer";
  if (f.i < min) return "field " + std::string(name) + " out of range";
  out = f.i;
  return std::nullopt;
}

json::parse_options StrictOptions() {
  json::parse_options opt;  // defaults: no comments, no trailing commas, UTF-8 checked
  opt.max_depth = 8;
  return opt;
}

}  // namespace

struct OrderDecoder::Impl {
  json::basic_parser<OrderHandler> parser{StrictOptions()};
  Impl() { parser.handler().keys = &kOrderKeys; }
};

OrderDecoder::OrderDecoder() : impl_(std::make_unique<Impl>()) {}
OrderDecoder::~OrderDecoder() = default;

Result<Order> OrderDecoder::Decode(std::string_view text) {
  if (const char* why = ParseFlat(impl_->parser, text)) {
    return Status::Invalid(std::string("order: ") + why);
  }
  const auto& f = impl_->parser.handler().fields;
  Order o;
  if (f[0].kind != Kind::kString) {
    return Status::Invalid(f[0].kind == Kind::kNone ? "order: missing field order_id"
                                                    : "order: field order_id is not a string");
  }
  std::optional<OrderId> id = OrderId::Parse(f[0].text);
  if (!id) return Status::Invalid("order: bad order_id");
  o.id = *id;
  if (auto why = IntField(f[1], "item_id", 0, o.product)) return Status::Invalid("order: " + *why);
  if (auto why = IntField(f[2], "user_id", 0, o.user)) return Status::Invalid("order: " + *why);
  if (auto why = IntField(f[3], "quantity", 1, o.quantity)) {
    return Status::Invalid("order: " + *why);
  }
  if (f[4].kind == Kind::kNone) return Status::Invalid("order: missing field price");
  if (f[4].kind != Kind::kInt && f[4].kind != Kind::kNumber) {
    return Status::Invalid("order: field price is not a number");
  }
  std::optional<Cents> price = ParsePrice(f[4].text);
  if (!price) return Status::Invalid("order: bad price " + f[4].text);
  o.price = *price;
  if (auto why = IntField(f[5], "time", 0, o.created_at)) return Status::Invalid("order: " + *why);
  if (f[6].kind == Kind::kString) {
    o.idempotency_key = f[6].text;
  } else if (f[6].kind != Kind::kNone) {
    return Status::Invalid("order: field idempotency_key is not a string");
  }
  std::int64_t pay_by = 0;
  if (auto why = IntField(f[7], "pay_by", 0, pay_by, /*required=*/false)) {
    return Status::Invalid("order: " + *why);
  }
  if (f[7].kind != Kind::kNone) o.pay_by = pay_by;
  o.status = OrderStatus::kPending;
  return o;
}

Result<Order> DecodeOrder(std::string_view json) {
  thread_local OrderDecoder decoder;
  return decoder.Decode(json);
}

std::string EncodeOrder(const Order& o) {
  std::string out;
  out.reserve(128);
  out.append(R"({"order_id":")");
  out.append(o.id.view());
  out.append(R"(","item_id":)");
  AppendInt(out, o.product);
  out.append(R"(,"user_id":)");
  AppendInt(out, o.user);
  out.append(R"(,"quantity":)");
  AppendInt(out, o.quantity);
  out.append(R"(,"price":)");
  out.append(FormatPrice(o.price));
  out.append(R"(,"time":)");
  AppendInt(out, o.created_at);
  if (!o.idempotency_key.empty()) {
    // The API admits printable ASCII only, but a decoded message may carry any
    // JSON string (re-encoded for the dead-letter topic): control characters
    // are escaped too; other bytes are UTF-8 the decoder checked.
    out.append(R"(,"idempotency_key":")");
    for (char ch : o.idempotency_key) {
      const auto byte = static_cast<unsigned char>(ch);
      if (byte < 0x20) {
        constexpr std::string_view kHex = "0123456789abcdef";
        out.append("\\u00");
        out.push_back(kHex[byte >> 4]);
        out.push_back(kHex[byte & 0xf]);
        continue;
      }
      if (ch == '"' || ch == '\\') out.push_back('\\');
      out.push_back(ch);
    }
    out.push_back('"');
  }
  if (o.pay_by) {
    out.append(R"(,"pay_by":)");
    AppendInt(out, *o.pay_by);
  }
  out.push_back('}');
  return out;
}

std::string EncodeStatusChange(ProductId id, ProductStatusChange c, std::int64_t epoch,
                               UnixMillis ts) {
  std::string out;
  out.reserve(96);
  out.append(R"({"item_id":)");
  AppendInt(out, id);
  out.append(c == ProductStatusChange::kSoldOut ? R"(,"status":"SOLD_OUT")"
                                                : R"(,"status":"RESTOCKED")");
  out.append(R"(,"timestamp":)");
  AppendInt(out, ts);
  out.append(R"(,"restock_epoch":)");
  AppendInt(out, epoch);
  out.push_back('}');
  return out;
}

Result<StatusChangeMessage> DecodeStatusChange(std::string_view text) {
  thread_local json::basic_parser<StatusHandler> parser{StrictOptions()};
  parser.handler().keys = &kStatusKeys;
  if (const char* why = ParseFlat(parser, text)) {
    return Status::Invalid(std::string("status change: ") + why);
  }
  const auto& f = parser.handler().fields;
  StatusChangeMessage m;
  if (auto why = IntField(f[0], "item_id", 0, m.product)) {
    return Status::Invalid("status change: " + *why);
  }
  if (f[1].kind != Kind::kString) return Status::Invalid("status change: missing or bad status");
  if (f[1].text == "SOLD_OUT") {
    m.change = ProductStatusChange::kSoldOut;
  } else if (f[1].text == "RESTOCKED") {
    m.change = ProductStatusChange::kRestocked;
  } else {
    return Status::Invalid("status change: unknown status " + f[1].text);
  }
  if (auto why = IntField(f[2], "timestamp", 0, m.timestamp, false)) {
    return Status::Invalid("status change: " + *why);
  }
  if (auto why = IntField(f[3], "restock_epoch", 0, m.epoch, false)) {
    return Status::Invalid("status change: " + *why);
  }
  return m;
}

}  // namespace flashsale::kafka
