// http_test: the HTTP edge without sockets: the request parser (limits of
// SPEC §4), the strict JSON body reader (a table of bodies and the FastAPI
// error each must produce), the 422 renderer, the response writer and the
// route table. All pure functions; no threads.

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <set>
#include <string>
#include <vector>

#include "http/body_specs.hpp"
#include "http/http_parser.hpp"
#include "http/json_body.hpp"
#include "http/response_writer.hpp"
#include "http/router.hpp"

namespace flashsale::http {
namespace {

// ------------------------------------------------------------ ParseRequest ---

constexpr std::string_view kPurchase =
    "POST /purchase HTTP/1.1\r\n"
    "Host: localhost:8000\r\n"
    "Content-Type: application/json\r\n"
    "Idempotency-Key: abc-123\r\n"
    "Content-Length: 46\r\n"
    "\r\n"
    R"({"user_id":1,"product_id":10000001,"amount":1})";

TEST(ParseRequest, CompleteRequest) {
  HttpRequest req;
  const ParseResult r = ParseRequest(kPurchase, req);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error_message;
  EXPECT_EQ(r.consumed, kPurchase.size());
  EXPECT_TRUE(r.headers_complete);
  EXPECT_EQ(req.method, Method::kPost);
  EXPECT_EQ(req.method_text, "POST");
  EXPECT_EQ(req.target, "/purchase");
  EXPECT_EQ(req.path, "/purchase");
  EXPECT_EQ(req.query, "");
  EXPECT_EQ(req.version_minor, 1);
  EXPECT_TRUE(req.keep_alive);  // HTTP/1.1 default
  EXPECT_EQ(req.content_length, 46u);
  EXPECT_EQ(req.content_type, "application/json");
  EXPECT_TRUE(req.has_idempotency_key);
  EXPECT_EQ(req.idempotency_key, "abc-123");
  EXPECT_EQ(req.body, R"({"user_id":1,"product_id":10000001,"amount":1})");
}

TEST(ParseRequest, SplitsPathAndQueryAndReadsHeadersCaseInsensitively) {
  HttpRequest req;
  const std::string_view text =
      "GET /products?offset=10&limit=5 HTTP/1.1\r\n"
      "AUTHORIZATION:   Bearer s3cret  \r\n"
      "content-length: 0\r\n"
      "\r\n";
  const ParseResult r = ParseRequest(text, req);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(req.method, Method::kGet);
  EXPECT_EQ(req.path, "/products");
  EXPECT_EQ(req.query, "offset=10&limit=5");
  EXPECT_EQ(req.authorization, "Bearer s3cret");  // surrounding whitespace trimmed
  EXPECT_FALSE(req.has_idempotency_key);
  EXPECT_EQ(req.body, "");
}

TEST(ParseRequest, IncompleteUntilEveryByteArrived) {
  // Every strict prefix of a valid request is incomplete, never an error.
  for (std::size_t n = 0; n < kPurchase.size(); ++n) {
    HttpRequest req;
    const ParseResult r = ParseRequest(kPurchase.substr(0, n), req);
    ASSERT_EQ(r.status, ParseStatus::kIncomplete) << "prefix of " << n << " bytes";
    EXPECT_EQ(r.consumed, 0u);
  }
  // Once the header section is in, the parser says so (the body timeout applies).
  HttpRequest req;
  const std::size_t head_end = kPurchase.find("\r\n\r\n") + 4;
  EXPECT_FALSE(ParseRequest(kPurchase.substr(0, head_end - 1), req).headers_complete);
  const ParseResult headers_only = ParseRequest(kPurchase.substr(0, head_end), req);
  EXPECT_EQ(headers_only.status, ParseStatus::kIncomplete);
  EXPECT_TRUE(headers_only.headers_complete);
}

TEST(ParseRequest, PipelinedRequestsAreParsedOneAtATime) {
  const std::string second =
      "GET /orders/0123456789abcdef01234567 HTTP/1.1\r\n"
      "Host: x\r\n"
      "Connection: close\r\n"
      "\r\n";
  const std::string both = std::string(kPurchase) + second;
  HttpRequest req;
  const ParseResult first = ParseRequest(both, req);
  ASSERT_EQ(first.status, ParseStatus::kComplete);
  EXPECT_EQ(first.consumed, kPurchase.size());
  EXPECT_EQ(req.path, "/purchase");
  EXPECT_TRUE(req.keep_alive);

  const ParseResult next = ParseRequest(std::string_view(both).substr(first.consumed), req);
  ASSERT_EQ(next.status, ParseStatus::kComplete);
  EXPECT_EQ(next.consumed, second.size());
  EXPECT_EQ(req.method, Method::kGet);
  EXPECT_EQ(req.path, "/orders/0123456789abcdef01234567");
  EXPECT_FALSE(req.keep_alive);
  EXPECT_FALSE(req.has_idempotency_key);  // nothing leaks from the first request
  EXPECT_EQ(req.body, "");
}

TEST(ParseRequest, ToleratesBlankLinesBeforeARequest) {
  const std::string text = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
  HttpRequest req;
  const ParseResult r = ParseRequest(text, req);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.consumed, text.size());
  EXPECT_EQ(req.path, "/");
}

TEST(ParseRequest, HeaderSectionOver8KiBIs431) {
  // Without the end of the header section in sight ...
  std::string text = "GET / HTTP/1.1\r\nX-Filler: " + std::string(kMaxHeaderBytes, 'a');
  HttpRequest req;
  ParseResult r = ParseRequest(text, req);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
  // ... and with it.
  text += "\r\n\r\n";
  r = ParseRequest(text, req);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
  // Just under the limit is fine.
  std::string fits = "GET / HTTP/1.1\r\nX-Filler: ";
  fits += std::string(kMaxHeaderBytes - fits.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(fits.size(), kMaxHeaderBytes);
  EXPECT_EQ(ParseRequest(fits, req).status, ParseStatus::kComplete);
}

TEST(ParseRequest, BodyOver4KiBIs413) {
  HttpRequest req;
  const ParseResult r =
      ParseRequest("POST /purchase HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", req);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 413);
  // Exactly 4 KiB is allowed (and waits for its body).
  const ParseResult ok =
      ParseRequest("POST /purchase HTTP/1.1\r\nContent-Length: 4096\r\n\r\n", req);
  EXPECT_EQ(ok.status, ParseStatus::kIncomplete);
  EXPECT_TRUE(ok.headers_complete);
}

TEST(ParseRequest, MalformedRequestsAre400) {
  const char* bad[] = {
      "GET\r\n\r\n",                             // no target, no version
      "GET /\r\n\r\n",                           // no version
      "GET  / HTTP/1.1\r\n\r\n",                 // empty target
      " GET / HTTP/1.1\r\n\r\n",                 // empty method
      "GET foo HTTP/1.1\r\n\r\n",                // target not starting with '/'
      "GET /a\x01 HTTP/1.1\r\n\r\n",             // control character in target
      "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",       // raw non-ASCII in target
      "GET / HTTP/1.1 extra\r\n\r\n",            // junk after the version
      "GET / FTP/1.1\r\n\r\n",                   // not HTTP
      "G(T / HTTP/1.1\r\n\r\n",                  // not a token
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",       // header without ':'
      "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",  // empty header name
      "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",   // space in the name
      "GET / HTTP/1.1\r\n folded: x\r\n\r\n",    // obsolete line folding
      "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",     // control character in a value
      "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
  };
  for (const char* text : bad) {
    HttpRequest req;
    const ParseResult r = ParseRequest(text, req);
    EXPECT_EQ(r.status, ParseStatus::kError) << text;
    EXPECT_EQ(r.error_status, 400) << text;
    EXPECT_FALSE(r.error_message.empty());
  }
}

TEST(ParseRequest, GarbageIsRejectedBeforeTheHeaderEnds) {
  // A client speaking something else (TLS, binary) gets 400 at once rather
  // than after the header timeout.
  for (std::string_view garbage :
       {std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
        std::string_view("{\"user_id\":1}"), std::string_view("\x00\x00\x00", 3)}) {
    HttpRequest req;
    const ParseResult r = ParseRequest(garbage, req);
    EXPECT_EQ(r.status, ParseStatus::kError);
    EXPECT_EQ(r.error_status, 400);
  }
}

TEST(ParseRequest, BareLfLineEndingsAre400AtOnce) {
  // They would never complete a CRLF header section: refuse, do not wait.
  for (const char* text :
       {"GET / HTTP/1.1\n\n", "GET / HTTP/1.1\nHost: x\n\n", "GET / HTTP/1.1\r\nHost: x\n\r\n"}) {
    HttpRequest req;
    const ParseResult r = ParseRequest(text, req);
    EXPECT_EQ(r.status, ParseStatus::kError) << text;
    EXPECT_EQ(r.error_status, 400) << text;
  }
}

TEST(ParseRequest, SameContentLengthTwiceIsAccepted) {
  HttpRequest req;
  const ParseResult r =
      ParseRequest("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab", req);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(req.body, "ab");
}

TEST(ParseRequest, TransferEncodingIs501) {
  for (const char* text : {"POST /purchase HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                           "POST /purchase HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n"}) {
    HttpRequest req;
    const ParseResult r = ParseRequest(text, req);
    EXPECT_EQ(r.status, ParseStatus::kError) << text;
    EXPECT_EQ(r.error_status, 501) << text;
  }
}

TEST(ParseRequest, UnsupportedVersionIs505) {
  HttpRequest req;
  const ParseResult r = ParseRequest("GET / HTTP/2.0\r\n\r\n", req);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 505);
}

TEST(ParseRequest, KeepAliveRules) {
  struct Case {
    const char* text;
    int version_minor;
    bool keep_alive;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", 1, true},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1, false},
      {"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", 1, false},
      {"GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n", 1, false},
      {"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", 1, true},
      {"GET / HTTP/1.0\r\n\r\n", 0, false},  // HTTP/1.0: off unless asked for
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, true},
      {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", 0, false},
  };
  for (const Case& c : cases) {
    HttpRequest req;
    const ParseResult r = ParseRequest(c.text, req);
    ASSERT_EQ(r.status, ParseStatus::kComplete) << c.text;
    EXPECT_EQ(req.version_minor, c.version_minor) << c.text;
    EXPECT_EQ(req.keep_alive, c.keep_alive) << c.text;
  }
}

// RFC 9112 §9.3: the close option wins over keep-alive, in any order.
TEST(ParseRequest, CloseWinsOverKeepAlive) {
  for (const char* text :
       {"GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"}) {
    HttpRequest req;
    ASSERT_EQ(ParseRequest(text, req).status, ParseStatus::kComplete) << text;
    EXPECT_FALSE(req.keep_alive) << text;
  }
}

TEST(ParseRequest, MethodsAreRecognised) {
  struct Case {
    const char* text;
    Method method;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", Method::kGet},
      {"HEAD / HTTP/1.1\r\n\r\n", Method::kHead},
      {"POST / HTTP/1.1\r\n\r\n", Method::kPost},
      {"PUT / HTTP/1.1\r\n\r\n", Method::kPut},
      {"DELETE / HTTP/1.1\r\n\r\n", Method::kDelete},
      {"PATCH / HTTP/1.1\r\n\r\n", Method::kPatch},
      {"OPTIONS / HTTP/1.1\r\n\r\n", Method::kOptions},
      {"BREW / HTTP/1.1\r\n\r\n", Method::kOther},
      {"get / HTTP/1.1\r\n\r\n", Method::kOther},  // methods are case-sensitive
  };
  for (const Case& c : cases) {
    HttpRequest req;
    ASSERT_EQ(ParseRequest(c.text, req).status, ParseStatus::kComplete) << c.text;
    EXPECT_EQ(req.method, c.method) << c.text;
  }
}

// ---------------------------------------------------------- JsonBodyReader ---

constexpr FieldSpec kPurchaseSpec[] = {
    {"user_id", FieldType::kInt, true, 0},
    {"product_id", FieldType::kInt, true, 1},
    {"amount", FieldType::kInt, true, 1},
};

constexpr FieldSpec kProductSpec[] = {
    {"stock", FieldType::kInt, true, 0},
    {"price", FieldType::kPrice, true, std::nullopt},
    {"starts_at", FieldType::kTimestampOrNull, false, std::nullopt},
    {"ends_at", FieldType::kTimestampOrNull, false, std::nullopt},
    {"limit_per_user", FieldType::kInt, false, 1},
};

struct BodyCase {
  std::string body;
  // Expected first error; empty type: the body is valid.
  std::string field;
  std::string type;
  std::size_t error_count = 1;
};

std::string PurchaseBody(std::string_view user_id, std::string_view product_id = "10000001",
                         std::string_view amount = "1") {
  return std::string(R"({"user_id":)") + std::string(user_id) + R"(,"product_id":)" +
         std::string(product_id) + R"(,"amount":)" + std::string(amount) + "}";
}

std::vector<BodyCase> PurchaseBodyCases() {
  return {
      // Valid bodies.
      {PurchaseBody("1"), "", "", 0},
      {PurchaseBody("0"), "", "", 0},  // user 0 is a user
      {PurchaseBody("-0"), "", "", 0},
      {" \n\t" + PurchaseBody("1") + " \r\n", "", "", 0},
      {R"({"amount":1,"product_id":10000001,"user_id":1})", "", "", 0},
      {R"({"user\u005fid":1,"product_id":10000001,"amount":1})", "", "", 0},
      {PurchaseBody("9223372036854775807"), "", "", 0},  // int64 max
      // Not integers.
      {PurchaseBody(R"("1")"), "user_id", "int_type"},
      {PurchaseBody(R"("一")"), "user_id", "int_type"},
      {PurchaseBody("true"), "user_id", "int_type"},
      {PurchaseBody("false"), "user_id", "int_type"},
      {PurchaseBody("null"), "user_id", "int_type"},
      {PurchaseBody(R"({"id":1})"), "user_id", "int_type"},  // nested object
      {PurchaseBody("[1]"), "user_id", "int_type"},
      {PurchaseBody("[]"), "user_id", "int_type"},
      {PurchaseBody("1", "10000001", "1.0"), "amount", "int_from_float"},
      {PurchaseBody("1", "10000001", "1.5"), "amount", "int_from_float"},
      {PurchaseBody("1", "10000001", "1e3"), "amount", "int_from_float"},
      {PurchaseBody("1", "10000001", "1E0"), "amount", "int_from_float"},
      {PurchaseBody("1", "10000001", "-0.0"), "amount", "int_from_float"},
      {PurchaseBody("1", "1e7"), "product_id", "int_from_float"},
      // Out of range.
      {PurchaseBody("9223372036854775808"), "user_id", "int_range"},   // int64 max + 1
      {PurchaseBody("18446744073709551616"), "user_id", "int_range"},  // past uint64
      {PurchaseBody("-9223372036854775809"), "user_id", "int_range"},  // int64 min - 1
      {PurchaseBody("99999999999999999999999999999"), "user_id", "int_range"},
      {PurchaseBody("-1"), "user_id", "greater_than_equal"},
      {PurchaseBody("-9223372036854775808"), "user_id", "greater_than_equal"},
      {PurchaseBody("1", "0"), "product_id", "greater_than_equal"},
      {PurchaseBody("1", "-5"), "product_id", "greater_than_equal"},
      {PurchaseBody("1", "10000001", "0"), "amount", "greater_than_equal"},
      // Not JSON, or not the JSON we take.
      {PurchaseBody("01"), "", "json_invalid"},  // leading zero
      {PurchaseBody("00"), "", "json_invalid"},
      {PurchaseBody("+1"), "", "json_invalid"},
      {PurchaseBody("NaN"), "", "json_invalid"},
      {PurchaseBody("Infinity"), "", "json_invalid"},
      {PurchaseBody("-Infinity"), "", "json_invalid"},
      {PurchaseBody("0x10"), "", "json_invalid"},
      {PurchaseBody("1."), "", "json_invalid"},
      {"", "", "json_invalid"},
      {"   ", "", "json_invalid"},
      {"{", "", "json_invalid"},
      {PurchaseBody("1") + "x", "", "json_invalid"},  // trailing garbage
      {PurchaseBody("1") + PurchaseBody("1"), "", "json_invalid"},
      {R"({"user_id":1,"product_id":10000001,"amount":1,})", "", "json_invalid"},  // trailing ,
      {R"({"user_id":1 /* c */,"product_id":10000001,"amount":1})", "", "json_invalid"},
      {R"({'user_id':1,'product_id':10000001,'amount':1})", "", "json_invalid"},
      {R"({user_id:1,product_id:10000001,amount:1})", "", "json_invalid"},
      {PurchaseBody("\"\xff\""), "", "json_invalid"},          // invalid UTF-8 in a value
      {PurchaseBody("\"\xc3\""), "", "json_invalid"},          // truncated sequence
      {PurchaseBody("\"\xed\xa0\x80\""), "", "json_invalid"},  // UTF-16 surrogate as UTF-8
      {"{\"user_\xff\":1,\"product_id\":10000001,\"amount\":1}", "", "json_invalid"},  // in a key
      {std::string(R"({"user_id":1,"product_id":10000001,"amount":1})") + '\0', "", "json_invalid"},
      // Not an object.
      {"[1,2,3]", "", "model_attributes_type"},
      {"[" + PurchaseBody("1") + "]", "", "model_attributes_type"},
      {"null", "", "model_attributes_type"},
      {"1", "", "model_attributes_type"},
      {R"("user_id")", "", "model_attributes_type"},
      // Fields.
      {R"({"user_id":1,"user_id":2,"product_id":10000001,"amount":1})", "user_id", "duplicate_key"},
      {R"({"user_id":1,"product_id":10000001,"amount":1,"amount":1})", "amount", "duplicate_key"},
      {R"({"user_id":1,"product_id":10000001,"amount":1,"coupon":"FREE"})", "coupon",
       "extra_forbidden"},
      {R"({"user_id":1,"product_id":10000001,"amount":1,"User_id":1})", "User_id",
       "extra_forbidden"},  // keys are case-sensitive
      {R"({"user_id":1,"product_id":10000001})", "amount", "missing"},
      {R"({"product_id":10000001,"amount":1})", "user_id", "missing"},
      {"{}", "user_id", "missing", 3},
      {R"({"user_id":"x","product_id":0,"amount":1.5})", "user_id", "int_type", 3},
      {R"({"user_id":1,"extra":{"deep":[1,{"x":null}]},"product_id":10000001,"amount":1})", "extra",
       "extra_forbidden"},
  };
}

TEST(JsonBodyReader, PurchaseBodyStrictnessTable) {
  JsonBodyReader reader;  // reused on purpose: no state may leak between bodies
  const std::vector<BodyCase> cases = PurchaseBodyCases();
  ASSERT_GE(cases.size(), 30u);
  for (const BodyCase& c : cases) {
    SCOPED_TRACE("body: " + c.body);
    BodyValues values;
    std::vector<FieldError> errors;
    const bool ok = reader.Read(c.body, kPurchaseSpec, values, errors);
    if (c.type.empty()) {
      EXPECT_TRUE(ok);
      EXPECT_TRUE(errors.empty()) << RenderValidationErrors(errors);
      continue;
    }
    EXPECT_FALSE(ok);
    ASSERT_EQ(errors.size(), c.error_count) << RenderValidationErrors(errors);
    EXPECT_EQ(errors[0].type, c.type) << RenderValidationErrors(errors);
    EXPECT_EQ(errors[0].field, c.field) << RenderValidationErrors(errors);
    EXPECT_EQ(errors[0].root, "body");
    EXPECT_FALSE(errors[0].msg.empty());
  }
}

TEST(JsonBodyReader, ValidBodyYieldsTheValues) {
  JsonBodyReader reader;
  BodyValues values;
  std::vector<FieldError> errors;
  ASSERT_TRUE(reader.Read(R"({"amount":3,"user_id":9223372036854775807,"product_id":10000001})",
                          kPurchaseSpec, values, errors));
  EXPECT_EQ(values.ints[0], 9223372036854775807);
  EXPECT_EQ(values.ints[1], 10000001);
  EXPECT_EQ(values.ints[2], 3);
  EXPECT_TRUE(values.present[0] && values.present[1] && values.present[2]);
}

TEST(JsonBodyReader, ReportsEveryBadFieldInBodyOrder) {
  JsonBodyReader reader;
  BodyValues values;
  std::vector<FieldError> errors;
  EXPECT_FALSE(
      reader.Read(R"({"amount":0,"user_id":"1","color":"red"})", kPurchaseSpec, values, errors));
  std::vector<std::pair<std::string, std::string>> got;
  for (const FieldError& e : errors) got.emplace_back(e.field, e.type);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"amount", "greater_than_equal"},
      {"user_id", "int_type"},
      {"color", "extra_forbidden"},
      {"product_id", "missing"},
  };
  EXPECT_EQ(got, want) << RenderValidationErrors(errors);
}

