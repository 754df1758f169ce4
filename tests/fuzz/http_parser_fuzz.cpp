// libFuzzer target: the HTTP/1.1 request parser and the router.
//
// The input is a connection's read buffer: ParseRequest is called in a loop as
// a pipelining server would (parse, drop `consumed` bytes, parse again) until
// it reports kIncomplete or kError. Every result is checked against the
// contract of http/http_parser.hpp:
//   * kComplete: 0 < consumed <= size; every view of the request lies inside
//     the consumed bytes; the body is the last content_length of them; the
//     header section is at most kMaxHeaderBytes and the body kMaxBodyBytes;
//     method, target, path, query and version agree with each other.
//   * A request parses the same with or without the bytes after it, and every
//     shorter prefix of it is kIncomplete (a server reading it piecemeal must
//     neither reject it nor see a different request).
//   * kError: a documented status (400, 413, 431, 501, 505) and a message.
//   * kIncomplete: the header section is still shorter than the limit.
// Each parsed path (and the raw input) also goes through MatchRoute, checked
// against an independent matcher over Routes().
//
// A broken invariant prints what broke and aborts, which libFuzzer reports as
// a crash with the input saved.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "http/http_parser.hpp"
#include "http/router.hpp"

#include "fuzz_check.hpp"

namespace {

using flashsale::http::HttpRequest;
using flashsale::http::kMaxBodyBytes;
using flashsale::http::kMaxHeaderBytes;
using flashsale::http::Method;
using flashsale::http::ParseRequest;
using flashsale::http::ParseResult;
using flashsale::http::ParseStatus;
using flashsale::http::RouteId;
using flashsale::http::RouteMatch;
using flashsale::http::RouteSpec;

// True when `v` is empty or lies entirely inside `outer`.
bool Inside(std::string_view v, std::string_view outer) {
  if (v.empty()) return true;
  const auto vb = reinterpret_cast<std::uintptr_t>(v.data());
  const auto ob = reinterpret_cast<std::uintptr_t>(outer.data());
  return vb >= ob && vb + v.size() <= ob + outer.size();
}

std::size_t Offset(std::string_view v, std::string_view outer) {
  return static_cast<std::size_t>(v.data() - outer.data());
}

bool IsTokenChar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

Method ExpectedMethod(std::string_view m) {
  if (m == "GET") return Method::kGet;
  if (m == "HEAD") return Method::kHead;
  if (m == "POST") return Method::kPost;
  if (m == "PUT") return Method::kPut;
  if (m == "DELETE") return Method::kDelete;
  if (m == "PATCH") return Method::kPatch;
  if (m == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

// Bytes of blank lines (CRLF pairs) the parser skips before a request.
std::size_t LeadingBlankLines(std::string_view data) {
  std::size_t start = 0;
  while (start + 1 < data.size() && data[start] == '\r' && data[start + 1] == '\n') start += 2;
  return start;
}

// An independent reading of Routes(): the first route whose pattern matches.
const RouteSpec* ExpectedRoute(std::string_view path, std::string_view& param) {
  for (const RouteSpec& r : flashsale::http::Routes()) {
    const std::size_t open = r.pattern.find('{');
    if (open == std::string_view::npos) {
      if (path == r.pattern) {
        param = {};
        return &r;
      }
      continue;
    }
    const std::string_view prefix = r.pattern.substr(0, open);
    const std::string_view suffix = r.pattern.substr(r.pattern.find('}') + 1);
    if (path.size() <= prefix.size() + suffix.size()) continue;
    if (path.substr(0, prefix.size()) != prefix) continue;
    if (path.substr(path.size() - suffix.size()) != suffix) continue;
    const std::string_view middle =
        path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
    if (middle.find('/') != std::string_view::npos) continue;
    param = middle;
    return &r;
  }
  return nullptr;
}

void CheckRoute(Method method, std::string_view path) {
  const RouteMatch m = flashsale::http::MatchRoute(method, path);
  std::string_view want_param;
  const RouteSpec* want = ExpectedRoute(path, want_param);
  if (want == nullptr) {
    FUZZ_CHECK(m.id == RouteId::kUnknown);
    FUZZ_CHECK(!m.method_allowed);
    FUZZ_CHECK(flashsale::http::RouteName(m.id) == "unknown");
    return;
  }
  FUZZ_CHECK(m.id == want->id);
  FUZZ_CHECK(m.method_allowed == (method == want->method));
  FUZZ_CHECK(m.param == want_param);
  FUZZ_CHECK(Inside(m.param, path));
  FUZZ_CHECK((m.allow == "GET" && want->method == Method::kGet) ||
             (m.allow == "POST" && want->method == Method::kPost) ||
             (m.allow == "PUT" && want->method == Method::kPut));
  FUZZ_CHECK(flashsale::http::RouteName(m.id) == want->name);
}

// The request views as offsets from `data`, to compare two parses of the same bytes.
bool SameRequest(const HttpRequest& a, std::string_view da, const HttpRequest& b,
                 std::string_view db) {
  auto same = [&](std::string_view x, std::string_view y) {
    return x == y && (x.empty() || Offset(x, da) == Offset(y, db));
  };
  return a.method == b.method && same(a.method_text, b.method_text) && same(a.target, b.target) &&
         same(a.path, b.path) && same(a.query, b.query) && a.version_minor == b.version_minor &&
         a.keep_alive == b.keep_alive && a.content_length == b.content_length &&
         same(a.content_type, b.content_type) && same(a.authorization, b.authorization) &&
         same(a.idempotency_key, b.idempotency_key) &&
         a.has_idempotency_key == b.has_idempotency_key && same(a.body, b.body);
}

void CheckPrefix(std::string_view data, std::size_t len, std::size_t body_offset) {
  HttpRequest req;
  const ParseResult r = ParseRequest(data.substr(0, len), req);
  if (r.status != ParseStatus::kIncomplete) {
    std::fprintf(stderr, "prefix of %zu bytes of a complete request: status %d (%d %.*s)\n", len,
                 static_cast<int>(r.status), r.error_status,
                 static_cast<int>(r.error_message.size()), r.error_message.data());
  }
  FUZZ_CHECK(r.status == ParseStatus::kIncomplete);
  FUZZ_CHECK(r.consumed == 0);
  FUZZ_CHECK(r.headers_complete == (len >= body_offset));
}

void CheckComplete(std::string_view data, const HttpRequest& req, const ParseResult& r) {
  FUZZ_CHECK(r.consumed > 0);
  FUZZ_CHECK(r.consumed <= data.size());
  FUZZ_CHECK(r.headers_complete);
  FUZZ_CHECK(r.error_status == 0);
  const std::string_view mine = data.substr(0, r.consumed);

  for (std::string_view v : {req.method_text, req.target, req.path, req.query, req.content_type,
                             req.authorization, req.idempotency_key, req.body}) {
    FUZZ_CHECK(Inside(v, mine));
  }

  // Body: exactly content_length bytes, ending the request.
  FUZZ_CHECK(req.content_length <= kMaxBodyBytes);
  FUZZ_CHECK(req.body.size() == req.content_length);
  const std::size_t body_offset = r.consumed - req.content_length;
  if (!req.body.empty()) FUZZ_CHECK(Offset(req.body, mine) == body_offset);
  const std::size_t start = LeadingBlankLines(mine);
  FUZZ_CHECK(start < body_offset);
  FUZZ_CHECK(body_offset - start <= kMaxHeaderBytes);
  FUZZ_CHECK(mine.substr(body_offset - 4, 4) == "\r\n\r\n");

  // Request line.
  FUZZ_CHECK(!req.method_text.empty());
  FUZZ_CHECK(Offset(req.method_text, mine) == start);
  for (char c : req.method_text) FUZZ_CHECK(IsTokenChar(static_cast<unsigned char>(c)));
  FUZZ_CHECK(req.method == ExpectedMethod(req.method_text));
  FUZZ_CHECK(!req.target.empty() && req.target.front() == '/');
  for (char c : req.target) {
    const auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u > 0x20 && u < 0x7F);
  }
  FUZZ_CHECK(req.version_minor == 0 || req.version_minor == 1);
  const std::size_t q = req.target.find('?');
  FUZZ_CHECK(req.path == req.target.substr(0, q));
  FUZZ_CHECK(req.path.find('?') == std::string_view::npos);
  if (q == std::string_view::npos) {
    FUZZ_CHECK(req.query.empty());
  } else {
    FUZZ_CHECK(req.query == req.target.substr(q + 1));
  }
  if (!req.has_idempotency_key) FUZZ_CHECK(req.idempotency_key.empty());
  for (std::string_view v : {req.content_type, req.authorization, req.idempotency_key}) {
    for (char c : v) {
      const auto u = static_cast<unsigned char>(c);
      FUZZ_CHECK((u >= 0x20 || u == '\t') && u != 0x7F && u != '\r' && u != '\n');
    }
    FUZZ_CHECK(v.empty() ||
               (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t'));
  }

  // Trailing bytes (the next pipelined request) do not change this one.
  HttpRequest again;
  const ParseResult r2 = ParseRequest(mine, again);
  FUZZ_CHECK(r2.status == ParseStatus::kComplete);
  FUZZ_CHECK(r2.consumed == r.consumed);
  FUZZ_CHECK(SameRequest(req, mine, again, mine));

  // Arriving piecemeal, every shorter prefix is merely incomplete. All short
  // prefixes, then a sample of the longer ones (keeps executions fast).
  const std::size_t n = r.consumed;
  for (std::size_t len = 0; len < n && len < 48; ++len) CheckPrefix(mine, len, body_offset);
  for (std::size_t len : {body_offset - 1, body_offset, n - 1, n / 2, n / 4, 3 * n / 4, start,
                          start + 1, body_offset > 2 ? body_offset - 2 : 0}) {
    if (len < n) CheckPrefix(mine, len, body_offset);
  }

  CheckRoute(req.method, req.path);
  CheckRoute(req.method == Method::kGet ? Method::kPost : Method::kGet, req.path);
}

void CheckError(const ParseResult& r) {
  FUZZ_CHECK(r.consumed == 0);
  FUZZ_CHECK(r.error_status == 400 || r.error_status == 413 || r.error_status == 431 ||
             r.error_status == 501 || r.error_status == 505);
  FUZZ_CHECK(!r.error_message.empty());
}

void CheckIncomplete(std::string_view data, const ParseResult& r) {
  FUZZ_CHECK(r.consumed == 0);
  FUZZ_CHECK(r.error_status == 0);
  if (!r.headers_complete) {
    // No header end yet: below the limit, else it would be 431.
    FUZZ_CHECK(data.size() - LeadingBlankLines(data) < kMaxHeaderBytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  std::string_view rest = input;
  // Each complete request consumes at least "X / HTTP/1.1\r\n\r\n", so this ends.
  for (;;) {
    HttpRequest req;
    const ParseResult r = ParseRequest(rest, req);
    if (r.status == ParseStatus::kError) {
      CheckError(r);
      break;
    }
    if (r.status == ParseStatus::kIncomplete) {
      CheckIncomplete(rest, r);
      break;
    }
    FUZZ_CHECK(r.status == ParseStatus::kComplete);
    CheckComplete(rest, req, r);
    rest.remove_prefix(r.consumed);
  }

  // The router on raw bytes too: paths the parser would reject must not hurt it.
  const std::size_t cut = input.find_first_of(" ?\r\n");
  CheckRoute(Method::kGet, input.substr(0, cut));
  CheckRoute(Method::kPut, input);
  return 0;
}
