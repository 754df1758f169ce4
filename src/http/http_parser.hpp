#pragma once
// A lean HTTP/1.1 request parser over the connection's read buffer. It finds
// the end of the header section with one scan, reads only the headers
// flashsale acts on, and returns views into the buffer (no copies, no
// allocation). Limits of SPEC §4: header section <= 8 KiB (else 431), body <=
// 4 KiB (else 413); chunked bodies are not accepted (501). Stateless and
// thread-compatible.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/client_address.hpp"

namespace flashsale::http {

inline constexpr std::size_t kMaxHeaderBytes = 8 * 1024;
inline constexpr std::size_t kMaxBodyBytes = 4 * 1024;

enum class Method { kGet, kHead, kPost, kPut, kDelete, kPatch, kOptions, kOther };

struct HttpRequest {
  Method method = Method::kOther;
  std::string_view method_text;
  std::string_view target;  // as sent
  std::string_view path;    // target before '?'
  std::string_view query;   // after '?', may be empty
  int version_minor = 1;
  bool keep_alive = true;
  std::size_t content_length = 0;
  std::string_view content_type;
  std::string_view authorization;
  std::string_view payment_signature;  // Flashsale-Signature (POST /orders/{id}/pay)
  std::string_view idempotency_key;
  bool has_idempotency_key = false;
  std::string_view forwarded_for;  // X-Forwarded-For (trusted only from --trusted-proxies)
  std::string_view flashsale_pass;  // X-Flashsale-Pass: a waiting room's pass
  // Set by the connection, not the parser: the TCP peer, and whether it is a
  // trusted proxy (then X-Forwarded-For names the client).
  ClientAddress peer;
  bool peer_is_trusted_proxy = false;
  std::string_view body;
};

enum class ParseStatus {
  kComplete,    // `request` is filled; `consumed` bytes belong to it
  kIncomplete,  // need more bytes
  kError,       // answer `error_status` and close the connection
};

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  std::size_t consumed = 0;
  int error_status = 0;            // 400, 413, 431, 501, 505
  std::string_view error_message;  // static text
  // Set once the header section is complete (also with kIncomplete while the
  // body is still arriving): the timeout then applies to the body.
  bool headers_complete = false;
};

// Parses the first request in `data`.
ParseResult ParseRequest(std::string_view data, HttpRequest& request);

}  // namespace flashsale::http