TEST(JsonBodyReader, TooManyFieldsIsAnError) {
  std::string body = "{";
  for (int i = 0; i < 20; ++i) body += "\"f" + std::to_string(i) + "\":1,";
  body += R"("user_id":1,"product_id":10000001,"amount":1})";
  JsonBodyReader reader;
  BodyValues values;
  std::vector<FieldError> errors;
  EXPECT_FALSE(reader.Read(body, kPurchaseSpec, values, errors));
  // The fields past the table's 16 are dropped (so the real ones are missing)
  // and the body as a whole is named.
  bool body_level = false;
  for (const FieldError& e : errors) {
    body_level |= e.field.empty() && e.type == "extra_forbidden";
    EXPECT_TRUE(e.type == "extra_forbidden" || e.type == "missing") << e.field << " " << e.type;
  }
  EXPECT_TRUE(body_level) << RenderValidationErrors(errors);
}

TEST(JsonBodyReader, ProductBodies) {
  struct Case {
    std::string body;
    std::string field;
    std::string type;  // empty: valid
  };
  const Case cases[] = {
      {R"({"stock":100,"price":12.5})", "", ""},
      {R"({"stock":0,"price":0})", "", ""},
      {R"({"stock":100,"price":12.300,"starts_at":null,"ends_at":"2026-11-25T10:00:00Z"})", "", ""},
      {R"({"stock":1,"price":1,"starts_at":"2026-11-25T18:00:00+08:00","limit_per_user":3})", "",
       ""},
      {R"({"stock":100})", "price", "missing"},
      {R"({"price":1})", "stock", "missing"},
      {R"({"stock":100,"price":12.345})", "price", "decimal_max_places"},
      {R"({"stock":100,"price":1e3})", "price", "decimal_max_places"},
      {R"({"stock":100,"price":-1})", "price", "greater_than_equal"},
      {R"({"stock":100,"price":"12"})", "price", "float_type"},
      {R"({"stock":100,"price":null})", "price", "float_type"},
      {R"({"stock":-1,"price":1})", "stock", "greater_than_equal"},
      {R"({"stock":1.0,"price":1})", "stock", "int_from_float"},
      {R"({"stock":1,"price":1,"starts_at":"tomorrow"})", "starts_at", "datetime_parsing"},
      {R"({"stock":1,"price":1,"ends_at":"2023-02-29T00:00:00Z"})", "ends_at", "datetime_parsing"},
      {R"({"stock":1,"price":1,"ends_at":1795600800000})", "ends_at", "datetime_parsing"},
      {R"({"stock":1,"price":1,"limit_per_user":0})", "limit_per_user", "greater_than_equal"},
  };
  JsonBodyReader reader;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    BodyValues values;
    std::vector<FieldError> errors;
    const bool ok = reader.Read(c.body, kProductSpec, values, errors);
    if (c.type.empty()) {
      EXPECT_TRUE(ok) << RenderValidationErrors(errors);
      continue;
    }
    EXPECT_FALSE(ok);
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0].field, c.field) << RenderValidationErrors(errors);
    EXPECT_EQ(errors[0].type, c.type) << RenderValidationErrors(errors);
  }
  // Values: price in cents, times in ms, null leaves the time unset but present.
  BodyValues v;
  std::vector<FieldError> errors;
  ASSERT_TRUE(reader.Read(
      R"({"stock":7,"price":12.5,"starts_at":null,"ends_at":"2026-11-25T10:00:00.250Z"})",
      kProductSpec, v, errors));
  EXPECT_EQ(v.ints[0], 7);
  EXPECT_EQ(v.ints[1], 1250);
  EXPECT_TRUE(v.present[2]);
  EXPECT_FALSE(v.ints[2].has_value());
  EXPECT_EQ(v.ints[3], 1795600800250);
  EXPECT_FALSE(v.present[4]);
}

