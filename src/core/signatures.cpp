#include "core/signatures.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace flashsale {
namespace {

std::string HexOf(const unsigned char* bytes, std::size_t n) {
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
  return HexOf(mac, len);
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

struct KeyedHmacSha256::States {
  EVP_MD* md = nullptr;
  EVP_MD_CTX* inner = nullptr;  // SHA-256 after (key ^ ipad)
  EVP_MD_CTX* outer = nullptr;  // SHA-256 after (key ^ opad)
  ~States() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_free(md);
  }
};

namespace {
void Check(int ok) {
  if (ok != 1) throw std::runtime_error("SHA-256 failed");  // only on allocation failure
}
}  // namespace

KeyedHmacSha256::KeyedHmacSha256(std::string_view key) : states_(std::make_unique<States>()) {
  constexpr std::size_t kBlock = 64;  // SHA-256's block size (RFC 2104)
  states_->md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (states_->md == nullptr) throw std::runtime_error("SHA-256 unavailable");
  unsigned char block[kBlock] = {};
  if (key.size() > kBlock) {
    unsigned int len = 0;
    Check(EVP_Digest(key.data(), key.size(), block, &len, states_->md, nullptr));
  } else {
    std::copy(key.begin(), key.end(), block);
  }
  for (auto [ctx, pad] : {std::pair{&states_->inner, 0x36}, std::pair{&states_->outer, 0x5c}}) {
    unsigned char padded[kBlock];
    for (std::size_t i = 0; i < kBlock; ++i) padded[i] = block[i] ^ static_cast<unsigned char>(pad);
    *ctx = EVP_MD_CTX_new();
    if (*ctx == nullptr) throw std::runtime_error("SHA-256 failed");
    Check(EVP_DigestInit_ex(*ctx, states_->md, nullptr));
    Check(EVP_DigestUpdate(*ctx, padded, kBlock));
  }
}

KeyedHmacSha256::~KeyedHmacSha256() = default;

std::string KeyedHmacSha256::Hex(std::string_view message) const {
  struct Scratch {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Scratch() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Scratch scratch;
  if (scratch.ctx == nullptr) throw std::runtime_error("SHA-256 failed");
  unsigned char inner[EVP_MAX_MD_SIZE];
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int inner_len = 0, mac_len = 0;
  Check(EVP_MD_CTX_copy_ex(scratch.ctx, states_->inner));
  Check(EVP_DigestUpdate(scratch.ctx, message.data(), message.size()));
  Check(EVP_DigestFinal_ex(scratch.ctx, inner, &inner_len));
  Check(EVP_MD_CTX_copy_ex(scratch.ctx, states_->outer));
  Check(EVP_DigestUpdate(scratch.ctx, inner, inner_len));
  Check(EVP_DigestFinal_ex(scratch.ctx, mac, &mac_len));
  return HexOf(mac, mac_len);
}

std::string OrderTokens::CancelToken(const OrderId& order) const {
  char message[7 + OrderId::kLength];
  std::memcpy(message, "cancel:", 7);
  std::memcpy(message + 7, order.view().data(), order.view().size());
  return mac_.Hex(std::string_view(message, 7 + order.view().size())).substr(0, kTokenLength);
}

bool OrderTokens::CheckCancelToken(const OrderId& order, std::string_view token) const {
  return ConstantTimeEquals(CancelToken(order), token);
}

std::string RandomSecretHex() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  return HexOf(bytes, sizeof bytes);
}

}  // namespace flashsale
