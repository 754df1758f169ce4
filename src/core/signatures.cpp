#include "core/signatures.hpp"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>

namespace flashsale {
namespace {

std::string Hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xF];
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &len) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");  // only on allocation failure
  }
  return Hex(mac, len);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view ToString(SignatureCheck c) {
  switch (c) {
    case SignatureCheck::kValid:
      return "valid";
    case SignatureCheck::kMissing:
      return "missing";
    case SignatureCheck::kMalformed:
      return "malformed";
    case SignatureCheck::kStale:
      return "stale";
    case SignatureCheck::kMismatch:
      return "mismatch";
  }
  return "missing";
}

SignatureCheck CheckPaymentSignature(std::string_view secret, std::string_view header,
                                     std::string_view body, std::int64_t now_s) {
  std::string_view t;
  bool any_v1 = false;
  // First pass: find t (needed before any v1 can be checked).
  for (std::string_view rest = header; !rest.empty();) {
    const std::size_t comma = rest.find(',');
    std::string_view item = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (item.starts_with("t=")) t = item.substr(2);
    if (item.starts_with("v1=")) any_v1 = true;
  }
  if (t.empty() || !any_v1) return SignatureCheck::kMissing;
  std::int64_t ts = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), ts);
  if (ec != std::errc() || end != t.data() + t.size() || t.size() > 12) {
    return SignatureCheck::kMalformed;
  }
  if (ts > now_s + kPaymentSignatureToleranceS || ts < now_s - kPaymentSignatureToleranceS) {
    return SignatureCheck::kStale;
  }
  std::string signed_payload;
  signed_payload.reserve(t.size() + 1 + body.size());
  signed_payload.append(t).push_back('.');
  signed_payload.append(body);
  const std::string expected = HmacSha256Hex(secret, signed_payload);
  bool match = false;
  for (std::string_view rest = header; !rest.empty();) {
    const std::size_t comma = rest.find(',');
    std::string_view item = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    // Every candidate is compared (no early exit): the time taken does not
    // tell which one matched.
    if (item.starts_with("v1=") && ConstantTimeEquals(item.substr(3), expected)) match = true;
  }
  return match ? SignatureCheck::kValid : SignatureCheck::kMismatch;
}

std::string SignPayment(std::string_view secret, std::string_view body, std::int64_t t) {
  std::string payload = std::to_string(t);
  payload.push_back('.');
  payload.append(body);
  return "t=" + std::to_string(t) + ",v1=" + HmacSha256Hex(secret, payload);
}

std::string OrderTokens::CancelToken(const OrderId& order) const {
  std::string message = "cancel:";
  message.append(order.view());
  return HmacSha256Hex(secret_, message).substr(0, kTokenLength);
}

bool OrderTokens::CheckCancelToken(const OrderId& order, std::string_view token) const {
  return ConstantTimeEquals(CancelToken(order), token);
}

std::string RandomSecretHex() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  return Hex(bytes, sizeof bytes);
}

}  // namespace flashsale