// The API's own product spec (body_specs.hpp), whose "waiting_room" is the one
// nested field: an object of two bounded ints, or null.
TEST(JsonBodyReader, WaitingRoomObjectOrNull) {
  const auto& spec = ::flashsale::http::kProductSpec;
  JsonBodyReader reader;  // reused: member state must not leak between bodies
  BodyValues v;
  std::vector<FieldError> errors;
  ASSERT_TRUE(reader.Read(R"({"stock":1,"price":1,"waiting_room":{"pass_ttl_s":120,
                            "admit_per_s":50}})",
                          spec, v, errors))
      << RenderValidationErrors(errors);
  EXPECT_TRUE(v.present[6]);
  EXPECT_TRUE(v.object_given);
  EXPECT_EQ(v.members[0], 50);
  EXPECT_EQ(v.members[1], 120);
  // The bounds themselves are valid.
  ASSERT_TRUE(reader.Read(
      R"({"stock":1,"price":1,"waiting_room":{"admit_per_s":1000000,"pass_ttl_s":86400}})", spec, v,
      errors));
  EXPECT_EQ(v.members[0], kMaxAdmitPerS);
  EXPECT_EQ(v.members[1], kMaxPassTtlS);
  // null and absent: no waiting room, nothing left over from the body before.
  ASSERT_TRUE(reader.Read(R"({"stock":1,"price":1,"waiting_room":null})", spec, v, errors));
  EXPECT_TRUE(v.present[6]);
  EXPECT_FALSE(v.object_given);
  EXPECT_FALSE(v.members[0] || v.members[1]);
  ASSERT_TRUE(reader.Read(R"({"stock":1,"price":1})", spec, v, errors));
  EXPECT_FALSE(v.present[6] || v.object_given);
  // The purchase body after a nested one reads as always.
  ASSERT_TRUE(reader.Read(R"({"user_id":1,"product_id":2,"amount":3})",
                          ::flashsale::http::kPurchaseSpec, v, errors));
  EXPECT_FALSE(v.object_given);
  EXPECT_EQ(v.ints[2], 3);
}

