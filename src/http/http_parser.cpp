#include "http/http_parser.hpp"

#include <cstring>

namespace flashsale::http {
namespace {

bool IsTokenChar(unsigned char c) {
  // RFC 9110 tchar.
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         kExtra.find(static_cast<char>(c)) != std::string_view::npos;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

bool ContainsTokenIgnoreCase(std::string_view list, std::string_view lower) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (EqualsIgnoreCase(item, lower)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

Method ParseMethod(std::string_view m) {
  if (m == "GET") return Method::kGet;
  if (m == "POST") return Method::kPost;
  if (m == "PUT") return Method::kPut;
  if (m == "HEAD") return Method::kHead;
  if (m == "DELETE") return Method::kDelete;
  if (m == "PATCH") return Method::kPatch;
  if (m == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

ParseResult Error(int status, std::string_view message) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error_status = status;
  r.error_message = message;
  return r;
}

}  // namespace

ParseResult ParseRequest(std::string_view data, HttpRequest& req) {
  // Tolerate blank lines before a request (RFC 9112 §2.2).
  std::size_t start = 0;
  while (start + 1 < data.size() && data[start] == '\r' && data[start + 1] == '\n') start += 2;
  const char* base = data.data() + start;
  const std::size_t avail = data.size() - start;
  const void* end_mark = memmem(base, avail, "\r\n\r\n", 4);
  if (end_mark == nullptr) {
    if (avail >= kMaxHeaderBytes) return Error(431, "Request Header Fields Too Large");
    // Bare LF line endings would never complete: refuse them at once.
    if (memmem(base, avail, "\n\n", 2) != nullptr || memmem(base, avail, "\n\r\n", 3) != nullptr) {
      return Error(400, "Bad Request: lines must end with CRLF");
    }
    // Reject garbage early instead of waiting for a header end that never comes.
    // A lone CR may be the first half of a blank line's CRLF (RFC 9112 §2.2).
    if (avail == 1 && base[0] == '\r') return {};
    for (std::size_t i = 0; i < avail && i < 16; ++i) {
      const auto c = static_cast<unsigned char>(base[i]);
      if (c == ' ') break;
      if (!IsTokenChar(c)) return Error(400, "Bad Request");
    }
    return {};
  }
  const std::size_t header_len = static_cast<const char*>(end_mark) - base + 4;
  if (header_len > kMaxHeaderBytes) return Error(431, "Request Header Fields Too Large");
  std::string_view head(base, header_len - 2);  // keeps the last header's CRLF

  // Request line: method SP target SP HTTP/1.x CRLF
  const std::size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return Error(400, "Bad Request");
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return Error(400, "Bad Request");
  req = HttpRequest{};
  req.method_text = line.substr(0, sp1);
  for (char c : req.method_text) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) return Error(400, "Bad Request");
  }
  req.method = ParseMethod(req.method_text);
  req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (req.target.front() != '/') return Error(400, "Bad Request");
  for (char c : req.target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) return Error(400, "Bad Request");
  }
  const std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") {
    req.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    req.version_minor = 0;
    req.keep_alive = false;
  } else if (version.starts_with("HTTP/") && version.size() == 8) {
    return Error(505, "HTTP Version Not Supported");
  } else {
    return Error(400, "Bad Request");
  }
  const std::size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string_view::npos) req.query = req.target.substr(q + 1);

  bool have_length = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  std::size_t pos = line_end + 2;
  while (pos < head.size()) {
    const std::size_t eol = head.find("\r\n", pos);
    std::string_view field = head.substr(pos, eol - pos);
    pos = eol + 2;
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return Error(400, "Bad Request");
    std::string_view name = field.substr(0, colon);
    for (char c : name) {
      if (!IsTokenChar(static_cast<unsigned char>(c))) return Error(400, "Bad Request");
    }
    std::string_view value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && u != '\t') || u == 0x7F) return Error(400, "Bad Request");
    }
    switch (name.size()) {
      case 4:  // Host
        break;
      case 10:
        if (EqualsIgnoreCase(name, "connection")) {
          // "close" wins over "keep-alive", in any order (RFC 9112 §9.3).
          if (ContainsTokenIgnoreCase(value, "close")) connection_close = true;
          if (ContainsTokenIgnoreCase(value, "keep-alive")) connection_keep_alive = true;
        }
        break;
      case 12:
        if (EqualsIgnoreCase(name, "content-type")) req.content_type = value;
        break;
      case 13:
        if (EqualsIgnoreCase(name, "authorization")) req.authorization = value;
        break;
      case 14:
        if (EqualsIgnoreCase(name, "content-length")) {
          if (value.empty() || value.size() > 18) return Error(400, "Bad Content-Length");
          std::size_t n = 0;
          for (char c : value) {
            if (c < '0' || c > '9') return Error(400, "Bad Content-Length");
            n = n * 10 + static_cast<std::size_t>(c - '0');
          }
          if (have_length && n != req.content_length) return Error(400, "Bad Content-Length");
          have_length = true;
          req.content_length = n;
        }
        break;
      case 15:
        if (EqualsIgnoreCase(name, "x-forwarded-for")) {
          // Several headers are one list (RFC 9110 5.3): the last is the
          // nearest proxy's, the one a trusted proxy appended to.
          req.forwarded_for = value;
        } else if (EqualsIgnoreCase(name, "idempotency-key")) {
          req.idempotency_key = value;
          req.has_idempotency_key = true;
        }
        break;
      case 16:
        if (EqualsIgnoreCase(name, "x-flashsale-pass")) req.flashsale_pass = value;
        break;
      case 19:
        if (EqualsIgnoreCase(name, "flashsale-signature")) req.payment_signature = value;
        break;
      case 17:
        if (EqualsIgnoreCase(name, "transfer-encoding")) {
          return Error(501, "Transfer-Encoding is not supported; send Content-Length");
        }
        break;
      default:
        break;
    }
  }
  if (connection_close) {
    req.keep_alive = false;
  } else if (connection_keep_alive) {
    req.keep_alive = true;
  }
  if (req.content_length > kMaxBodyBytes) return Error(413, "Payload Too Large");
  ParseResult r;
  r.headers_complete = true;
  const std::size_t total = start + header_len + req.content_length;
  if (data.size() < total) return r;  // body still arriving
  req.body = data.substr(start + header_len, req.content_length);
  r.status = ParseStatus::kComplete;
  r.consumed = total;
  return r;
}

}  // namespace flashsale::http