TEST(JsonBodyReader, WaitingRoomErrorsNameTheMember) {
  struct Case {
    std::string room;                            // the value of "waiting_room"
    std::vector<std::vector<std::string>> want;  // {field, member, type} per error, in order
  };
  const Case cases[] = {
      {"1", {{"waiting_room", "", "model_type"}}},
      {R"("x")", {{"waiting_room", "", "model_type"}}},
      {"[1,2]", {{"waiting_room", "", "model_type"}}},
      {"true", {{"waiting_room", "", "model_type"}}},
      {"{}",
       {{"waiting_room", "admit_per_s", "missing"}, {"waiting_room", "pass_ttl_s", "missing"}}},
      {R"({"admit_per_s":5})", {{"waiting_room", "pass_ttl_s", "missing"}}},
      {R"({"pass_ttl_s":5})", {{"waiting_room", "admit_per_s", "missing"}}},
      {R"({"admit_per_s":0,"pass_ttl_s":5})",
       {{"waiting_room", "admit_per_s", "greater_than_equal"}}},
      {R"({"admit_per_s":1000001,"pass_ttl_s":5})",
       {{"waiting_room", "admit_per_s", "less_than_equal"}}},
      {R"({"admit_per_s":5,"pass_ttl_s":0})",
       {{"waiting_room", "pass_ttl_s", "greater_than_equal"}}},
      {R"({"admit_per_s":5,"pass_ttl_s":86401})",
       {{"waiting_room", "pass_ttl_s", "less_than_equal"}}},
      {R"({"admit_per_s":"5","pass_ttl_s":5})", {{"waiting_room", "admit_per_s", "int_type"}}},
      {R"({"admit_per_s":null,"pass_ttl_s":5})", {{"waiting_room", "admit_per_s", "int_type"}}},
      {R"({"admit_per_s":5.5,"pass_ttl_s":5})",
       {{"waiting_room", "admit_per_s", "int_from_float"}}},
      {R"({"admit_per_s":5,"pass_ttl_s":1e2})", {{"waiting_room", "pass_ttl_s", "int_from_float"}}},
      {R"({"admit_per_s":18446744073709551615,"pass_ttl_s":5})",
       {{"waiting_room", "admit_per_s", "int_range"}}},
      {R"({"admit_per_s":{"n":1},"pass_ttl_s":[5]})",
       {{"waiting_room", "admit_per_s", "int_type"}, {"waiting_room", "pass_ttl_s", "int_type"}}},
      {R"({"admit_per_s":5,"pass_ttl_s":5,"color":"red"})",
       {{"waiting_room", "color", "extra_forbidden"}}},
      {R"({"admit_per_s":5,"pass_ttl_s":5,"admit_per_s":6})",
       {{"waiting_room", "admit_per_s", "duplicate_key"}}},
      {R"({"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9})",
       {{"waiting_room", "", "extra_forbidden"},
        {"waiting_room", "a", "extra_forbidden"},
        {"waiting_room", "b", "extra_forbidden"},
        {"waiting_room", "c", "extra_forbidden"},
        {"waiting_room", "d", "extra_forbidden"},
        {"waiting_room", "e", "extra_forbidden"},
        {"waiting_room", "f", "extra_forbidden"},
        {"waiting_room", "g", "extra_forbidden"},
        {"waiting_room", "h", "extra_forbidden"},
        {"waiting_room", "admit_per_s", "missing"},
        {"waiting_room", "pass_ttl_s", "missing"}}},
  };
  JsonBodyReader reader;
  for (const Case& c : cases) {
    const std::string body = R"({"stock":1,"price":1,"waiting_room":)" + c.room + "}";
    SCOPED_TRACE(body);
    BodyValues v;
    std::vector<FieldError> errors;
    EXPECT_FALSE(reader.Read(body, ::flashsale::http::kProductSpec, v, errors));
    std::vector<std::vector<std::string>> got;
    for (const FieldError& e : errors) {
      EXPECT_EQ(e.root, "body");
      EXPECT_FALSE(e.msg.empty());
      got.push_back({e.field, e.member, e.type});
    }
    EXPECT_EQ(got, c.want) << RenderValidationErrors(errors);
  }
  // Members of other objects are not the waiting room's: an unknown nested
  // field is one extra_forbidden, a duplicated waiting_room one duplicate_key.
  BodyValues v;
  std::vector<FieldError> errors;
  EXPECT_FALSE(reader.Read(
      R"({"stock":1,"price":1,"x":{"admit_per_s":"bad"},"waiting_room":{"admit_per_s":1,"pass_ttl_s":1}})",
      ::flashsale::http::kProductSpec, v, errors));
  ASSERT_EQ(errors.size(), 1u) << RenderValidationErrors(errors);
  EXPECT_EQ(errors[0].field, "x");
  EXPECT_EQ(errors[0].type, "extra_forbidden");
  errors.clear();
  EXPECT_FALSE(reader.Read(
      R"({"stock":1,"price":1,"waiting_room":{"admit_per_s":1,"pass_ttl_s":1},"waiting_room":{"admit_per_s":"x"}})",
      ::flashsale::http::kProductSpec, v, errors));
  ASSERT_EQ(errors.size(), 1u) << RenderValidationErrors(errors);
  EXPECT_EQ(errors[0].type, "duplicate_key");
}

TEST(RenderValidationErrors, MemberIsTheThirdLocElement) {
  const std::string text =
      RenderValidationErrors({{"waiting_room", "Field required", "missing", "body", "pass_ttl_s"}});
  const boost::json::value doc = boost::json::parse(text);
  EXPECT_EQ(doc.at("detail").as_array()[0].at("loc"),
            (boost::json::array{"body", "waiting_room", "pass_ttl_s"}))
      << text;
}

// --------------------------------------------------- RenderValidationErrors ---

TEST(RenderValidationErrors, HasFastApiShape) {
  const std::vector<FieldError> errors = {
      {"user_id", "Input should be a valid integer", "int_type"},
      {"", "JSON decode error", "json_invalid"},
      {"Idempotency-Key", "must be 1 to 128 printable ASCII characters", "string_too_long",
       "header"},
      {"we\"ird\n", "quote \" backslash \\ tab \t", "x"},
  };
  const std::string text = RenderValidationErrors(errors);
  boost::json::error_code ec;
  const boost::json::value doc = boost::json::parse(text, ec);
  ASSERT_FALSE(ec) << text;
  ASSERT_TRUE(doc.is_object()) << text;
  ASSERT_EQ(doc.as_object().size(), 1u) << text;
  const boost::json::array& detail = doc.at("detail").as_array();
  ASSERT_EQ(detail.size(), 4u);
  for (const boost::json::value& e : detail) {
    ASSERT_TRUE(e.is_object());
    EXPECT_EQ(e.as_object().size(), 3u) << boost::json::serialize(e);
    EXPECT_TRUE(e.at("loc").is_array());
    EXPECT_TRUE(e.at("msg").is_string());
    EXPECT_TRUE(e.at("type").is_string());
  }
  EXPECT_EQ(detail[0].at("loc"), (boost::json::array{"body", "user_id"}));
  EXPECT_EQ(detail[0].at("msg").as_string(), "Input should be a valid integer");
  EXPECT_EQ(detail[0].at("type").as_string(), "int_type");
  EXPECT_EQ(detail[1].at("loc"), (boost::json::array{"body"}));  // the body as a whole
  EXPECT_EQ(detail[2].at("loc"), (boost::json::array{"header", "Idempotency-Key"}));
  EXPECT_EQ(detail[3].at("loc"), (boost::json::array{"body", "we\"ird\n"}));
  EXPECT_EQ(detail[3].at("msg").as_string(), "quote \" backslash \\ tab \t");
}

TEST(RenderValidationErrors, EmptyListIsAnEmptyDetail) {
  EXPECT_EQ(RenderValidationErrors({}), R"({"detail":[]})");
}

TEST(RenderValidationErrors, ReaderErrorsRenderAsValidJson) {
  // Whatever the client sent (here: invalid UTF-8 in an unknown key), the 422
  // body we send back is valid JSON.
  JsonBodyReader reader;
  BodyValues values;
  std::vector<FieldError> errors;
  (void)reader.Read("{\"a\\u0000b\":1}", kPurchaseSpec, values, errors);
  const std::string text = RenderValidationErrors(errors);
  boost::json::error_code ec;
  (void)boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
}

// ----------------------------------------------------------- response writer ---

TEST(ResponseWriter, AppendsStatusLineHeadersAndBody) {
  std::string out;
  AppendResponse(out, {200, kJson, "", true}, "{}");
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  out.clear();
  AppendResponse(out, {503, kJson, "Retry-After: 1\r\n", false}, "x");
  EXPECT_EQ(out,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Content-Length: 1\r\nConnection: close\r\nRetry-After: 1\r\n\r\nx");
}

TEST(ResponseWriter, ErrorBodyIsTheSpecEnvelope) {
  const std::string body = ErrorBody(404, "商品不存在", "UNKNOWN_PRODUCT");
  const boost::json::value doc = boost::json::parse(body);
  EXPECT_EQ(doc.at("code").as_int64(), 404);
  EXPECT_EQ(doc.at("message").as_string(), "商品不存在");
  EXPECT_TRUE(doc.at("data").is_null());
  EXPECT_EQ(doc.at("status").as_string(), "UNKNOWN_PRODUCT");
}

TEST(ResponseWriter, EveryStatusWeSendHasAReasonPhrase) {
  for (int s : {200, 201, 400, 401, 403, 404, 405, 408, 409, 413, 422, 431, 500, 501, 503, 505}) {
    EXPECT_NE(ReasonPhrase(s), "Unknown") << s;
  }
}

// ---------------------------------------------------------------- MatchRoute ---

// A concrete path for a route pattern: {param} becomes `value`.
std::string Instantiate(std::string_view pattern, std::string_view value) {
  std::string out(pattern);
  const std::size_t open = out.find('{');
  if (open != std::string::npos) out.replace(open, out.find('}') - open + 1, value);
  return out;
}

std::string_view MethodName(Method m) {
  if (m == Method::kGet) return "GET";
  if (m == Method::kPost) return "POST";
  if (m == Method::kPut) return "PUT";
  return "?";
}

TEST(MatchRoute, EveryRouteMatchesItsOwnPathAndMethod) {
  ASSERT_EQ(Routes().size(), kRouteCount - 1);  // every RouteId but kUnknown
  std::set<RouteId> seen;
  std::set<std::string_view> names;
  for (const RouteSpec& spec : Routes()) {
    SCOPED_TRACE(std::string(spec.pattern));
    const std::string path = Instantiate(spec.pattern, "10000001");
    const RouteMatch m = MatchRoute(spec.method, path);
    EXPECT_EQ(m.id, spec.id);
    EXPECT_TRUE(m.method_allowed);
    EXPECT_EQ(m.allow, MethodName(spec.method));
    if (spec.pattern.find('{') != std::string_view::npos) {
      EXPECT_EQ(m.param, "10000001");
    } else {
      EXPECT_EQ(m.param, "");
    }
    EXPECT_EQ(RouteName(spec.id), spec.name);
    EXPECT_TRUE(seen.insert(spec.id).second) << "route listed twice";
    EXPECT_TRUE(names.insert(spec.name).second) << "metrics name used twice";
  }
  EXPECT_EQ(RouteName(RouteId::kUnknown), "unknown");
}

TEST(MatchRoute, SpecRoutes) {
  struct Case {
    Method method;
    const char* path;
    RouteId id;
    const char* param;
  };
  const Case cases[] = {
      {Method::kGet, "/", RouteId::kRoot, ""},
      {Method::kPost, "/purchase", RouteId::kPurchase, ""},
      {Method::kGet, "/orders/0123456789abcdef01234567", RouteId::kOrder,
       "0123456789abcdef01234567"},
      {Method::kGet, "/users/42/orders", RouteId::kUserOrders, "42"},
      {Method::kGet, "/products", RouteId::kProducts, ""},
      {Method::kGet, "/products/10000001", RouteId::kProduct, "10000001"},
      {Method::kPut, "/admin/products/7", RouteId::kAdminProduct, "7"},
      {Method::kPost, "/admin/products/7/restock", RouteId::kAdminRestock, "7"},
      {Method::kGet, "/healthz", RouteId::kHealthz, ""},
      {Method::kGet, "/readyz", RouteId::kReadyz, ""},
      {Method::kGet, "/metrics", RouteId::kMetrics, ""},
      {Method::kGet, "/openapi.json", RouteId::kOpenApi, ""},
      {Method::kGet, "/docs", RouteId::kDocs, ""},
      {Method::kGet, "/docs/swagger-ui.css", RouteId::kDocsAsset, "swagger-ui.css"},
  };
  for (const Case& c : cases) {
    const RouteMatch m = MatchRoute(c.method, c.path);
    EXPECT_EQ(m.id, c.id) << c.path;
    EXPECT_TRUE(m.method_allowed) << c.path;
    EXPECT_EQ(m.param, c.param) << c.path;
  }
}

TEST(MatchRoute, WrongMethodIs405WithAllow) {
  struct Case {
    Method method;
    const char* path;
    RouteId id;
    const char* allow;
  };
  const Case cases[] = {
      {Method::kGet, "/purchase", RouteId::kPurchase, "POST"},
      {Method::kPut, "/purchase", RouteId::kPurchase, "POST"},
      {Method::kPost, "/", RouteId::kRoot, "GET"},
      {Method::kDelete, "/orders/abc", RouteId::kOrder, "GET"},
      {Method::kPost, "/products/1", RouteId::kProduct, "GET"},
      {Method::kGet, "/admin/products/1", RouteId::kAdminProduct, "PUT"},
      {Method::kPost, "/admin/products/1", RouteId::kAdminProduct, "PUT"},
      {Method::kPut, "/admin/products/1/restock", RouteId::kAdminRestock, "POST"},
      {Method::kPost, "/healthz", RouteId::kHealthz, "GET"},
      {Method::kOther, "/metrics", RouteId::kMetrics, "GET"},
  };
  for (const Case& c : cases) {
    const RouteMatch m = MatchRoute(c.method, c.path);
    EXPECT_EQ(m.id, c.id) << c.path;
    EXPECT_FALSE(m.method_allowed) << c.path;
    EXPECT_EQ(m.allow, c.allow) << c.path;
  }
}

TEST(MatchRoute, UnknownPathsAre404) {
  for (const char* path : {
           "",
           "/nope",
           "/purchase/",
           "/purchases",
           "/Purchase",
           "/orders",
           "/orders/",
           "/orders/a/b",
           "/users//orders",
           "/users/1/orders/2",
           "/users/1",
           "/products/",
           "/products/1/extra",
           "/admin/products",
           "/admin/products/",
           "/admin/products/1/restock/",
           "/admin/products//restock",
           "/healthz/",
           "//",
           "/docs/",
           "/docs/a/b",
       }) {
    const RouteMatch m = MatchRoute(Method::kGet, path);
    EXPECT_EQ(m.id, RouteId::kUnknown) << path;
    EXPECT_FALSE(m.method_allowed) << path;
  }
}

}  // namespace
}  // namespace flashsale::http
